"""Exact top-k by cosine similarity over a candidate pool sharded across the mesh, in blocks.

The pool (Mewsli-X's is about a million candidates) is split by rows over every device of the
mesh; each device scores its share one block of `block_size` candidates at a time, keeping a
running top-k per query, so no device ever holds more than a [queries x block] similarity
matrix and no host a [queries x pool] one. The devices' top-k lists are then gathered and merged.
Queries go through in blocks of `query_block` rows, replicated on the mesh. The pool comes as host
embeddings, or as a `ShardedPool` embedded straight into that layout (MeshRunner.embed_pool), so
that no host ever holds it whole (Mewsli-X at mT5-xxl's width: about 16 GB).

Ties are broken as `jax.lax.top_k` over the whole row breaks them (the lower candidate index
first): every list is kept sorted by (similarity descending, index ascending), and lists are
always merged in candidate-index order, so equal similarities keep the lower index in front.
"""
import dataclasses
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


def unit_rows(x):
  """Rows scaled to unit length (jnp; zero rows stay zero)."""
  x = x.astype(jnp.float32)
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@functools.lru_cache(maxsize=16)
def _assembler(mesh, n_pieces: int, rows: int):
  def assemble(pieces):
    out = jnp.concatenate(pieces, axis=0)
    if out.shape[0] >= rows:
      return out[:rows]
    return jnp.concatenate([out, jnp.zeros((rows - out.shape[0], out.shape[1]), out.dtype)])
  return jax.jit(assemble, out_shardings=row_sharding(mesh))


def assemble_rows(pieces, rows: int, mesh) -> jax.Array:
  """Row-sharded pieces (e.g. embedded batches) as one `[rows, d]` array, rows split over every
  device: cut or zero-padded to `rows`, moved device to device."""
  return _assembler(mesh, len(pieces), int(rows))(list(pieces))


def row_sharding(mesh) -> NamedSharding:
  """Rows split over every device of the mesh (the pool's layout)."""
  return NamedSharding(mesh, P(tuple(mesh.axis_names)))


@dataclasses.dataclass(frozen=True)
class ShardedPool:
  """Unit-length candidate embeddings on the mesh: `array` `[devices * n_blocks * block, d]`,
  rows split over every device, rows from `n` on zero (padding, never returned)."""
  array: jax.Array
  n: int
  block: int
  n_blocks: int

  @staticmethod
  def layout(n: int, mesh, block_size: int = DEFAULT_BLOCK) -> Tuple[int, int, int]:
    """(block, n_blocks, padded rows) of a pool of n candidates on `mesh`."""
    devices = int(np.prod(list(mesh.shape.values())))
    per_device = -(-n // devices)
    block = int(min(block_size, max(per_device, 1)))
    n_blocks = -(-per_device // block)
    return block, n_blocks, devices * n_blocks * block

  @classmethod
  def from_host(cls, pool: np.ndarray, mesh, block_size: int = DEFAULT_BLOCK) -> "ShardedPool":
    """From embeddings every host holds (normalised here)."""
    pool = _normalise(pool)
    n, d = pool.shape
    block, n_blocks, rows = cls.layout(n, mesh, block_size)
    padded = np.zeros((rows, d), np.float32)
    padded[:n] = pool
    return cls(_put(padded, row_sharding(mesh)), n, block, n_blocks)


def top_k(queries: np.ndarray, pool, k: int, mesh,
          block_size: int = DEFAULT_BLOCK, query_block: int = DEFAULT_QUERY_BLOCK
          ) -> Tuple[np.ndarray, np.ndarray]:
  """(indices `[n, k]` into the pool, best first; cosine similarities `[n, k]`) for each query.

  `pool`: a `ShardedPool` already on the mesh (no host holds it whole), or host embeddings
  `[n, d]`, then sharded over all of `mesh`'s devices here; scored in blocks either way."""
  if not isinstance(pool, ShardedPool):
    pool = ShardedPool.from_host(pool, mesh, block_size)
  queries = _normalise(queries)
  d = pool.array.shape[-1]
  k = int(min(k, pool.n))
  search = _searcher(mesh, k, pool.block, pool.n_blocks, pool.n)
  out_i, out_v = [], []
  for start in range(0, len(queries), query_block):
    q = queries[start:start + query_block]
    rows = len(q)
    if rows < query_block and len(queries) > query_block:  # one compiled shape for all blocks
      q = np.concatenate([q, np.zeros((query_block - rows, d), np.float32)])
    idx, vals = search(_put(q, NamedSharding(mesh, P())), pool.array)
    out_i.append(batching.fetch(idx)[:rows])
    out_v.append(batching.fetch(vals)[:rows])
  if not out_i:
    return np.zeros((0, k), np.int32), np.zeros((0, k), np.float32)
  return np.concatenate(out_i), np.concatenate(out_v)
