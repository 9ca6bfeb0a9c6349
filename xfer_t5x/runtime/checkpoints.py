"""Orbax checkpoints in the model dir, T5X's layout: `<model_dir>/checkpoint_<step>/`.

Each step directory holds two items, and a third when the train loop gives its input iterator:
  state/   the train state pytree (arrays, written sharded by every process; TensorStore)
  extra/   small JSON metadata of the run (data iterator position, config hash, ...)
  data/    every host's tf.data input iterator, one file per process (`input_checkpoint`)

`Checkpointer` wraps `orbax.checkpoint.CheckpointManager`: keep the last N, save every K steps
(or when forced: preemption, end of training), async where the backend allows, and restore into
the sharding that the caller's abstract state asks for, which may be another mesh than the one
that saved. Before restoring, the saved tree is compared with the model's: a model dir that holds
a checkpoint of another model is refused with the first differing variable named.

Only complete checkpoints count: Orbax writes into `checkpoint_<step>.orbax-checkpoint-tmp-*` and
renames when done, so a save killed half-way is never listed, and it is cleaned up at the next
start.

Every process calls every method (multi-host): Orbax coordinates the writes.
"""
import json
import logging
import os
import signal
import threading
from typing import Any, Dict, List, Mapping, Optional, Tuple

import jax
import orbax.checkpoint as ocp
from etils import epath

from xfer_t5x.runtime import distributed
from xfer_t5x.runtime import early_sigterm
from xfer_t5x.runtime import input_checkpoint

STEP_PREFIX = "checkpoint"
STATE_ITEM = "state"
EXTRA_ITEM = "extra"
DATA_ITEM = input_checkpoint.DATA_ITEM
_COMPLETE_MARKERS = ("commit_success.txt", "_CHECKPOINT_METADATA")

LIKELY_CAUSE = (
    "Likely cause: this model dir holds a checkpoint of another model (e.g. mt5_small vs "
    "mt5_base, or another vocabulary size); use a fresh --gin.MODEL_DIR or the matching model gin "
    "file. The checkpoint was not restored.")


class CheckpointMismatchError(ValueError):
  """The checkpoint's variables do not match the model's (names or shapes)."""


class CorruptCheckpointError(ValueError):
  """A complete-looking checkpoint that cannot be read (a truncated or damaged file)."""

  def __init__(self, checkpoint: str, file: str, detail: str):
    super().__init__(f"checkpoint {checkpoint} cannot be read: {file}: {detail}")
    self.checkpoint, self.file, self.detail = checkpoint, file, detail


# The JSON files of a step folder (Orbax's metadata and the extra item).
_JSON_FILES = ("_CHECKPOINT_METADATA", "state/_METADATA", "state/_sharding", "extra/metadata")


def as_path(model_dir) -> epath.Path:
  """A local path (made absolute) or a remote one such as gs://bucket/run, as an epath.Path."""
  text = os.fspath(model_dir)
  if "://" in text:
    return epath.Path(text)
  return epath.Path(os.path.abspath(os.path.expanduser(text)))


def checkpoint_dir(model_dir, step: int) -> epath.Path:
  """`<model_dir>/checkpoint_<step>`."""
  return as_path(model_dir) / f"{STEP_PREFIX}_{step}"


# ------------------------------------------------------------------------------------------------
# Comparing trees


def _key_str(k) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def path_str(path) -> str:
  """'params/encoder/layers_0/attention/query/kernel' for a jax key path."""
  return "/".join(_key_str(k) for k in path)


