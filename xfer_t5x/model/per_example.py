"""Per-example work of decoding kept on each example's shard of the mesh.

Beam search chooses each example's next beams by top-k over its beams x vocabulary. XLA's
partitioner runs a TopK unpartitioned, so under a ('data', 'model') mesh it all-gathers the
whole batch's log-probabilities (and a flat gather over batch x beams, the whole key/value cache)
every step. `per_example` runs such a function under `shard_map`, manual over the mesh axes of
the logical `batch` axis (and of `vocab`, for one argument whose last dimension is the
vocabulary), so that every device works on its own examples; `top_k_over_vocab` finds the top
entries of a vocabulary split over devices from each device's own top entries.

Outside a partitioner's `activate()` (no axis rules, no mesh) both are the plain computation.
"""
import functools
from typing import Callable, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec


def mesh_axes(logical: str) -> Tuple[str, ...]:
  """The active mesh's axes that the logical axis maps to under the active rules (or ())."""
  rules = nn.get_logical_axis_rules()
  mesh = jax.sharding.get_abstract_mesh()
  if not rules or mesh.empty:
    return ()
  axes = nn.logical_to_mesh_axes((logical,), rules)[0]
  if axes is None:
    return ()
  axes = (axes,) if isinstance(axes, str) else tuple(axes)
  return tuple(a for a in axes if a in mesh.axis_names)


def _size(axes: Sequence[str]) -> int:
  mesh = jax.sharding.get_abstract_mesh()
  return int(np.prod([mesh.shape[a] for a in axes])) if axes else 1


def on_batch(x, batch_axis: int = 0):
  """`x` constrained to have dimension `batch_axis` on the batch's mesh axes, the others left to
  the partitioner (a no-op outside `activate()`)."""
  axes = mesh_axes("batch")
  if not axes or x.shape[batch_axis] % _size(axes):
    return x
  spec = [PartitionSpec.UNCONSTRAINED] * x.ndim
  spec[batch_axis] = axes if len(axes) > 1 else axes[0]
  return lax.with_sharding_constraint(x, PartitionSpec(*spec))


def top_k_over_vocab(x, k: int, vocab_axes: Tuple[str, ...] = ()):
  """(values, token ids) of the top `min(k, vocabulary)` over the last dimension of `x`, best
  first, ties in token order (as `lax.top_k`). Inside `per_example` with `vocab_axes`, `x` holds
  this device's slice of the vocabulary: each device takes its own top entries, and the top of
  the gathered candidates is the top of the whole vocabulary."""
  values, tokens = lax.top_k(x, min(k, x.shape[-1]))
  if not vocab_axes:
    return values, tokens
  shard = lax.axis_index(vocab_axes)
  tokens = tokens + shard * x.shape[-1]
  # [..., shards * k], shards in order: equal values keep the lower token first.
  values = lax.all_gather(values, vocab_axes, axis=x.ndim - 1, tiled=True)
  tokens = lax.all_gather(tokens, vocab_axes, axis=x.ndim - 1, tiled=True)
  values, pick = lax.top_k(values, min(k, values.shape[-1]))
  return values, jnp.take_along_axis(tokens, pick, axis=-1)


def per_example(fn: Callable, *args, vocab_arg: Optional[int] = None):
  """`fn(*args, vocab_axes=...)` with every argument's leading (batch) dimension split over the
  batch's mesh axes, each device on its own examples.

  `args[vocab_arg]` (optional) also has its last dimension split over the vocabulary's mesh axes,
  passed to `fn` as `vocab_axes` (use `top_k_over_vocab`); every output must be the same on every
  device of those axes. Falls back to fewer manual axes where the batch or vocabulary does not
  divide, and to the plain call outside a partitioner's `activate()`.
  """
  batch_axes = mesh_axes("batch")
  if batch_axes and args[0].shape[0] % _size(batch_axes):
    batch_axes = ()
  vocab_axes = mesh_axes("vocab") if vocab_arg is not None else ()
  if vocab_axes:
    if args[vocab_arg].shape[-1] % _size(vocab_axes):
      vocab_axes = ()
  if not batch_axes and not vocab_axes:
    return fn(*args, vocab_axes=())
  batch = (batch_axes if len(batch_axes) > 1 else batch_axes[0]) if batch_axes else None
  vocab = (vocab_axes if len(vocab_axes) > 1 else vocab_axes[0]) if vocab_axes else None
  in_specs = []
  for i, a in enumerate(args):
    spec = [batch] + [None] * (a.ndim - 1)
    if i == vocab_arg:
      spec[-1] = vocab
    in_specs.append(PartitionSpec(*spec))
  return jax.shard_map(functools.partial(fn, vocab_axes=vocab_axes),
                       mesh=jax.sharding.get_abstract_mesh(), in_specs=tuple(in_specs),
                       out_specs=PartitionSpec(batch),
                       axis_names=frozenset(batch_axes + vocab_axes), check_vma=False)(*args)
