"""Exact top-k by cosine similarity over a candidate pool sharded across the mesh, in blocks.

The pool (Mewsli-X's is about a million candidates) is split by rows over every device of the
mesh; each device scores its share one block of `block_size` candidates at a time, keeping a
running top-k per query, so no device ever holds more than a [queries x block] similarity
matrix and no host a [queries x pool] one. The devices' top-k lists are then gathered and merged.
Queries go through in blocks of `query_block` rows, replicated on the mesh.

Ties are broken as `jax.lax.top_k` over the whole row breaks them (the lower candidate index
first): every list is kept sorted by (similarity descending, index ascending), and lists are
always merged in candidate-index order, so equal similarities keep the lower index in front.
"""
import functools
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from xfer_t5x.evaluation import batching

DEFAULT_BLOCK = 8192
DEFAULT_QUERY_BLOCK = 1024


def _normalise(x):
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@functools.lru_cache(maxsize=16)
def _searcher(mesh, k: int, block: int, n_blocks: int, n_real: int):
  axes = tuple(mesh.axis_names)

  def local(queries, shard):
    # shard: [n_blocks * block, d] rows of this device; its first row's global index:
    offset = jax.lax.axis_index(axes) * (n_blocks * block)
    blocks = shard.reshape(n_blocks, block, shard.shape[-1])
    q = queries.shape[0]
    init = (jnp.full((q, k), -jnp.inf, jnp.float32), jnp.full((q, k), jnp.iinfo(jnp.int32).max,
                                                               jnp.int32))

    def step(carry, xs):
      b, cand = xs
      sims = queries @ cand.T  # [q, block]
      index = offset + b * block + jnp.arange(block, dtype=jnp.int32)
      sims = jnp.where(index[None, :] < n_real, sims, -jnp.inf)  # padding rows never win
      top_v, top_j = jax.lax.top_k(sims, min(k, block))
      vals = jnp.concatenate([carry[0], top_v], axis=1)  # earlier candidates first
      idx = jnp.concatenate([carry[1], index[top_j]], axis=1)
      best_v, pos = jax.lax.top_k(vals, k)
      return (best_v, jnp.take_along_axis(idx, pos, axis=1)), None

    (vals, idx), _ = jax.lax.scan(step, init, (jnp.arange(n_blocks), blocks))
    # every device's list, in device (= candidate index) order, then one merge
    all_v = jax.lax.all_gather(vals, axes, axis=1, tiled=True)  # [q, devices * k]
    all_i = jax.lax.all_gather(idx, axes, axis=1, tiled=True)
    best_v, pos = jax.lax.top_k(all_v, k)
    return jnp.take_along_axis(all_i, pos, axis=1), best_v

  fn = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(axes)), out_specs=(P(), P()),
                     check_vma=False)
  return jax.jit(fn)


def _put(array: np.ndarray, sharding) -> jax.Array:
  """A host array (the same on every process) placed on a sharding that may span hosts."""
  return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def top_k(queries: np.ndarray, pool: np.ndarray, k: int, mesh,
          block_size: int = DEFAULT_BLOCK, query_block: int = DEFAULT_QUERY_BLOCK
          ) -> Tuple[np.ndarray, np.ndarray]:
  """(indices `[n, k]` into `pool`, best first; cosine similarities `[n, k]`) for each query,
  the pool sharded over all of `mesh`'s devices and scored in blocks."""
  queries, pool = _normalise(queries), _normalise(pool)
  n, d = pool.shape
  k = int(min(k, n))
  devices = int(np.prod(list(mesh.shape.values())))
  per_device = -(-n // devices)
  block = int(min(block_size, max(per_device, 1)))
  n_blocks = -(-per_device // block)
  padded = np.zeros((devices * n_blocks * block, d), np.float32)
  padded[:n] = pool
  shard = _put(padded, NamedSharding(mesh, P(tuple(mesh.axis_names))))
  search = _searcher(mesh, k, block, n_blocks, n)
  out_i, out_v = [], []
  for start in range(0, len(queries), query_block):
    q = queries[start:start + query_block]
    rows = len(q)
    if rows < query_block and len(queries) > query_block:  # one compiled shape for all blocks
      q = np.concatenate([q, np.zeros((query_block - rows, d), np.float32)])
    idx, vals = search(_put(q, NamedSharding(mesh, P())), shard)
    out_i.append(batching.fetch(idx)[:rows])
    out_v.append(batching.fetch(vals)[:rows])
  if not out_i:
    return np.zeros((0, k), np.int32), np.zeros((0, k), np.float32)
  return np.concatenate(out_i), np.concatenate(out_v)