def flat_shapes(tree) -> Dict[str, Tuple[int, ...]]:
  """{path: shape} of every leaf with a shape (arrays, ShapeDtypeStructs, Orbax ArrayMetadata)."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    shape = getattr(leaf, "shape", None)
    if shape is None:  # a Python scalar or string leaf: compare it as a scalar
      shape = ()
    out[path_str(path)] = tuple(int(d) for d in shape)
  return out


def _order(paths: List[str]) -> List[str]:
  """Model parameters first (the message should name one), then the rest, stable."""
  return sorted(paths, key=lambda p: (not p.startswith("params/") and "/params/" not in p))


def compare_trees(saved: Mapping[str, Tuple[int, ...]], wanted: Mapping[str, Tuple[int, ...]],
                  where: str, partial: bool = False) -> None:
  """Raises CheckpointMismatchError naming the first differing variable, or returns.

  Args:
    saved: {path: shape} in the checkpoint.
    wanted: {path: shape} of the abstract state to restore into.
    where: the checkpoint's path, for the message.
    partial: only `wanted`'s variables must be present (the checkpoint may hold more).
  """
  wrong_shape = [p for p in _order(list(wanted)) if p in saved and saved[p] != wanted[p]]
  missing = [p for p in _order(list(wanted)) if p not in saved]
  extra = [] if partial else [p for p in _order(list(saved)) if p not in wanted]
  n_bad = len(wrong_shape) + len(missing) + len(extra)
  if not n_bad:
    return
  if wrong_shape:
    p = wrong_shape[0]
    first = (f"variable '{p}' has shape {saved[p]} in the checkpoint but {wanted[p]} in the model "
             f"being restored")
  elif missing:
    first = f"variable '{missing[0]}' of the model is not in the checkpoint"
  else:
    first = f"the checkpoint has a variable '{extra[0]}' that the model does not have"
  raise CheckpointMismatchError(
      f"checkpoint {where} does not match the model: {first} ({n_bad} variables differ: "
      f"{len(wrong_shape)} in shape, {len(missing)} missing from the checkpoint, {len(extra)} "
      f"only in the checkpoint). {LIKELY_CAUSE}")


# ------------------------------------------------------------------------------------------------
# The checkpointer


class Checkpointer:
  """Keep-N Orbax checkpoints of a train state in `model_dir`, with a small JSON beside each.

  Args:
    model_dir: the run's model dir; checkpoints go in `model_dir/checkpoint_<step>`.
    keep: how many of the latest checkpoints to keep (None: all).
    async_save: write in the background (the next train steps overlap the write); `wait()` or
      `close()` block until the writes are done.
    save_interval_steps: `save` without `force` writes only at multiples of this.
  """

  def __init__(self, model_dir, keep: Optional[int] = 3, async_save: bool = True,
               save_interval_steps: int = 1):
    if keep is not None and keep < 1:
      raise ValueError(f"Checkpointer keep={keep}: keep at least 1 checkpoint (or None for all)")
    if save_interval_steps < 1:
      raise ValueError(f"Checkpointer save_interval_steps={save_interval_steps}: must be >= 1")
    self.model_dir = as_path(model_dir)
    self.save_interval_steps = int(save_interval_steps)
    # The save interval is ours (T5X's: steps that are multiples of it); Orbax's would also save
    # the first step it sees.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        step_prefix=STEP_PREFIX,
        create=True,
        cleanup_tmp_directories=True,
        enable_async_checkpointing=async_save,
    )
    self._name_format = ocp.step.standard_name_format(step_prefix=STEP_PREFIX)
    # Handlers are named up front so that a fresh manager can read metadata and restore.
    self._manager = ocp.CheckpointManager(
        str(self.model_dir), options=options,
        item_handlers={STATE_ITEM: ocp.PyTreeCheckpointHandler(),
                       EXTRA_ITEM: ocp.JsonCheckpointHandler(),
                       DATA_ITEM: input_checkpoint.InputIteratorHandler()})

  # -- queries -----------------------------------------------------------------------------------

  def all_steps(self) -> List[int]:
    """Steps of the complete checkpoints on disk, ascending (read from disk each time).

    Orbax's finalized step folders (a save killed mid-write keeps its temporary name and is not
    listed) that also hold Orbax's commit markers. Waits for no pending save.
    """
    steps = []
    for step in sorted(m.step for m in self._name_format.find_all(self.model_dir)):
      d = checkpoint_dir(self.model_dir, step)
      if any((d / m).exists() for m in _COMPLETE_MARKERS):
        steps.append(step)
    return sorted(steps)

  def latest_step(self) -> Optional[int]:
    """The step of the latest complete checkpoint, or None."""
    steps = self.all_steps()
    return steps[-1] if steps else None

  def should_save(self, step: int) -> bool:
    """Whether `save(step, ...)` without force would write (a multiple of the save interval)."""
    return int(step) % self.save_interval_steps == 0

  def saved_shapes(self, step: int) -> Dict[str, Tuple[int, ...]]:
    """{path: shape} of the train state saved at `step` (read from metadata, no arrays)."""
    meta = self._manager.item_metadata(step)[STATE_ITEM]
    tree = getattr(meta, "tree", meta)
    if tree is None:
      raise FileNotFoundError(f"{checkpoint_dir(self.model_dir, step)} has no '{STATE_ITEM}' item")
    return flat_shapes(tree)

  # -- save --------------------------------------------------------------------------------------

  def save(self, step: int, state: Any, extra_json: Optional[Mapping[str, Any]] = None,
           force: bool = False, input_iterator: Any = None) -> bool:
    """Saves `state` (any pytree of jax arrays) and `extra_json` at `step`.

    `extra_json` must be JSON-serialisable and the same on every process (Orbax writes it from
    the primary one): data iterator position, config hash, and so on.
    `input_iterator` (a `data.DataIterator`; optional): every process writes its own iterator
    into `data/` before this call returns (it is small: positions and buffers).
    Returns True if a save was started; False if the interval said no or `step` is saved already.
    """
    step = int(step)
    if step in self._manager.all_steps():
      return False
    if not force and not self.should_save(step):
      return False
    items = {
        STATE_ITEM: ocp.args.PyTreeSave(state),
        EXTRA_ITEM: ocp.args.JsonSave(dict(extra_json or {})),
    }
    if input_iterator is not None:
      items[DATA_ITEM] = input_checkpoint.InputIteratorSave(input_iterator)
    args = ocp.args.Composite(**items)
    return bool(self._manager.save(step, args=args, force=True))

  def wait(self) -> None:
    """Blocks until every started save is complete on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases Orbax's resources."""
    self._manager.wait_until_finished()
    self._manager.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  # -- restore -----------------------------------------------------------------------------------

  def input_iterator_dir(self, step: int) -> str:
    """Where the hosts' input iterators of checkpoint `step` are (the directory may be absent:
    a checkpoint written without them, or by an older version)."""
    return str(checkpoint_dir(self.model_dir, step) / DATA_ITEM)

  def restore(self, step: Optional[int], abstract_state: Any,
              partial: bool = False) -> Tuple[Any, Dict[str, Any]]:
    """Restores the state saved at `step` (None: the latest) into `abstract_state`'s layout.

    Args:
      step: the step to restore, or None for the latest complete checkpoint.
      abstract_state: the train state as a pytree of `jax.ShapeDtypeStruct` carrying a
        `.sharding` (e.g. NamedSharding on the current mesh, which may differ from the saving
        mesh); arrays come back with these shardings.
      partial: restore only the variables in `abstract_state` (e.g. `{"params": ...}` to start
        a fine-tune from a checkpoint's parameters with a fresh optimizer).

    Returns:
      (state, extra_json).

    Raises:
      FileNotFoundError: no complete checkpoint (at that step).
      CheckpointMismatchError: the checkpoint's variables or shapes differ from the model's.
      CorruptCheckpointError: a file of the checkpoint cannot be read (named in the message).
    """
    if step is None:
      step = self.latest_step()
      if step is None:
        raise FileNotFoundError(f"no complete checkpoint in {self.model_dir}")
    elif step not in self.all_steps():
      raise FileNotFoundError(
          f"no complete checkpoint {checkpoint_dir(self.model_dir, step)}; complete ones are "
          f"at steps {self.all_steps()}")
    where = str(checkpoint_dir(self.model_dir, step))
    self.validate(step)
    try:
      saved = self.saved_shapes(step)
    except Exception as e:  # pylint: disable=broad-except
      raise CorruptCheckpointError(where, f"{STATE_ITEM}/ metadata", _root_cause(e)) from e
    compare_trees(saved, flat_shapes(abstract_state), where, partial=partial)
    state_args = ocp.args.PyTreeRestore(
        item=abstract_state,
        restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_state),
        partial_restore=partial)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**{
          STATE_ITEM: state_args, EXTRA_ITEM: ocp.args.JsonRestore()}))
    except Exception as e:  # pylint: disable=broad-except
      # TensorStore names the OCDBT database and the array that could not be read.
      raise CorruptCheckpointError(where, f"{STATE_ITEM}/ (the array files)",
                                   _root_cause(e)) from e
    return restored[STATE_ITEM], dict(restored[EXTRA_ITEM] or {})

  def validate(self, step: int) -> None:
    """Raises CorruptCheckpointError naming the first of the step folder's JSON files that does
    not parse (the arrays are checked by reading them)."""
    d = checkpoint_dir(self.model_dir, step)
    for name in _JSON_FILES:
      path = d / name
      if not path.exists():
        continue
      try:
        json.loads(path.read_text())
      except (ValueError, UnicodeDecodeError) as e:
        raise CorruptCheckpointError(str(d), name, f"not valid JSON ({e})") from e

  def move_aside(self, step: int) -> str:
    """Moves checkpoint `step` to `<model_dir>/corrupt/checkpoint_<step>-<n>` (never deletes);
    returns the new path. Call it on the primary process only, then sync."""
    src = checkpoint_dir(self.model_dir, step)
    folder = self.model_dir / "corrupt"
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    while (folder / f"{src.name}-{n}").exists():
      n += 1
    dst = folder / f"{src.name}-{n}"
    src.rename(dst)
    return str(dst)

  def reload(self) -> None:
    """Forgets what the manager knew of the folder (after a checkpoint was moved away)."""
    self._manager.reload()


