"""The train loop: gin config -> mesh -> sharded state -> jit'd steps -> metrics -> checkpoints.

Sections, in the order a run meets them: setup (distributed, vocabulary and tasks, mesh, model,
optimizer); state (resume from the model dir's latest complete checkpoint, else an initial
checkpoint, else a fresh sharded init); data (this host's shard as global arrays, at the
checkpoint's position: its saved tf.data iterator, else a replay); the loop (steps, metrics
every `log_every`, checkpoints every `checkpoint_period`, a final one, and one on SIGTERM before
exiting cleanly).
"""
import dataclasses
import hashlib
import os
import time
from typing import Dict, Mapping, Optional, Sequence

import gin
import jax
import jax.numpy as jnp

from xfer_t5x.model.api import EncoderDecoderModel
from xfer_t5x.model.config import T5Config
from xfer_t5x.runtime import checkpoints as ckpt_lib
from xfer_t5x.runtime import data as data_lib
from xfer_t5x.runtime import distributed
from xfer_t5x.runtime import gin_utils
from xfer_t5x.runtime import model_dir as model_dir_lib
from xfer_t5x.runtime import model_info
from xfer_t5x.runtime import peak
from xfer_t5x.runtime.metrics_writer import MetricsWriter, log, log_every_process
from xfer_t5x.runtime.optimizer import Adafactor
from xfer_t5x.runtime.partitioning import Partitioner, make_partitioner
from xfer_t5x.runtime import train_state as ts
from xfer_t5x.runtime.train_step import make_train_step
from xfer_t5x.runtime import vocab_setup


@dataclasses.dataclass
class TrainResult:
  model_dir: str
  step: int
  last_metrics: Dict[str, float]
  preempted: bool = False


MODEL_KINDS = ("encoder_decoder", "dual_encoder")


@gin.configurable
def build_model(vocabulary, model_config: Optional[T5Config] = None,
                kind: str = "encoder_decoder"):
  """The gin-bound architecture with the vocabulary's size: mT5's encoder-decoder, or its
  encoder as a dual encoder (`build_model.kind = "dual_encoder"`, gin/models/dual_encoder.gin)."""
  config = (model_config or T5Config()).with_vocab(vocabulary.vocab_size)
  if kind == "encoder_decoder":
    return EncoderDecoderModel(config)
  if kind == "dual_encoder":
    from xfer_t5x.model.dual_encoder import DualEncoderModel  # pylint: disable=g-import-not-at-top
    return DualEncoderModel(config)
  raise gin_utils.BindingValueError(
      f"build_model.kind={kind!r}: choose one of {MODEL_KINDS} (a dual encoder: --gin_file "
      "models/dual_encoder.gin after the run file)")


def _summarize(sums: Mapping[str, float], elapsed: float, steps: int, batch_tokens,
               flops_per_step: float, peak_flops: float) -> Dict[str, float]:
  w = max(sums["weight_sum"], 1.0)
  seqs = sums["num_examples"]
  out = {
      "loss": sums["loss"] / steps,
      "loss_per_token": sums["loss_sum"] / w,
      "accuracy": sums["correct"] / w,
      "z_loss": sums["z_loss_sum"] / w,
      "learning_rate": sums["learning_rate"] / steps,
      "grad_norm": sums["grad_norm"] / steps,
      "seqs_per_second": seqs / elapsed,
      "tokens_per_second": batch_tokens * steps / elapsed,
      "steps_per_second": steps / elapsed,
  }
  if peak_flops:
    out["mfu"] = flops_per_step * steps / elapsed / peak_flops
  return out


def _restore_latest_readable(checkpointer: ckpt_lib.Checkpointer, abstract):
  """(step, state, extra) of the latest checkpoint that reads, or (None, None, None).

  A damaged latest checkpoint (a truncated array or metadata file) is moved to
  `<model_dir>/corrupt/` (never deleted), saying which file, and the one before it is tried.
  Every process takes the same decision: the failures are gathered before anything moves.
  """
  while True:
    latest = checkpointer.latest_step()
    if latest is None:
      return None, None, None
    error = None
    try:
      state, extra = checkpointer.restore(latest, abstract)
    except ckpt_lib.CorruptCheckpointError as e:
      error = e
    if not distributed.any_process(error is not None):
      return latest, state, extra
    moved = checkpointer.move_aside(latest) if jax.process_index() == 0 else None
    distributed.sync(f"corrupt_checkpoint_{latest}")
    checkpointer.reload()
    log("%s. Moved it to %s (nothing is deleted); resuming from the previous complete checkpoint",
        error or f"checkpoint_{latest} cannot be read on another process", moved)


