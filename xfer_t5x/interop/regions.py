"""Checkpoint arrays read one region at a time, and parameters built from the regions each
device holds.

A `Source` is one checkpoint array that can be read by region (`read(index)`, a tuple of slices
and ints as `jax.make_array_from_callback` gives them). The formats supply their own (T5X's
TensorStore arrays in `t5x`, Hugging Face's memory-mapped safetensors in `hf`); the layer
layouts are views (`LayerSource`, `StackedSource`, via `to_layout`); `materialise` builds each
parameter as a global jax.Array from the regions this host's devices hold, so no host reads or
holds a whole sharded parameter.
"""
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from xfer_t5x.model import scan


def full_index(index, ndim: int) -> tuple:
  """`index` padded with full slices to `ndim` entries."""
  return tuple(index) + (slice(None),) * (ndim - len(tuple(index)))


class Source:
  """One checkpoint array: its shape, and its values one region at a time."""
  shape: Tuple[int, ...]

  def read(self, index) -> np.ndarray:
    raise NotImplementedError


class ShapeOnly(Source):
  """A checkpoint array's shape, for checking before anything is read."""

  def __init__(self, shape):
    self.shape = tuple(shape)


class InlineSource(Source):
  """An array already in memory (small leaves stored inline)."""

  def __init__(self, value):
    self.value = np.asarray(value)
    self.shape = self.value.shape

  def read(self, index):
    return self.value[full_index(index, self.value.ndim)]


class LayerSource(Source):
  """Layer `layer` of a scanned checkpoint array (layer axis 1)."""

  def __init__(self, base: Source, layer: int):
    self.base, self.layer = base, layer
    self.shape = scan.remove_layer_axis(base.shape)

  def read(self, index):
    index = full_index(index, len(self.shape))
    return self.base.read(scan.insert_layer_axis(index, self.layer))


class StackedSource(Source):
  """Unrolled checkpoint arrays `layers_0..n-1` seen as one scanned array (layer axis 1)."""

  def __init__(self, parts):
    self.parts = parts
    self.shape = scan.insert_layer_axis(parts[0].shape, len(parts))

  def read(self, index):
    index = full_index(index, len(self.shape))
    rest = scan.remove_layer_axis(index)
    layers = range(len(self.parts))[index[scan.LAYER_AXIS]]
    return np.stack([self.parts[i].read(rest) for i in layers], axis=scan.LAYER_AXIS)


def to_layout(sources: Dict[str, Source], scanned: bool) -> Dict[str, Source]:
  """The checkpoint's sources renamed (and re-indexed) to the model's layer layout."""
  if scanned == scan.is_scanned(sources):
    return dict(sources)
  out, groups = {}, {}
  for name, src in sources.items():
    s, u = scan.scanned_name(name), scan.unrolled_name(name)
    if not scanned and s:
      for i in range(src.shape[scan.LAYER_AXIS]):
        out[f"{s[0]}/layers_{i}/{s[1]}"] = LayerSource(src, i)
    elif scanned and u:
      groups.setdefault(f"{u[0]}/layers/{u[2]}", {})[u[1]] = src
    else:
      out[name] = src
  for name, by_layer in groups.items():
    if sorted(by_layer) != list(range(len(by_layer))):
      raise ValueError(f"checkpoint layers of {name} are not 0..n-1: {sorted(by_layer)}")
    out[name] = StackedSource([by_layer[i] for i in range(len(by_layer))])
  return out


def materialise(sources: Dict[str, Source], shardings: Optional[Mapping[str, Any]], dtype):
  """{name: array}: numpy arrays read whole (`shardings` None), or global jax.Arrays with
  `shardings[name]`, each built from the regions this host's devices hold (devices holding the
  same region share one read)."""
  import jax  # pylint: disable=g-import-not-at-top
  out = {}
  for name, src in sources.items():
    if shardings is None:
      out[name] = np.asarray(src.read(()), dtype=dtype)
      continue
    cache = {}

    def callback(index, src=src, cache=cache):
      key = tuple((s.start, s.stop, s.step) if isinstance(s, slice) else s for s in index)
      if key not in cache:  # replicated devices ask for the same region
        cache[key] = np.asarray(src.read(index), dtype=dtype)
      return cache[key]

    out[name] = jax.make_array_from_callback(src.shape, shardings[name], callback)
  return out
