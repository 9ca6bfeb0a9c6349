"""Where a run without a checkpoint of its own starts: an initial checkpoint's parameters with a
fresh optimizer at step 0, or its whole train state (parameters, Adafactor state, step), as T5X's
fine-tuning does (the dataset position is never restored).

  state, message = initial_state.from_checkpoint(path, "train_state", model, optimizer, partitioner)

`"params"`: any checkpoint the interop reads (T5X legacy or Orbax, Hugging Face, this library's).
`"train_state"`: a T5X checkpoint (its `param_states` and step) or this library's
`<model_dir>/checkpoint_<step>`; Hugging Face checkpoints hold no optimizer state.
"""
import os

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
  if prefix == ("params",) and "opt_state" not in _top_level_keys(ckpt_dir):
    raise InitialStateError(
        f"{path}: holds parameters only (a converted checkpoint), no optimizer state or step; "
        "use --gin.INITIAL_STATE=params (train.initial_state)")
  folder = os.path.dirname(ckpt_dir.rstrip("/")) if ckpt_dir.rstrip("/").endswith("/state") \
      else ckpt_dir
  name = os.path.basename(folder.rstrip("/"))
  if prefix != ("params",) or not name.startswith("checkpoint_"):
    return None
  return os.path.dirname(folder.rstrip("/")), int(name.split("_", 1)[1])


def _top_level_keys(ckpt_dir: str):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  md = ocp.PyTreeCheckpointer().metadata(ckpt_dir)
  tree = getattr(getattr(md, "item_metadata", md), "tree", None)
  tree = tree if tree is not None else md
  return set(tree) if hasattr(tree, "keys") else set()


def from_checkpoint(path: str, mode: str, model, optimizer, partitioner):
  """(TrainState sharded on the partitioner's mesh, a line for the log)."""
  from xfer_t5x import interop  # pylint: disable=g-import-not-at-top
  from xfer_t5x.interop import hf  # pylint: disable=g-import-not-at-top
  if mode not in INITIAL_STATES:
    raise InitialStateError(f"train.initial_state={mode!r}: choose one of {INITIAL_STATES} "
                            "('train_state' continues the checkpoint's optimizer and step, as "
                            "T5X fine-tunes; 'params' starts a fresh optimizer at step 0)")
  shardings = ts.state_shardings(model, optimizer, partitioner)
  if mode == "params":
    params = interop.load_pretrained(path, model.config, shardings.params)
    return (ts.state_from_params(params, model, optimizer, partitioner),
            f"initialised from {path}: its parameters, a fresh optimizer, step 0")
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
    with ckpt_lib.Checkpointer(model_dir, keep=None, async_save=False) as checkpointer:
      state, _ = checkpointer.restore(step, ts.abstract_state(model, optimizer, partitioner))
    return state, (f"initialised from {path}: its parameters, optimizer state and step "
                   f"{int(state.step)} (the data position is not restored)")
  from xfer_t5x.interop import t5x_state  # pylint: disable=g-import-not-at-top
  params = interop.load_pretrained(path, model.config, shardings.params)
  shapes = ts.state_shapes(model, optimizer)
  step, opt_state = t5x_state.load_optimizer_state(path, optimizer, shapes.opt_state,
                                                   shardings.opt_state)
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  # Its own buffer: the step is donated to the train step beside the optimizer's count.
  step_array = jax.make_array_from_callback((), shardings.step,
                                            lambda _: np.asarray(step, np.int32))
  state = ts.TrainState(step_array, params, opt_state)
  return state, (f"initialised from {path}: its parameters, T5X's Adafactor state and step "
                 f"{step} (the data position is not restored)")