@gin.configurable
def train(model_dir: str = gin.REQUIRED,
          mixture_or_task_name: str = gin.REQUIRED,
          task_feature_lengths: Mapping[str, int] = gin.REQUIRED,
          train_steps: int = gin.REQUIRED,
          batch_size: int = 32,
          model_config: Optional[T5Config] = None,
          partitioner: Optional[Partitioner] = None,
          num_microbatches: int = 1,
          seed: int = 0,
          shuffle: bool = True,
          pack: bool = True,
          split: str = "train",
          use_dropout: bool = True,
          checkpoint_period: int = 1000,
          keep_checkpoints: int = 3,
          async_checkpointing: bool = True,
          log_every: int = 50,
          initial_checkpoint: Optional[str] = None,
          initial_state: str = "params",
          use_cached: bool = False,
          peak_flops_per_device: Optional[float] = None,
          eval_tasks: Optional[Sequence[str]] = None,
          eval_period: Optional[int] = None,
          eval_max_examples: Optional[int] = None) -> TrainResult:
  """Trains `train_steps` steps in total (a restart continues where the last checkpoint left).

  Args:
    model_dir: where config.gin, model-info.txt, checkpoint_<step>/ and train/ go.
    mixture_or_task_name: a registered SeqIO task or mixture.
    task_feature_lengths: e.g. {"inputs": 1024, "targets": 128}.
    train_steps: the step to stop at (absolute, as T5X).
    batch_size: global batch in sequences (packed), split over the data-parallel devices.
    initial_checkpoint: used only when model_dir has no checkpoint: a T5X checkpoint dir
      (legacy or Orbax), a Hugging Face mT5 dir, or an xfer_t5x checkpoint_<step> dir.
    initial_state: what the initial checkpoint gives (runtime/initial_state.py): "params" (its
      parameters, a fresh optimizer at step 0) or "train_state" (parameters, optimizer state and
      step, as T5X fine-tunes: `train_steps` then counts on from the checkpoint's step, e.g.
      1_000_000 + n for the public mT5 checkpoints); the data position is never restored.
    use_cached: read SeqIO's offline cache of the task (T5X's USE_CACHED_TASKS).
    eval_tasks, eval_period: evaluate these tasks or mixtures every `eval_period` steps and at
      the end, with the training parameters, as T5X's periodic inference evaluation: the model
      dir's inference_eval/, metrics.jsonl and summary, keyed by step (evaluation.evaluator).
    eval_max_examples: at most this many examples per task in those evaluations.
    peak_flops_per_device: the peak MFU is stated against; None: the device table, or on CPU
      a dense float32 matmul measured once at start-up.
  """
  _check_bindings(train_steps, batch_size, task_feature_lengths, num_microbatches,
                  checkpoint_period, log_every)
  distributed.initialize()
  # First, so that a SIGTERM during setup is noticed too (and the run exits cleanly).
  preemption = ckpt_lib.PreemptionFlag()
  preemption.install()
  checkpointer = writer = None
  model_dir_lib.check_writable(model_dir)
  new_model_dir = model_dir_lib.is_local(model_dir) and not os.path.exists(model_dir)
  lock = model_dir_lib.ModelDirLock(model_dir)
  started = False  # set once config.gin is written: from then on the model dir is the run's
  try:
    if jax.process_index() == 0:  # before anything opens the model dir's checkpoints
      lock.acquire()
    vocabulary = vocab_setup.setup_vocabulary_and_tasks()
    from xfer_t5x.tasks import registry  # pylint: disable=g-import-not-at-top
    registry.require_task(mixture_or_task_name, split)  # before anything is written
    eval_tasks = [eval_tasks] if isinstance(eval_tasks, str) else list(eval_tasks or [])
    if eval_tasks and not eval_period:
      raise ValueError(f"train.eval_tasks={eval_tasks} needs train.eval_period (evaluate every "
                       "that many steps and at the end)")
    for name in eval_tasks:
      registry.require_task(name)
    registry.check_vocabulary([mixture_or_task_name] + eval_tasks, vocabulary)
    partitioner = partitioner or make_partitioner()
    model = build_model(vocabulary, model_config)
    if pack and not model.supports_packing:
      raise gin_utils.BindingValueError(
          f"train.pack=True, but {type(model).__name__} takes one example per row: bind "
          "train.pack = False (gin/models/dual_encoder.gin does)")
    optimizer = Adafactor(model.logical_axes())
    gin_text = gin_utils.operative_config_text()

    # --- state ------------------------------------------------------------------------------
    checkpointer = ckpt_lib.Checkpointer(model_dir, keep=keep_checkpoints,
                                         async_save=async_checkpointing)
    abstract = ts.abstract_state(model, optimizer, partitioner)
    latest, state, extra = _restore_latest_readable(checkpointer, abstract)
    data_state = None
    if latest is not None:
      data_state = (extra or {}).get("data")
      log("resumed from %s/checkpoint_%d", model_dir, latest)
    elif initial_checkpoint:
      from xfer_t5x.runtime import initial_state as initial_lib  # pylint: disable=g-import-not-at-top
      state, message = initial_lib.from_checkpoint(initial_checkpoint, initial_state, model,
                                                   optimizer, partitioner, seed=seed)
      if int(state.step) >= train_steps:
        raise initial_lib.InitialStateError(
            f"train.train_steps={train_steps} is not beyond the step {int(state.step)} that "
            f"{initial_checkpoint} continues from (train.initial_state='train_state'): "
            "TRAIN_STEPS is the step to stop at, so give the checkpoint's step plus the steps "
            f"to train (e.g. {int(state.step) + 1000}), or use --gin.INITIAL_STATE=params "
            "(train.initial_state) to count from 0")
      log("%s", message)
    else:
      state = ts.init_state(model, optimizer, partitioner, jax.random.PRNGKey(seed))
    start_step = int(state.step)

    # --- data -------------------------------------------------------------------------------
    # Opened (its files read and checked) and the checkpoint's position checked against it
    # before anything is written into the model dir.
    batch_spec = partitioner.batch_sharding().spec
    layout = data_lib.data_layout(partitioner.mesh, batch_spec, batch_size)
    iterator = data_lib.DataIterator.from_task(
        mixture_or_task_name=mixture_or_task_name, task_feature_lengths=task_feature_lengths,
        split=split, global_batch_size=batch_size, shuffle=shuffle, seed=seed, pack=pack,
        shard_id=layout.shard_id, num_shards=layout.num_shards, use_cached=use_cached)
    if data_state is not None:
      log_every_process("%s", iterator.restore(data_state, checkpointer.input_iterator_dir(latest),
                                               where=f"{model_dir}/checkpoint_{latest}"))
    if start_step < train_steps:
      iterator.open()

    # Written only once the model dir's checkpoint (if any) is known to fit this model and data.
    started = True
    if jax.process_index() == 0:
      gin_utils.write_operative_config(model_dir)
      gin_utils.write_model_info(model_dir, model_info.lines(model, optimizer, partitioner))

    # --- loop -------------------------------------------------------------------------------
    step_fn = make_train_step(model, optimizer, partitioner, num_microbatches=num_microbatches,
                              dropout_seed=seed, use_dropout=use_dropout)
    in_len = task_feature_lengths["inputs"]
    tgt_len = task_feature_lengths["targets"]
    flops_per_step = model.train_step_flops(batch_size, in_len, tgt_len)
    peak_flops = (peak_flops_per_device or peak.device_peak_flops()) * jax.device_count()
    writer = MetricsWriter(f"{model_dir}/train", train_steps)
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
    log("training %s params on %s: steps %d -> %d, global batch %d, mesh %s, %.3g GFLOP/step",
        f"{n_params:,}", mixture_or_task_name, start_step, train_steps, batch_size,
        dict(partitioner.mesh.shape), flops_per_step / 1e9)

    def save(step, force=False):
      # The position is the same on every host (Orbax writes the JSON from process 0); each host
      # writes its own tf.data iterator beside it, so a resume reads nothing twice.
      extra = {"data": iterator.state(),
               "gin_sha256": hashlib.sha256(gin_text.encode()).hexdigest()}
      checkpointer.save(step, state, extra_json=extra, force=force, input_iterator=iterator)
      from xfer_t5x.tasks import data_report  # pylint: disable=g-import-not-at-top
      data_report.write_report(model_dir, jax.process_index())  # the files read so far

    if preemption.requested(start_step):
      log_every_process("preemption requested during setup: exiting before the first step "
                        "(nothing to save; a restart begins at step %d)", start_step)
      return TrainResult(model_dir, start_step, {}, True)

    sums, window_steps, t0 = None, 0, time.time()
    last, step, preempted = {}, start_step, False
    while step < train_steps:
      batch = data_lib.to_global(next(iterator), partitioner.mesh, batch_spec)
      state, metrics = step_fn(state, batch)
      step += 1
      window_steps += 1
      # Accumulate on device (asynchronous); fetch only when logging.
      sums = metrics if sums is None else jax.tree_util.tree_map(jnp.add, sums, metrics)
      if step % log_every == 0 or step == train_steps:
        last = _summarize(jax.device_get(sums), time.time() - t0, window_steps,
                          batch_size * (in_len + tgt_len), flops_per_step, peak_flops)
        writer.write(step, last)
        sums, window_steps, t0 = None, 0, time.time()
      if preemption.requested(step):
        save(step, force=True)
        preempted = True
        log_every_process("preemption requested: saved checkpoint_%d, exiting", step)
        break
      if step % checkpoint_period == 0 or step == train_steps:
        save(step, force=step == train_steps)
      if eval_tasks and (step % eval_period == 0 or step == train_steps):
        _evaluate_during_training(model_dir, eval_tasks, step, model, state.params, partitioner,
                                  eval_max_examples)
  finally:
    preemption.uninstall()  # give SIGTERM back to whoever had it (e.g. the grid runner)
    if checkpointer is not None:
      checkpointer.wait()
      checkpointer.close()
    if writer is not None:
      writer.close()
    lock.release(remove=new_model_dir and not started)
    if new_model_dir and not started:  # refused during setup: leave no empty model dir behind
      _remove_empty_dirs(model_dir)
  return TrainResult(model_dir, step, last, preempted)