def _root_cause(e: BaseException) -> str:
  """The innermost message of an exception chain (TensorStore's, under Orbax's wrappers)."""
  while e.__cause__ is not None or (e.__context__ is not None and not e.__suppress_context__):
    e = e.__cause__ or e.__context__
  return str(e).strip().splitlines()[0][:500] if str(e).strip() else type(e).__name__


# ------------------------------------------------------------------------------------------------
# Preemption


def _preemption_sync_available() -> bool:
  """True when jax.distributed runs with its preemption service (it watches SIGTERM itself)."""
  if not jax.distributed.is_initialized():
    return False
  try:
    from jax._src import distributed  # pylint: disable=g-import-not-at-top
    return getattr(distributed.global_state, "preemption_sync_manager", None) is not None
  except (ImportError, AttributeError):
    return bool(getattr(jax.config, "jax_enable_preemption_service", False))


class PreemptionFlag:
  """Notices a preemption (SIGTERM) so that the train loop can save and exit cleanly, at a step
  every process agrees on.

  Under `jax.distributed` with its preemption service, JAX watches SIGTERM on every host and
  `requested(step)` asks `multihost_utils.reached_preemption_sync_point(step)`, True on all hosts
  at the same step. Several processes without the service: a SIGTERM handler raises this host's
  flag, and `requested(step)` gathers every host's flag (a one-integer all-gather per step), so a
  signal to any one host stops all of them at the same step; no host ever decides alone, or one
  would enter the checkpoint's collectives while another runs a step. One process: the handler's
  flag is the answer. The loop calls `requested(step)` once per step, on every process, with the
  same step numbers.
  """

  def __init__(self, signals=(signal.SIGTERM,)):
    self._signals = tuple(signals)
    self._event = threading.Event()
    self._agreed = False
    self._previous = {}
    self._use_sync_point = False
    self._gather = False

  def install(self) -> "PreemptionFlag":
    self._use_sync_point = _preemption_sync_available()
    if self._use_sync_point:
      logging.info("preemption: using jax.distributed's preemption sync point")
      return self
    self._gather = jax.process_count() > 1
    if self._gather:
      logging.info("preemption: jax.distributed's preemption service is off; the %d processes "
                   "agree on the step by gathering their flags every step", jax.process_count())
    if threading.current_thread() is not threading.main_thread():
      raise RuntimeError("PreemptionFlag.install() must run in the main thread (signal handlers)")
    for sig in self._signals:
      self._previous[sig] = signal.signal(sig, self._handle)
    if signal.SIGTERM in self._signals and early_sigterm.received():
      logging.warning("received SIGTERM during start-up: will exit before the first step")
      self._event.set()
    return self

  def uninstall(self) -> None:
    """Puts back the handlers that were there before `install()`."""
    for sig, prev in self._previous.items():
      signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
    self._previous.clear()

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    logging.warning("received signal %d: will save a checkpoint and stop after this step", signum)
    self._event.set()

  def set(self) -> None:
    """Raises this host's flag by hand (tests; or another notice than a signal)."""
    self._event.set()

  def requested(self, step: Optional[int] = None) -> bool:
    """True once a preemption was noticed, at the step all processes agree on."""
    if self._agreed:
      return True
    if self._gather:
      self._agreed = distributed.any_process(self._event.is_set())
    elif self._event.is_set():
      self._agreed = True
    elif self._use_sync_point and step is not None:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      self._agreed = bool(multihost_utils.reached_preemption_sync_point(int(step)))
    return self._agreed


def save_on_preemption(flag: PreemptionFlag, checkpointer: Checkpointer, step: int, state: Any,
                       extra_json: Optional[Mapping[str, Any]] = None) -> bool:
  """If a preemption was requested: save now (forced), wait until it is on disk, return True."""
  if not flag.requested(step):
    return False
  checkpointer.save(step, state, extra_json, force=True)
  checkpointer.wait()
  logging.warning("preemption: checkpoint %s saved", checkpoint_dir(checkpointer.model_dir, step))
  return True

