"""Checkpoint writers: T5X's legacy layout, and this library's Orbax parameter checkpoints.

`save_params_orbax(params, path)` writes what the runtime restores: `<model_dir>/checkpoint_<step>`
with an Orbax PyTree item `state` holding the plain dict `{"params": params}`. `save_t5x_checkpoint(params, path, step)` writes T5X's legacy layout (msgpack
`checkpoint` + zarr arrays `target.*`), which T5X and `xfer_t5x.interop.t5x` both read.
"""
import os
import re
from typing import Any, Mapping, Optional

import numpy as np

from xfer_t5x.interop import paths
from xfer_t5x.interop.t5x import CHECKPOINT_FILE, absolute_ts_spec
from xfer_t5x.model import scan


def save_params_orbax(params: Mapping[str, Any], path: str,
                      extra: Optional[Mapping[str, Any]] = None) -> None:
  """Writes `params` as the runtime's checkpoint `<model_dir>/checkpoint_<step>` (`path`).

  The layout is `xfer_t5x.runtime.checkpoints`' (written by its Checkpointer, so the two cannot
  drift): `checkpoint_<step>/state/` an Orbax PyTree holding `{"params": params}`, and
  `checkpoint_<step>/extra/` a small JSON item (`extra`, e.g. where the params came from). The
  runtime starts from it with `Checkpointer(model_dir).restore(step, {"params": abstract},
  partial=True)`; `xfer_t5x.interop.t5x.load_t5x_checkpoint` reads it too. `path` must not exist.
  """
  from xfer_t5x.runtime import checkpoints  # pylint: disable=g-import-not-at-top
  path = str(path).rstrip("/")
  if not paths.is_gcs(path):
    path = os.path.abspath(path)
  m = re.fullmatch(r"checkpoint_(\d+)", os.path.basename(path))
  if not m:
    raise ValueError(f"{path}: name the Orbax checkpoint folder <model_dir>/checkpoint_<step> "
                     "(e.g. ./model/checkpoint_0), the layout the runtime restores")
  if paths.exists(path):
    raise FileExistsError(f"{path} exists: choose a new checkpoint folder (nothing overwritten)")
  with checkpoints.Checkpointer(os.path.dirname(path), keep=None, async_save=False) as ckptr:
    ckptr.save(int(m.group(1)), {"params": params}, dict(extra or {}), force=True)


def _chunks(shape, itemsize, target_bytes=64 << 20):
  """Chunk shape for a zarr array: halve the largest even dimension until the chunk is small."""
  chunks = list(shape)
  while chunks and int(np.prod(chunks)) * itemsize > target_bytes:
    i = int(np.argmax(chunks))
    if chunks[i] % 2:
      break
    chunks[i] //= 2
  return chunks


def _write_zarr(path: str, rel: str, value) -> dict:
  """Writes one array as T5X writes it (a zarr folder `rel` under the checkpoint); returns the
  TensorStore spec the msgpack file keeps, its path relative to the checkpoint."""
  import tensorstore as ts  # pylint: disable=g-import-not-at-top
  dtype = np.dtype(getattr(value, "dtype", np.float32))
  meta = {"shape": list(value.shape), "chunks": _chunks(value.shape, dtype.itemsize),
          "compressor": {"id": "gzip", "level": 1}}
  written = {"driver": "zarr", "dtype": dtype.name, "kvstore": {"driver": "file", "path": rel},
             "metadata": meta}
  array = ts.open(absolute_ts_spec(written, str(path)), create=True, open=True).result()
  shards = getattr(value, "addressable_shards", None)
  if shards is None:
    array.write(np.asarray(value)).result()
  else:
    for shard in shards:
      if shard.replica_id == 0:
        array[shard.index].write(np.asarray(shard.data)).result()
  return written


def _param_states(path: str, opt_state) -> dict:
  """T5X's `param_states` tree for an AdafactorState: per parameter v_row, v_col, v and m, the
  statistics it does not use as shape-(1,) placeholders, as T5X writes them."""
  from xfer_t5x.interop import t5x_state  # pylint: disable=g-import-not-at-top
  flat, _ = t5x_state._flatten(opt_state.stats)  # pylint: disable=protected-access
  out = {}
  for name, leaf in flat.items():
    used = t5x_state.named_stats(leaf)
    for stat in t5x_state.STATS:
      key = f"{name}/{stat}"
      if stat in used:
        out[key] = _write_zarr(path, "state.param_states." + key.replace("/", "."), used[stat])
      else:
        out[key] = np.zeros(t5x_state.PLACEHOLDER_SHAPE, np.float32)
  return scan.unflatten(out)


def save_t5x_checkpoint(params: Mapping[str, Any], path: str, step: int = 0,
                        opt_state=None) -> None:
  """Writes params (and the Adafactor state) in T5X's legacy layout into the folder `path`
  (`.../checkpoint_<step>`).

  Without `opt_state` the checkpoint holds parameters and the step only: T5X restores it into a
  train state with `RestoreCheckpointConfig(..., strict=False, fallback_to_scratch=True)`. With
  it (a `runtime.optimizer.AdafactorState`, factored as T5X factors) `param_states` holds every
  statistic as T5X writes it, so T5X, and this library's `train.initial_state = 'train_state'`,
  continue with it. Arrays may be numpy or (single-process) jax.Arrays; each local shard is
  written once. The layer layout must be the unrolled one for the optimizer state.
  """
  from flax import serialization  # pylint: disable=g-import-not-at-top
  if paths.exists(os.path.join(path, CHECKPOINT_FILE)):
    raise FileExistsError(f"{path} already holds a checkpoint (nothing overwritten)")
  specs = {name: _write_zarr(path, "target." + name.replace("/", "."), value)
           for name, value in scan.flatten(params).items()}
  param_states = {} if opt_state is None else _param_states(path, opt_state)
  state = {"version": 3, "optimizer": {"target": scan.unflatten(specs), "state": {
      "step": np.asarray(step, np.int32), "param_states": param_states}}}
  paths.write_bytes(os.path.join(path, CHECKPOINT_FILE), serialization.msgpack_serialize(state))
