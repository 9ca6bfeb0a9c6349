"""T5X's Adafactor state: read from T5X checkpoints into this library's optimizer state, sharded.

T5X keeps it beside the parameters: the step, and per parameter `param_states/<path>/{v, v_row,
v_col, m}`, where the statistics a parameter does not use are shape-(1,) placeholders (a factored
parameter has `v_row`/`v_col`, an unfactored one `v`; `m` only with momentum, which mT5 does not
use). Legacy checkpoints hold them in the msgpack tree `optimizer/state` (zarr arrays or inline),
T5X's Orbax checkpoints in the item's `state` subtree. Since `runtime.optimizer.Adafactor` factors
exactly as T5X does, every statistic maps onto the same-shaped leaf here; a shape that differs
(another `min_dim_size_to_factor`, another model) is refused with the parameter named.

  step, opt_state = load_optimizer_state(path, optimizer, stats_shapes, shardings)
"""
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from xfer_t5x.interop import regions
from xfer_t5x.interop import t5x
from xfer_t5x.model import scan

PLACEHOLDER_SHAPE = (1,)
STATS = ("v_row", "v_col", "v", "m")


class OptimizerStateError(ValueError):
  """A checkpoint's optimizer state that does not fit this run's optimizer."""


def _legacy_state(ckpt_dir: str):
  """(step, {"<param path>/<stat>": Source}) of a legacy T5X checkpoint."""
  state = t5x.legacy_tree(ckpt_dir).get("state")
  if not isinstance(state, Mapping) or "param_states" not in state:
    raise OptimizerStateError(f"{ckpt_dir}: the checkpoint holds no optimizer state "
                              "(optimizer/state/param_states)")
  return (int(np.asarray(state.get("step", 0))),
          t5x.legacy_sources(state["param_states"], ckpt_dir))


def _orbax_state(ckpt_dir: str):
  """(step, {name: shape}) of T5X's Orbax checkpoint (restored later, by name)."""
  tree = t5x.orbax_tree(ckpt_dir)
  state = tree.get("state") if isinstance(tree, Mapping) else None
  if not isinstance(state, Mapping) or "param_states" not in state:
    raise OptimizerStateError(f"{ckpt_dir}: an Orbax checkpoint without T5X's optimizer state "
                              "(state/param_states)")
  shapes = {k: tuple(v.shape) for k, v in scan.flatten(state["param_states"]).items()}
  step = t5x._orbax_restore(ckpt_dir, ("state",), {"step": ()}, None, np.int64)["step"]  # pylint: disable=protected-access
  return int(np.asarray(step)), shapes


def named_stats(leaf) -> Dict[str, Any]:
  """The statistics a state leaf keeps, by T5X's names: v_row and v_col (factored), or v."""
  from xfer_t5x.runtime.optimizer import Factored  # pylint: disable=g-import-not-at-top
  return dict(zip(("v_row", "v_col"), leaf)) if isinstance(leaf, Factored) else {"v": leaf.v}


def _leaves(stats_shapes) -> Dict[str, Dict[str, Tuple[int, ...]]]:
  """{param path: {stat: shape}} of this optimizer's state (Factored: v_row, v_col; Full: v)."""
  flat, _ = _flatten(stats_shapes)
  return {path: {k: tuple(v.shape) for k, v in named_stats(leaf).items()}
          for path, leaf in flat.items()}


def _flatten(stats):
  from xfer_t5x.runtime.optimizer import Factored, Full  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  is_leaf = lambda x: isinstance(x, (Factored, Full))
  pairs, treedef = jax.tree_util.tree_flatten_with_path(stats, is_leaf=is_leaf)
  flat = {"/".join(str(getattr(k, "key", k)) for k in path): leaf for path, leaf in pairs}
  return flat, treedef


