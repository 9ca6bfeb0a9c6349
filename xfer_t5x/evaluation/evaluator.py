"""Partitioned evaluation of a checkpoint on tasks and mixtures, per task and language.

  from xfer_t5x.evaluation.evaluator import evaluate
  metrics = evaluate("/tmp/run", ["xnli_zeroshot"])          # the latest checkpoint
  metrics["xnli.de"]["accuracy"]

The path of one evaluation: names -> eval tasks (a `<target>_zeroshot` mixture gives every
language of its target; examples.expand_tasks) -> the checkpoint's parameters restored onto the
evaluation mesh (restore.restore_params) -> per task, by its TaskInfo.mode:
  generate  decode (greedy or beam) -> detokenize -> postprocess -> metrics   (decode.py)
  rank      score every choice -> the likeliest per row -> score metrics      (rank.py)
  retrieve  embed queries and the candidate pool -> cosine top-k -> metrics   (retrieve.py)
-> the model dir's inference_eval/ files, metrics.jsonl and the XTREME-R summary (summary.py).

Every computation runs under the same kind of mesh as training (runner.MeshRunner: batches
sharded over 'batch', parameters over the logical axis rules). Every host reads all the eval
data and computes every metric; only process 0 writes files.
"""
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import gin
import jax
import seqio

from xfer_t5x.evaluation import decode as decode_lib
from xfer_t5x.evaluation import examples as examples_lib
from xfer_t5x.evaluation import rank as rank_lib
from xfer_t5x.evaluation import restore
from xfer_t5x.evaluation import retrieve as retrieve_lib
from xfer_t5x.evaluation import summary as summary_lib
from xfer_t5x.evaluation.results import TaskResult
from xfer_t5x.evaluation.runner import MeshRunner
from xfer_t5x.runtime import checkpoints as ckpt_lib
from xfer_t5x.runtime import trainer
from xfer_t5x.runtime import vocab_setup
from xfer_t5x.runtime.metrics_writer import log
from xfer_t5x.runtime.partitioning import Partitioner, make_partitioner
from xfer_t5x.tasks import registry
from xfer_t5x.tasks import vocab as vocab_lib

ON_EMPTY = ("error", "skip")


def _vocabulary_and_tasks(names: Sequence[str]) -> Tuple[seqio.Vocabulary, List[str]]:
  """(the run's vocabulary, the eval tasks of `names`), registering the study's tasks with the
  vocabulary if a name is not registered.

  When every name is already registered (e.g. by the experiment runner, with its own data dir
  and languages), the registration is left as it is and the run's vocabulary is the one it was
  made with. Every task to evaluate (and every candidate pool) must use it.
  """
  known = set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names())
  if all(n in known for n in names):
    vocabulary = vocab_lib.run_vocabulary()
  else:
    vocabulary = vocab_setup.setup_vocabulary_and_tasks()
  for name in names:
    registry.require_task(name)
  eval_tasks = examples_lib.expand_tasks(names)
  pools = [examples_lib.info_of(t).candidates_task for t in eval_tasks]
  registry.check_vocabulary(eval_tasks + [p for p in pools if p], vocabulary)
  return vocabulary, eval_tasks


def _one_task(runner: MeshRunner, name: str, split: str, vocabulary, pools, *, method, num_beams,
              alpha, feature_lengths, max_examples, embedding_layer, retrieval_k) -> TaskResult:
  info = examples_lib.info_of(name)
  if info.mode == "generate":
    examples = examples_lib.load_examples(name, split, feature_lengths, max_examples)
    return decode_lib.evaluate_generate(runner, name, split, examples, vocabulary, method=method,
                                        num_beams=num_beams, alpha=alpha,
                                        feature_lengths=feature_lengths)
  if info.mode == "rank":
    examples = rank_lib.keep_rows(examples_lib.load_examples(name, split, feature_lengths),
                                  max_examples)
    return rank_lib.evaluate_rank(runner, name, split, examples, vocabulary,
                                  feature_lengths=feature_lengths)
  if info.mode == "retrieve":
    examples = examples_lib.load_examples(name, split, feature_lengths, max_examples)
    return retrieve_lib.evaluate_retrieve(runner, name, split, examples, vocabulary, pools,
                                          embedding_layer=embedding_layer, k=retrieval_k,
                                          feature_lengths=feature_lengths)
  raise ValueError(f"task {name} has mode {info.mode!r}; evaluation handles generate, rank and "
                   "retrieve")