def _check_bindings(train_steps, batch_size, task_feature_lengths, num_microbatches,
                    checkpoint_period, log_every):
  """Values of the wrong type are refused naming the binding, before anything runs."""
  check = gin_utils.require_positive_int
  check("train.train_steps", train_steps, "TRAIN_STEPS")
  check("train.batch_size", batch_size, "BATCH_SIZE")
  check("train.num_microbatches", num_microbatches)
  check("train.checkpoint_period", checkpoint_period)
  check("train.log_every", log_every)
  if not isinstance(task_feature_lengths, Mapping) or not {"inputs", "targets"} <= set(
      task_feature_lengths):
    raise gin_utils.BindingValueError(
        f"train.task_feature_lengths (the run files' TASK_FEATURE_LENGTHS) is "
        f"{task_feature_lengths!r}; give a dict with 'inputs' and 'targets', e.g. "
        "--gin.TASK_FEATURE_LENGTHS=\"{'inputs': 512, 'targets': 128}\"")
  for key, value in task_feature_lengths.items():
    check(f"train.task_feature_lengths[{key!r}]", value, "TASK_FEATURE_LENGTHS")


def _evaluate_during_training(model_dir, tasks, step, model, params, partitioner, max_examples):
  """T5X's periodic inference evaluation: the tasks decoded (scored, ranked, retrieved) with the
  training parameters, written into the model dir keyed by the step."""
  from xfer_t5x.evaluation import evaluator  # pylint: disable=g-import-not-at-top
  start = time.time()
  metrics = evaluator.evaluate(model_dir, tasks, step=step, model=model, params=params,
                               partitioner=partitioner, max_examples=max_examples)
  log("evaluated %d task(s) at step %d in %.1fs: %s", len(metrics), step, time.time() - start,
      "; ".join(f"{t} " + " ".join(
          f"{k} {v:.2f}" if isinstance(v, (int, float)) else f"{k} {v}"
          for k, v in sorted(m.items())) for t, m in metrics.items()))


def _remove_empty_dirs(path) -> None:
  """Removes `path` if it holds only empty folders (what opening a checkpoint manager makes)."""
  for root, dirs, files in os.walk(path, topdown=False):
    if files:
      return
    for d in dirs:
      if os.path.isdir(os.path.join(root, d)):
        return
    os.rmdir(root)
