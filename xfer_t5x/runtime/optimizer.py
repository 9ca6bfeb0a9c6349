"""Adafactor with T5X's settings, factored by logical axes, and the learning-rate schedules.

T5X's fine-tuning recipe: no momentum, second-moment decay 1 - (t+1)^-0.8, update clipping at
RMS 1.0, learning rate scaled by the parameter's RMS (at least 1e-3). Which second moments are
factored, and along which dims, follows T5X exactly (`Adafactor._plan`), so the state moves to and
from T5X checkpoints as it is: a matrix is factored by size (`v_row` averages away its largest
dim, `v_col` its second largest), a scanned or higher-rank parameter by the logical factor rules
(row axis embed; column axes vocab, mlp, joined_kv, heads, kv; `layers` batched, with the RMS
taken per layer); everything else keeps a full `v`. Each statistic's logical axes are its
parameter's with the averaged axes dropped, so its sharding follows from the same rules.
"""
import enum
from typing import Callable, NamedTuple, Optional

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P


class FactorDim(enum.Enum):
  NONE = 0
  ROW = 1
  COLUMN = 2
  BATCH = 3


STANDARD_FACTOR_RULES = {
    "vocab": FactorDim.COLUMN, "embed": FactorDim.ROW, "mlp": FactorDim.COLUMN,
    "heads": FactorDim.COLUMN, "kv": FactorDim.COLUMN, "joined_kv": FactorDim.COLUMN,
    "relpos_buckets": FactorDim.NONE, "layers": FactorDim.BATCH, "length": FactorDim.NONE,
    "batch": FactorDim.BATCH, "stack": FactorDim.BATCH,
}


class Factored(NamedTuple):
  v_row: jnp.ndarray
  v_col: jnp.ndarray


class Full(NamedTuple):
  v: jnp.ndarray


class AdafactorState(NamedTuple):
  count: jnp.ndarray
  stats: object  # the params tree with a Factored or Full at each leaf


@gin.configurable
def learning_rate_schedule(kind: str = "constant", base_learning_rate: float = 1e-3,
                           warmup_steps: int = 10000, decay_factor: float = 1.0
                           ) -> Callable[[jnp.ndarray], jnp.ndarray]:
  """`constant` (fine-tuning: 1e-3) or `rsqrt` (pre-training: base / sqrt(max(step, warmup)),
  T5X's rsqrt_decay with `base_learning_rate` as its factor)."""
  if kind == "constant":
    return lambda step: jnp.asarray(base_learning_rate, jnp.float32)
  if kind == "rsqrt":
    return lambda step: jnp.asarray(
        base_learning_rate * decay_factor, jnp.float32) * jax.lax.rsqrt(
            jnp.maximum(jnp.asarray(step, jnp.float32), float(warmup_steps)))
  raise ValueError(f"learning_rate_schedule.kind={kind!r}: use 'constant' or 'rsqrt'")


def _rms(x, axes=None):
  """Root mean square over `axes` (all when None), kept broadcastable to x."""
  return jnp.sqrt(jnp.mean(jnp.square(x), axis=axes, keepdims=True))