class TaskEvaluationError(RuntimeError):
  """One task of an evaluation failed; the message names it and where the others were kept."""


def _keep(results, write: bool, out_dir, step, checkpoint) -> Optional[str]:
  """Writes the results of the tasks evaluated before a failure; returns where, if anywhere."""
  if not (write and results and out_dir):
    return None
  if jax.process_index() == 0:
    summary_lib.write_all(out_dir, results, step, checkpoint)
  return str(summary_lib.model_path(out_dir))


def _split_checkpoint_path(path: str, model_dir: Optional[str], step: Optional[int]):
  """(model dir, step) of a `<model_dir>/checkpoint_<step>` path, checked against the model dir
  and step when those are bound too."""
  path = str(path).rstrip("/")
  name = path.rsplit("/", 1)[-1]
  if not name.startswith("checkpoint_") or not name[len("checkpoint_"):].isdigit():
    raise ValueError(f"evaluate: checkpoint_path={path!r} (CHECKPOINT_PATH) must name a "
                     "<model_dir>/checkpoint_<step> folder, e.g. /tmp/run/checkpoint_20000")
  folder, found = path[:-len(name) - 1] or "/", int(name[len("checkpoint_"):])
  if model_dir and str(model_dir).rstrip("/") != folder:
    raise ValueError(f"evaluate: checkpoint_path={path!r} is not in model_dir={model_dir!r}; "
                     "bind one of CHECKPOINT_PATH or MODEL_DIR")
  if step is not None and int(step) != found:
    raise ValueError(f"evaluate: checkpoint_path={path!r} is step {found}, but step={step} is "
                     "bound too; bind one of CHECKPOINT_PATH or CHECKPOINT_STEP")
  return folder, found