def _check(found: Mapping[str, Tuple[int, ...]], wanted, ckpt_dir: str, min_dim: int) -> None:
  for param, stats in wanted.items():
    for stat, shape in stats.items():
      have = found.get(f"{param}/{stat}")
      if have == shape:
        continue
      other = "v" if stat != "v" else "v_row"
      how = ("is not there" if have is None else
             "is a placeholder (T5X did not use it)" if have == PLACEHOLDER_SHAPE else
             f"has shape {have}")
      raise OptimizerStateError(
          f"{ckpt_dir}: the optimizer state of {param} does not fit this run: its {stat} "
          f"{how}, this optimizer's has shape {shape}"
          + (f" (the checkpoint keeps {other} {found.get(f'{param}/{other}')})"
             if f"{param}/{other}" in found else "")
          + f". Factoring follows T5X's rule with min_dim_size_to_factor={min_dim}: bind "
          "Adafactor.min_dim_size_to_factor to the value the checkpoint was trained with, or "
          "start with a fresh optimizer (--gin.INITIAL_STATE=params, i.e. "
          "train.initial_state = 'params').")
    momentum = found.get(f"{param}/m")
    if momentum not in (None, PLACEHOLDER_SHAPE):
      raise OptimizerStateError(
          f"{ckpt_dir}: {param} has a momentum `m` of shape {momentum}: the checkpoint was "
          "trained with beta1, which this Adafactor (T5X's mT5 settings, no momentum) does not "
          "keep; start with a fresh optimizer (--gin.INITIAL_STATE=params, i.e. "
          "train.initial_state = 'params').")


def load_optimizer_state(path: str, optimizer, stats_shapes, shardings: Optional[Any] = None):
  """(step, AdafactorState) from the T5X checkpoint at `path` (legacy or Orbax).

  Args:
    path: a T5X checkpoint folder (as `t5x.find_checkpoint` accepts), local or gs://.
    optimizer: the run's `Adafactor` (its factoring decides which statistics are read).
    stats_shapes: the run's `AdafactorState` of ShapeDtypeStructs (train_state.state_shapes).
    shardings: the matching AdafactorState of shardings; None: numpy arrays on this host.
  """
  from xfer_t5x.runtime.optimizer import AdafactorState  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  kind, ckpt_dir = t5x.find_checkpoint(path)
  wanted = _leaves(stats_shapes.stats)
  if any(scan.scanned_name(p) for p in wanted):
    raise OptimizerStateError(
        f"{ckpt_dir}: the optimizer state of a scanned model (T5Config.scan_layers) is not "
        "imported from T5X's unrolled layout; start with a fresh optimizer "
        "(--gin.INITIAL_STATE=params, i.e. train.initial_state = 'params') or train "
        "unscanned")
  flat_shardings = None
  if shardings is not None:
    flat_shardings = {f"{p}/{stat}": sh for p, leaf in _flatten(shardings.stats)[0].items()
                      for stat, sh in named_stats(leaf).items()}
  names = {f"{p}/{stat}": shape for p, stats in wanted.items() for stat, shape in stats.items()}
  if kind == "legacy":
    step, sources = _legacy_state(ckpt_dir)
    _check({k: tuple(v.shape) for k, v in sources.items()}, wanted, ckpt_dir,
           optimizer.min_dim_size_to_factor)
    arrays = regions.materialise({n: sources[n] for n in names}, flat_shardings, np.float32)
  else:
    step, found = _orbax_state(ckpt_dir)
    _check(found, wanted, ckpt_dir, optimizer.min_dim_size_to_factor)
    arrays = t5x._orbax_restore(ckpt_dir, ("state", "param_states"), names,  # pylint: disable=protected-access
                                flat_shardings, np.float32)
  flat, treedef = _flatten(stats_shapes.stats)
  leaves = [type(leaf)(**{stat: arrays[f"{p}/{stat}"] for stat in named_stats(leaf)})
            for p, leaf in flat.items()]
  count = np.asarray(step, np.int32)
  if shardings is not None:
    count = jax.make_array_from_callback((), shardings.count, lambda _: count)
  return step, AdafactorState(count, jax.tree_util.tree_unflatten(treedef, leaves))
