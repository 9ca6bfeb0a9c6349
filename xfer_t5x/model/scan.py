"""Converting parameters between the unrolled and the scanned (`scan_layers=True`) layouts.

Unrolled: `encoder/layers_<i>/...` one subtree per layer (T5X's `examples/t5` network, the layout
of the public mT5 checkpoints). Scanned: one subtree `encoder/layers/...` whose arrays carry the
layer axis at position 1 (T5X's `param_scan_axis=1`, logical axis name `layers`), so a kernel
`[embed, mlp]` becomes `[embed, layers, mlp]` and a scale `[embed]` becomes `[embed, layers]`.

Everything here works on flat dicts keyed by `/`-joined paths (see `flatten` / `unflatten`) and on
numpy or jax arrays alike; nothing is copied that is not converted.
"""
import re
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

LAYER_AXIS = 1
STACKS = ("encoder", "decoder")
_UNROLLED = re.compile(r"^(encoder|decoder)/layers_(\d+)/(.+)$")
_SCANNED = re.compile(r"^(encoder|decoder)/layers/(.+)$")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
  """Nested dicts -> {"a/b/c": leaf}."""
  out = {}
  for k, v in tree.items():
    path = f"{prefix}{k}"
    if isinstance(v, Mapping):
      out.update(flatten(v, path + "/"))
    else:
      out[path] = v
  return out


def unflatten(flat: Mapping[str, Any]) -> Dict[str, Any]:
  """{"a/b/c": leaf} -> nested dicts."""
  out: Dict[str, Any] = {}
  for path, v in flat.items():
    node = out
    parts = path.split("/")
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = v
  return out


def unrolled_name(path: str) -> Optional[Tuple[str, int, str]]:
  """`encoder/layers_3/mlp/wo/kernel` -> ("encoder", 3, "mlp/wo/kernel"); None for other paths."""
  m = _UNROLLED.match(path)
  return (m.group(1), int(m.group(2)), m.group(3)) if m else None


def scanned_name(path: str) -> Optional[Tuple[str, str]]:
  """`encoder/layers/mlp/wo/kernel` -> ("encoder", "mlp/wo/kernel"); None for other paths."""
  m = _SCANNED.match(path)
  return (m.group(1), m.group(2)) if m else None


def is_scanned(flat: Mapping[str, Any]) -> bool:
  return any(scanned_name(k) for k in flat)


def num_layers(flat: Mapping[str, Any], stack: str) -> int:
  """Number of layers of `stack` in either layout (flat dict of arrays or shapes)."""
  n = 0
  for k, v in flat.items():
    u = unrolled_name(k)
    if u and u[0] == stack:
      n = max(n, u[1] + 1)
    s = scanned_name(k)
    if s and s[0] == stack:
      shape = v if isinstance(v, tuple) else np.shape(v)
      n = max(n, shape[LAYER_AXIS])
  return n


def _stack(arrays):
  if all(isinstance(a, np.ndarray) for a in arrays):
    return np.stack(arrays, axis=LAYER_AXIS)
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return jnp.stack(arrays, axis=LAYER_AXIS)


def scan_params(flat: Mapping[str, Any]) -> Dict[str, Any]:
  """Unrolled flat params -> scanned flat params (layer axis inserted at position 1)."""
  out, groups = {}, {}
  for k, v in flat.items():
    u = unrolled_name(k)
    if u is None:
      out[k] = v
    else:
      groups.setdefault((u[0], u[2]), {})[u[1]] = v
  for (stack, rest), by_layer in groups.items():
    n = max(by_layer) + 1
    missing = sorted(set(range(n)) - set(by_layer))
    if missing:
      raise ValueError(f"cannot stack {stack}/layers_<i>/{rest}: layers {missing} are missing")
    out[f"{stack}/layers/{rest}"] = _stack([by_layer[i] for i in range(n)])
  return out


def unscan_params(flat: Mapping[str, Any]) -> Dict[str, Any]:
  """Scanned flat params -> unrolled flat params (one `layers_<i>` subtree per layer)."""
  out = {}
  for k, v in flat.items():
    s = scanned_name(k)
    if s is None:
      out[k] = v
      continue
    stack, rest = s
    for i in range(v.shape[LAYER_AXIS]):
      out[f"{stack}/layers_{i}/{rest}"] = v[(slice(None),) * LAYER_AXIS + (i,)]
  return out


def to_layout(flat: Mapping[str, Any], scanned: bool) -> Dict[str, Any]:
  """`flat` in the scanned or the unrolled layout, whichever it is in now."""
  if scanned and not is_scanned(flat):
    return scan_params(flat)
  if not scanned and is_scanned(flat):
    return unscan_params(flat)
  return dict(flat)


def insert_layer_axis(spec: tuple, name=None) -> tuple:
  """A PartitionSpec-like tuple of an unrolled parameter -> the scanned parameter's."""
  spec = tuple(spec)
  return spec[:LAYER_AXIS] + (name,) + spec[LAYER_AXIS:]


def remove_layer_axis(spec: tuple) -> tuple:
  """A PartitionSpec-like tuple of a scanned parameter -> one layer's."""
  spec = tuple(spec)
  return spec[:LAYER_AXIS] + spec[LAYER_AXIS + 1:]