@gin.configurable(denylist=["model", "params"])
def evaluate(model_dir: Optional[str] = None,
             tasks: Union[str, Sequence[str]] = gin.REQUIRED,
             step: Optional[int] = None,
             *,
             model=None,
             params=None,
             partitioner: Optional[Partitioner] = None,
             batch_size: int = 32,
             method: str = "greedy",
             num_beams: int = 4,
             alpha: float = 0.6,
             feature_lengths: Optional[Mapping[str, int]] = None,
             max_examples: Optional[int] = None,
             embedding_layer: retrieve_lib.Layer = None,
             retrieval_k: int = 20,
             split: Optional[str] = None,
             on_empty: str = "error",
             write: bool = True,
             checkpoint_path: Optional[str] = None,
             output_dir: Optional[str] = None) -> Dict[str, Dict[str, float]]:
  """Evaluates a checkpoint (or given params) on tasks and mixtures; returns their metrics.

  Args:
    model_dir: the run's model dir: the checkpoint is read from it and the predictions, metrics
      and summary are written into it (None only with `params` and `write=False`).
    tasks: task or mixture names (a mixture expands to its eval tasks, see
      examples.expand_tasks).
    step: the checkpoint step (None: the latest complete one); with `params`, the step the
      files are labelled with (None: 0).
    model: an EncoderDecoderModel (None: built from the gin-bound T5Config and the tasks'
      vocabulary).
    params: parameters to evaluate instead of restoring a checkpoint.
    partitioner: the mesh and rules (None: `make_partitioner()`, i.e. the gin-bound mesh).
    batch_size: global rows per step (rounded up to a multiple of the data-parallel size).
    method: "greedy" or "beam" for generative tasks.
    num_beams, alpha: beam search's width and length-penalty exponent.
    feature_lengths: {"inputs": n, "targets": m} to trim examples to and to pad to (targets
      sets the decode length); None: the longest example's lengths (rounded up).
    max_examples: evaluate at most this many examples (rank tasks: rows) per task.
    embedding_layer: retrieval's encoder layer (int, "middle", "final"; None: Tatoeba middle,
      others final).
    retrieval_k: candidates ranked per query (XTREME-R's metrics read the top 20).
    split: evaluate this split instead of each task's eval split (TaskInfo.eval_split).
    on_empty: a task without examples in its split is an "error" (default) or is "skip"ped
      with a warning.
    write: write the model-dir files (process 0 only).
    checkpoint_path: T5X's way to name the checkpoint: a `<model_dir>/checkpoint_<step>` folder,
      instead of `model_dir` and `step` (gin: CHECKPOINT_PATH).
    output_dir: where the predictions, metrics and summary go (T5X's EVAL_OUTPUT_DIR; default:
      the model dir).

  Returns:
    {task: {metric: value}} for every eval task (values as the task's metrics give them:
    percent for the study's metrics).
  """
  if checkpoint_path:
    model_dir, step = _split_checkpoint_path(checkpoint_path, model_dir, step)
  if on_empty not in ON_EMPTY:
    raise ValueError(f"evaluate: on_empty={on_empty!r}; choose one of {ON_EMPTY}")
  names = [tasks] if isinstance(tasks, str) else list(tasks)
  if not names:
    raise ValueError("evaluate: no tasks given; name tasks or mixtures (e.g. ['xnli_zeroshot'])")
  if model_dir is None and (params is None or write):
    raise ValueError("evaluate: no checkpoint named: bind MODEL_DIR (the model dir holding "
                     "checkpoint_<step>/) or T5X's CHECKPOINT_PATH (.../checkpoint_<step>); only "
                     "evaluate(params=..., write=False) can go without one")
  vocabulary, eval_tasks = _vocabulary_and_tasks(names)
  partitioner = partitioner or make_partitioner()
  if model is None:
    model = trainer.build_model(vocabulary)
  checkpoint = None
  if params is None:
    params, step = restore.restore_params(model_dir, step, model, partitioner)
    checkpoint = str(ckpt_lib.checkpoint_dir(model_dir, step))
  elif step is None:
    step = 0
  if getattr(model, "is_dual_encoder", False):
    only_embeds = [t for t in eval_tasks if examples_lib.info_of(t).mode != "retrieve"]
    if only_embeds:
      raise ValueError(f"evaluate: a dual encoder (build_model.kind='dual_encoder') only embeds, "
                       f"but {only_embeds[:3]} are not retrieval tasks: evaluate them with an "
                       "encoder-decoder model (leave models/dual_encoder.gin out)")
  runner = MeshRunner(model, params, partitioner, batch_size)
  log("evaluating %s at step %d on %d task(s), mesh %s, global batch %d, %s decoding",
      model_dir or "given params", step, len(eval_tasks), dict(partitioner.mesh.shape),
      runner.batch_size, method if method == "greedy" else f"{num_beams}-beam")

  pools = retrieve_lib.CandidatePools()
  results: List[TaskResult] = []
  out_dir = output_dir or model_dir
  for name in eval_tasks:
    task_split = examples_lib.eval_split(name, split)
    start = time.time()
    try:
      result = _one_task(runner, name, task_split, vocabulary, pools, method=method,
                         num_beams=num_beams, alpha=alpha, feature_lengths=feature_lengths,
                         max_examples=max_examples, embedding_layer=embedding_layer,
                         retrieval_k=retrieval_k)
    except examples_lib.EmptyTaskError as e:
      if on_empty == "skip":
        log("skipping %s: %s", name, e)
        continue
      _keep(results, write, out_dir, step, checkpoint)
      raise
    except Exception as e:  # pylint: disable=broad-except
      kept = _keep(results, write, out_dir, step, checkpoint)
      raise TaskEvaluationError(
          f"evaluating {name} ({task_split} split) failed: {e}"
          + (f" The {len(results)} task(s) evaluated before it in this run "
             f"({', '.join(r.task for r in results)}) are written to {kept}." if kept else
             "") + " Fix the cause and evaluate again (tasks already evaluated at this step "
          "are replaced, not duplicated).") from e
    results.append(result)
    shown = "  ".join(f"{k} {v:.2f}" for k, v in sorted(result.metrics.items()))
    log("%s/%s: %d examples, %s (%.1fs)", name, task_split, result.num_examples, shown,
        time.time() - start)

  if write and jax.process_index() == 0 and results:
    summary = summary_lib.write_all(out_dir, results, step, checkpoint)
    log("\n".join(summary_lib.render_step(str(step), summary["steps"][str(step)])))
    log("written: %s", summary_lib.model_path(out_dir) / summary_lib.SUMMARY_TXT)
  return {r.task: dict(r.metrics) for r in results}