@gin.configurable
class Adafactor:
  """T5X-style Adafactor. `param_axes` is the tree of logical PartitionSpecs of the params."""

  def __init__(self, param_axes, learning_rate: Optional[Callable] = None,
               decay_rate: float = 0.8, clipping_threshold: Optional[float] = 1.0,
               multiply_by_parameter_scale: bool = True, epsilon1: float = 1e-30,
               epsilon2: float = 1e-3, min_dim_size_to_factor: int = 128,
               factor_rules=None):
    self.param_axes = param_axes
    self.learning_rate = learning_rate or learning_rate_schedule()
    self.decay_rate = decay_rate
    self.clipping_threshold = clipping_threshold
    self.multiply_by_parameter_scale = multiply_by_parameter_scale
    self.epsilon1, self.epsilon2 = epsilon1, epsilon2
    self.min_dim_size_to_factor = min_dim_size_to_factor
    self.factor_rules = dict(STANDARD_FACTOR_RULES, **(factor_rules or {}))

  # --- which dims are averaged away (T5X's adafactor `_parse_rule` and `_factored_dims`) --
  def _plan(self, axes, shape):
    """(dims the RMS of the update and of the parameter average over, (row dims, column dims)
    if the second moment is factored, else None), decided as T5X decides it:

    - each logical axis maps to ROW, COLUMN, BATCH or NONE through the factor rules; a parameter
      without both a ROW and a COLUMN axis has neither;
    - a parameter of rank <= 2 without a BATCH axis ignores the rules and uses T5X's size
      heuristic: factored if its second largest dim is at least `min_dim_size_to_factor`,
      `v_row` averaging away the largest dim (the later one on a tie) and `v_col` the other;
    - otherwise (a scanned layer axis, or rank > 2) the rules decide, and the RMS is taken per
      BATCH index (per layer).
    """
    ndim = len(shape)
    axes = tuple(axes) + (None,) * (ndim - len(tuple(axes)))
    kinds = [self.factor_rules.get(a, FactorDim.NONE) if a else FactorDim.NONE for a in axes]
    if FactorDim.ROW not in kinds or FactorDim.COLUMN not in kinds:
      kinds = [FactorDim.NONE if k in (FactorDim.ROW, FactorDim.COLUMN) else k for k in kinds]
    batched = tuple(i for i, k in enumerate(kinds) if k == FactorDim.BATCH)
    averaging = tuple(i for i in range(ndim) if i not in batched)
    if ndim <= 2 and not batched:
      if ndim < 2:
        return averaging, None
      order = np.argsort(shape)  # as T5X: ties keep their order, so the later dim is "largest"
      if shape[order[-2]] < self.min_dim_size_to_factor:
        return averaging, None
      return averaging, ((int(order[-2]),), (int(order[-1]),))
    rows = tuple(i for i, k in enumerate(kinds) if k == FactorDim.ROW)
    cols = tuple(i for i, k in enumerate(kinds) if k == FactorDim.COLUMN)
    return averaging, ((rows, cols) if rows and cols else None)

  def _dims(self, axes, shape):
    """(row dims, column dims) if this parameter's second moment is factored, else None."""
    return self._plan(axes, shape)[1]

  def _map(self, fn, *trees):
    return jax.tree_util.tree_map(fn, self.param_axes, *trees,
                                  is_leaf=lambda x: isinstance(x, P))

  # --- optax-like interface -------------------------------------------------------------
  def init(self, params) -> AdafactorState:
    def leaf(axes, p):
      dims = self._dims(tuple(axes), p.shape)
      if dims is None:
        return Full(jnp.zeros(p.shape, jnp.float32))
      rows, cols = dims
      return Factored(jnp.zeros([s for i, s in enumerate(p.shape) if i not in cols], jnp.float32),
                      jnp.zeros([s for i, s in enumerate(p.shape) if i not in rows], jnp.float32))
    return AdafactorState(jnp.zeros([], jnp.int32), self._map(leaf, params))

  def state_logical_axes(self, abstract_params) -> AdafactorState:
    """Logical PartitionSpecs of the state: each statistic keeps its parameter's axes minus
    the ones it averages over."""
    def leaf(axes, p):
      axes = tuple(axes) + (None,) * (len(p.shape) - len(tuple(axes)))
      dims = self._dims(axes, p.shape)
      if dims is None:
        return Full(P(*axes))
      rows, cols = dims
      return Factored(P(*[a for i, a in enumerate(axes) if i not in cols]),
                      P(*[a for i, a in enumerate(axes) if i not in rows]))
    return AdafactorState(P(), self._map(leaf, abstract_params))

  def update(self, grads, state: AdafactorState, params):
    step = state.count
    decay = 1.0 - jnp.power(step.astype(jnp.float32) + 1.0, -self.decay_rate)
    lr = self.learning_rate(step)

    def leaf(axes, g, s, p):
      g = g.astype(jnp.float32)
      g2 = jnp.square(g) + self.epsilon1
      averaging, dims = self._plan(tuple(axes), p.shape)
      if isinstance(s, Factored):
        rows, cols = dims
        v_row = decay * s.v_row + (1 - decay) * jnp.mean(g2, axis=cols)
        v_col = decay * s.v_col + (1 - decay) * jnp.mean(g2, axis=rows)
        row_mean = jnp.mean(v_row, axis=tuple(r - sum(c < r for c in cols) for r in rows),
                            keepdims=True)
        row_factor = jnp.expand_dims(jax.lax.rsqrt(v_row / row_mean), cols)
        col_factor = jnp.expand_dims(jax.lax.rsqrt(v_col), rows)
        y = g * row_factor * col_factor
        new = Factored(v_row, v_col)
      else:
        v = decay * s.v + (1 - decay) * g2
        y = g * jax.lax.rsqrt(v)
        new = Full(v)
      if self.clipping_threshold is not None:
        y = y / jnp.maximum(1.0, _rms(y, averaging) / self.clipping_threshold)
      scale = lr
      if self.multiply_by_parameter_scale:
        scale = lr * jnp.maximum(self.epsilon2, _rms(p.astype(jnp.float32), averaging))
      return -scale * y, new

    pairs = self._map(leaf, grads, state.stats, params)
    is_pair = lambda x: isinstance(x, tuple) and len(x) == 2 and not isinstance(x, (Full, Factored))
    updates = jax.tree_util.tree_map(lambda t: t[0], pairs, is_leaf=is_pair)
    stats = jax.tree_util.tree_map(lambda t: t[1], pairs, is_leaf=is_pair)
    return updates, AdafactorState(step + 1, stats)


def apply_updates(params, updates):
  return optax.apply_updates(params, updates)
