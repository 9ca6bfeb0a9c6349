"""Evaluation batches on the mesh: fixed shapes, a padded last batch, replicated results.

Evaluation data is small, so every host reads all of it (the same rows in the same order) and
builds the same global batch; `jax.make_array_from_callback` then hands each device its own
rows, which works unchanged on one host or many. Results come back replicated, so every host
holds every row's output and can compute the metrics itself (only process 0 writes them).

  run_batched(fn, {"encoder_input_tokens": ids}, batch_size=32, partitioner=p)

runs `fn(params-free batch dict) -> array or tuple of arrays` over all rows in batches of
`batch_size` (the last one padded with copies of row 0), and returns numpy arrays of exactly
the real rows.
"""
from typing import Callable, Dict, List, Mapping, Sequence, Tuple, Union

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from xfer_t5x.runtime.partitioning import Partitioner


def round_up(n: int, multiple: int) -> int:
  """The smallest multiple of `multiple` that is >= n (and >= multiple)."""
  multiple = max(int(multiple), 1)
  return max(-(-int(n) // multiple) * multiple, multiple)


def pad_tokens(sequences: Sequence[Sequence[int]], length: int) -> np.ndarray:
  """int32 `[len(sequences), length]`, each sequence left-aligned and zero-padded.

  Raises if a sequence is longer than `length` (callers trim first: silently dropping tokens
  would change what is evaluated)."""
  out = np.zeros((len(sequences), length), np.int32)
  for i, seq in enumerate(sequences):
    seq = np.asarray(seq, np.int32).reshape(-1)
    if seq.size > length:
      raise ValueError(f"sequence {i} has {seq.size} tokens, more than the length {length}")
    out[i, :seq.size] = seq
  return out


def bucket_length(sequences: Sequence[Sequence[int]], multiple: int = 16) -> int:
  """The longest sequence's length rounded up to `multiple` (fewer shapes, fewer compiles)."""
  longest = max((len(s) for s in sequences), default=1)
  return round_up(longest, multiple)


def shift_right(targets: np.ndarray) -> np.ndarray:
  """Decoder inputs from targets: start token 0, then the targets shifted one right."""
  out = np.zeros_like(targets)
  out[:, 1:] = targets[:, :-1]
  return out


def global_batch_size(batch_size: int, partitioner: Partitioner) -> int:
  """`batch_size` rounded up to a multiple of the mesh's data-parallel size."""
  return round_up(batch_size, partitioner.data_parallel_size)


def to_mesh(batch: Mapping[str, np.ndarray], partitioner: Partitioner) -> Dict[str, jax.Array]:
  """Global arrays sharded over 'batch' from a batch every host holds in full."""
  sharding = partitioner.batch_sharding()
  out = {}
  for name, value in batch.items():
    value = np.asarray(value)
    out[name] = jax.make_array_from_callback(value.shape, sharding,
                                             lambda index, v=value: v[index])
  return out


def replicated(partitioner: Partitioner) -> NamedSharding:
  return NamedSharding(partitioner.mesh, P())


def fetch(x) -> np.ndarray:
  """A replicated global array as numpy (every host holds a full copy)."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return np.asarray(x.addressable_data(0))
  return np.asarray(x)


Outputs = Union[np.ndarray, Tuple[np.ndarray, ...]]


def run_batched(fn: Callable, arrays: Mapping[str, np.ndarray], batch_size: int,
                partitioner: Partitioner, *extra) -> Outputs:
  """Applies `fn` (a jitted function of one batch dict, replicated outputs) to every row.

  Args:
    fn: `fn(batch dict of global arrays, *extra)` -> an array or a tuple of arrays with a leading
      batch dim.
    arrays: {feature: numpy array [n, ...]}, every host the same.
    batch_size: rows per call; rounded up to a multiple of the data-parallel size.
    partitioner: the mesh the batches are placed on.
    *extra: further arguments passed to every call unchanged (e.g. parameters).

  Returns:
    numpy outputs for the n real rows (padding rows dropped), in the same structure `fn` returns.
  """
  names = list(arrays)
  n = int(np.asarray(arrays[names[0]]).shape[0])
  for name in names:
    if np.asarray(arrays[name]).shape[0] != n:
      raise ValueError(f"run_batched: feature {name!r} has {np.asarray(arrays[name]).shape[0]} "
                       f"rows, {names[0]!r} has {n}")
  if n == 0:
    raise ValueError("run_batched: no rows to run")
  size = global_batch_size(batch_size, partitioner)
  pieces: List = []
  single = False
  for start in range(0, n, size):
    stop = min(start + size, n)
    batch = {}
    for name in names:
      rows = np.asarray(arrays[name][start:stop])
      if stop - start < size:  # pad with copies of the first row; dropped below
        fill = np.repeat(np.asarray(arrays[name][:1]), size - (stop - start), axis=0)
        rows = np.concatenate([rows, fill], axis=0)
      batch[name] = rows
    out = fn(to_mesh(batch, partitioner), *extra)
    single = not isinstance(out, (tuple, list))
    outs = (out,) if single else tuple(out)
    pieces.append(tuple(fetch(o)[:stop - start] for o in outs))
  joined = tuple(np.concatenate([p[i] for p in pieces], axis=0) for i in range(len(pieces[0])))
  return joined[0] if single else joined
