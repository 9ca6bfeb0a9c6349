"""Where a run without a checkpoint of its own starts: an initial checkpoint's parameters with a
fresh optimizer at step 0, or its whole train state (parameters, Adafactor state, step), as T5X's
fine-tuning does (the dataset position is never restored).

  state, message = initial_state.from_checkpoint(path, "train_state", model, optimizer, partitioner)

`"params"`: any checkpoint the interop reads (T5X legacy or Orbax, Hugging Face, this library's).
`"train_state"`: a T5X checkpoint (its `param_states` and step) or this library's
`<model_dir>/checkpoint_<step>`; Hugging Face checkpoints hold no optimizer state.
"""
import os

import jax
import numpy as np

from xfer_t5x.runtime import train_state as ts

INITIAL_STATES = ("params", "train_state")


class InitialStateError(ValueError):
  """An initial checkpoint that cannot start the run the way gin asks."""


def _own_checkpoint(path: str):
  """(model dir, step) when `path` is this library's `checkpoint_<step>` (Orbax, params and
  opt_state under `state`), else None."""
  from xfer_t5x.interop import t5x  # pylint: disable=g-import-not-at-top
  kind, ckpt_dir = t5x.find_checkpoint(path)
  if kind != "orbax":
    return None
  prefix, _ = t5x._orbax_params_tree(ckpt_dir)  # pylint: disable=protected-access
  if prefix == ("params",) and "opt_state" not in t5x.orbax_tree(ckpt_dir):
    raise InitialStateError(
        f"{path}: holds parameters only (a converted checkpoint), no optimizer state or step; "
        "use --gin.INITIAL_STATE=params (train.initial_state)")
  folder = os.path.dirname(ckpt_dir.rstrip("/")) if ckpt_dir.rstrip("/").endswith("/state") \
      else ckpt_dir
  name = os.path.basename(folder.rstrip("/"))
  if prefix != ("params",) or not name.startswith("checkpoint_"):
    return None
  return os.path.dirname(folder.rstrip("/")), int(name.split("_", 1)[1])


def optimizer_state(path: str, model, optimizer, partitioner):
  """(step, AdafactorState on the partitioner's mesh, what it is) of a checkpoint's train state,
  its parameters left unread: a T5X checkpoint's `param_states`, or this library's opt_state."""
  from xfer_t5x.interop import hf  # pylint: disable=g-import-not-at-top
  if not str(path).startswith("gs://") and os.path.exists(os.path.join(path, hf.CONFIG_FILE)):
    raise InitialStateError(
        f"{path}: a Hugging Face checkpoint holds no optimizer state or step, so "
        "train.initial_state='train_state' cannot continue it; use "
        "--gin.INITIAL_STATE=params (train.initial_state: a fresh optimizer at step 0), or start "
        "from the T5X checkpoint")
  own = _own_checkpoint(path)
  if own is not None:
    from xfer_t5x.runtime import checkpoints as ckpt_lib  # pylint: disable=g-import-not-at-top
    model_dir, step = own
    abstract = ts.abstract_state(model, optimizer, partitioner)
    with ckpt_lib.Checkpointer(model_dir, keep=None, async_save=False) as checkpointer:
      restored, _ = checkpointer.restore(step, {"opt_state": abstract.opt_state}, partial=True)
    return step, restored["opt_state"], "optimizer state"
  from xfer_t5x.interop import t5x_state  # pylint: disable=g-import-not-at-top
  step, opt_state = t5x_state.load_optimizer_state(
      path, optimizer, ts.state_shapes(model, optimizer).opt_state,
      ts.state_shardings(model, optimizer, partitioner).opt_state)
  return step, opt_state, "T5X's Adafactor state"


def from_checkpoint(path: str, mode: str, model, optimizer, partitioner, seed: int = 0):
  """(TrainState sharded on the partitioner's mesh, a line for the log). `seed` initialises
  what the checkpoint lacks (a dual encoder's projection)."""
  from xfer_t5x import interop  # pylint: disable=g-import-not-at-top
  if mode not in INITIAL_STATES:
    raise InitialStateError(f"train.initial_state={mode!r}: choose one of {INITIAL_STATES} "
                            "('train_state' continues the checkpoint's optimizer and step, as "
                            "T5X fine-tunes; 'params' starts a fresh optimizer at step 0)")
  shardings = ts.state_shardings(model, optimizer, partitioner)
  if getattr(model, "is_dual_encoder", False):
    return _dual_encoder_state(path, mode, model, optimizer, partitioner, shardings, seed)
  if mode == "params":
    params = interop.load_pretrained(path, model.config, shardings.params)
    return (ts.state_from_params(params, model, optimizer, partitioner),
            f"initialised from {path}: its parameters, a fresh optimizer, step 0")
  step, opt_state, what = optimizer_state(path, model, optimizer, partitioner)
  params = interop.load_pretrained(path, model.config, shardings.params)
  # Its own buffer: the step is donated to the train step beside the optimizer's count.
  step_array = jax.make_array_from_callback((), shardings.step,
                                            lambda _: np.asarray(step, np.int32))
  return (ts.TrainState(step_array, params, opt_state),
          f"initialised from {path}: its parameters, {what} and step {step} (the data position "
          "is not restored)")


def _dual_encoder_state(path, mode, model, optimizer, partitioner, shardings, seed):
  """A dual encoder starts from an encoder-decoder checkpoint of any phase: its token embedding
  and encoder (the decoder is read and dropped: the interop reads whole trees), the projection
  and temperature fresh, a fresh optimizer at step 0."""
  from xfer_t5x import interop  # pylint: disable=g-import-not-at-top
  from xfer_t5x.model.api import EncoderDecoderModel  # pylint: disable=g-import-not-at-top
  if mode != "params":
    raise InitialStateError(
        f"train.initial_state={mode!r}: a dual encoder keeps only the encoder of {path} and "
        "has its own optimizer state, so it starts with a fresh optimizer at step 0: use "
        "--gin.INITIAL_STATE=params (gin/models/dual_encoder.gin binds it when given after "
        "the run file)")
  encoder_decoder = EncoderDecoderModel(model.config)
  full = interop.load_pretrained(path, model.config, partitioner.shardings(
      encoder_decoder.logical_axes(), encoder_decoder.abstract_params()))
  with partitioner.activate():
    params = model.params_from_encoder_decoder(full, jax.random.PRNGKey(seed),
                                               shardings.params)
  del full
  return (ts.state_from_params(params, model, optimizer, partitioner),
          f"initialised the dual encoder from {path}: its token embedding and encoder (the "
          "decoder dropped), a fresh projection and temperature, a fresh optimizer, step 0")
