"""T5X checkpoints (legacy and Orbax layouts), read straight into a sharded layout.

Two layouts are read (both as T5X writes them; see google-research/t5x `checkpoints.py`):

* Legacy: a folder `checkpoint_<step>/` holding a msgpack file `checkpoint` whose tree is
  `{"version": 3, "optimizer": {"target": params, "state": {"step", "param_states"}}}`. A
  parameter leaf is a TensorStore spec, `{"driver": "zarr", "kvstore": {"driver": "file", "path":
  "target.encoder.layers_0.mlp.wi_0.kernel/"}, "metadata": {"shape", "chunks", "compressor"},
  "dtype"}`, whose path is relative to the folder (old TensorStore versions put `path` beside
  `kvstore`; small leaves may be stored inline as arrays). On GCS the kvstore driver is `gcs` with
  a placeholder bucket; the real bucket is the one of the checkpoint path.
* Orbax: a PyTree checkpoint folder (with `_METADATA`), T5X's being `checkpoint_<step>/state/`
  with the parameters under `target`, this library's (the runtime's, and `save_params_orbax`'s)
  `checkpoint_<step>/state/` with them under `params` (a train state's other items are skipped).

Writers are in `xfer_t5x.interop.writers`.

`load_t5x_checkpoint(path, config, shardings)` checks the shapes against the model first, then
builds each parameter with `jax.make_array_from_callback`, reading only the region each local
device holds (TensorStore slices for the legacy layout, Orbax's own sharded restore for the other),
so no host ever holds the whole model. Paths may be `gs://...`. (An Orbax checkpoint in the other
layer layout is restored sharded in its own layout, then converted on device under jit.)

Layer layouts: a checkpoint in the unrolled (`layers_<i>`) or in this library's scanned layout
(`layers`, layer axis 1) loads into a model of either. T5X's `scalable_t5` scanned network is a
different model (a relative-position table per layer, 3-D attention kernels under
`encoder/encoder/...`) and is refused with that reason.
"""
import logging
import os
import re
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from xfer_t5x.interop import paths
from xfer_t5x.interop import regions
from xfer_t5x.interop import shapes as shapes_lib
from xfer_t5x.model import scan
from xfer_t5x.model.config import T5Config

CHECKPOINT_FILE = "checkpoint"
ORBAX_METADATA = "_METADATA"
_STEP_DIR = re.compile(r"^checkpoint_(\d+)$")


def find_checkpoint(path: str) -> Tuple[str, str]:
  """(kind, folder) of the checkpoint at `path`: kind "legacy" or "orbax".

  `path` may be the checkpoint folder, its `checkpoint` file, T5X's `state/` subfolder, or a
  model dir (the highest `checkpoint_<step>` in it is taken).
  """
  path = str(path).rstrip("/")
  if not paths.isdir(path):
    if os.path.basename(path) == CHECKPOINT_FILE and paths.exists(path):
      return find_checkpoint(os.path.dirname(path))
    raise FileNotFoundError(f"{path}: no such checkpoint folder")
  if paths.exists(os.path.join(path, ORBAX_METADATA)):
    return "orbax", path
  state = os.path.join(path, "state")
  if paths.isdir(state):
    return find_checkpoint(state)
  if paths.exists(os.path.join(path, CHECKPOINT_FILE)):
    return "legacy", path
  steps = sorted((int(m.group(1)), name) for name in paths.listdir(path)
                 for m in [_STEP_DIR.match(name)] if m)
  if steps:
    return find_checkpoint(os.path.join(path, steps[-1][1]))
  raise FileNotFoundError(
      f"{path}: not a T5X checkpoint (no `{CHECKPOINT_FILE}` msgpack file, no Orbax "
      f"`{ORBAX_METADATA}`, no checkpoint_<step> folders)")


# --- TensorStore arrays ------------------------------------------------------------------------
class _TensorStoreSource(regions.Source):
  """One zarr array, opened on first read."""

  def __init__(self, spec: Dict[str, Any], shape):
    self.spec, self.shape, self._array = spec, tuple(shape), None

  def read(self, index):
    if self._array is None:
      import tensorstore as ts  # pylint: disable=g-import-not-at-top
      self._array = ts.open(self.spec, open=True, read=True).result()
    return _ts_read(self._array, regions.full_index(index, len(self.shape)))


def _ts_read(array, index) -> np.ndarray:
  """Reads one region (a function of its own so tests can watch which regions are read)."""
  return np.asarray(array[index].read().result())


# --- legacy layout -----------------------------------------------------------------------------
def _is_ts_spec(x) -> bool:
  return isinstance(x, Mapping) and "driver" in x and ("kvstore" in x or "path" in x)


def _flatten_specs(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if isinstance(v, Mapping) and not _is_ts_spec(v):
      out.update(_flatten_specs(v, f"{prefix}{k}/"))
    else:
      out[f"{prefix}{k}"] = v
  return out


def absolute_ts_spec(spec: Mapping[str, Any], ckpt_dir: str) -> Dict[str, Any]:
  """The spec with its relative path made absolute and its kvstore driver fit for `ckpt_dir`."""
  spec = dict(spec)
  kv = dict(spec.get("kvstore") or {})
  rel = kv.pop("path", None) if "path" in kv else spec.pop("path", None)
  if rel is None:
    raise ValueError(f"TensorStore spec without a path in {ckpt_dir}: {spec}")
  m = re.fullmatch(r"gs://([^/]+)/?(.*)", ckpt_dir)
  if m:
    kv = {"driver": "gcs", "bucket": m.group(1), "path": os.path.join(m.group(2), rel)}
  else:
    kv = {"driver": "file", "path": os.path.join(ckpt_dir, rel)}
  spec["kvstore"] = kv
  return spec


def legacy_tree(ckpt_dir: str):
  """The msgpack file's `optimizer` tree: `target` (parameters) and `state` (step, optimizer)."""
  raw = paths.read_bytes(os.path.join(ckpt_dir, CHECKPOINT_FILE))
  if raw.startswith(b"model_checkpoint_path"):
    raise ValueError(f"{ckpt_dir}: a TensorFlow (Mesh TF T5) checkpoint, not a T5X one; convert "
                     "it with T5X's checkpoint importer first")
  from flax import serialization  # pylint: disable=g-import-not-at-top
  contents = serialization.msgpack_restore(raw)
  return contents.get("optimizer", contents)


def _legacy_target(ckpt_dir: str):
  tree = legacy_tree(ckpt_dir)
  if "target" not in tree:
    raise ValueError(f"{ckpt_dir}/{CHECKPOINT_FILE}: no `target` (parameters) in the checkpoint; "
                     f"top-level keys: {sorted(tree)}")
  target = tree["target"]
  if set(target) == {"params"}:
    target = target["params"]
  return target


def _legacy_sources(ckpt_dir: str) -> Dict[str, regions.Source]:
  return legacy_sources(_legacy_target(ckpt_dir), ckpt_dir)


def legacy_sources(tree, ckpt_dir: str) -> Dict[str, regions.Source]:
  """{path: Source} of a legacy checkpoint's subtree: zarr arrays (TensorStore specs, opened on
  first read) or arrays stored inline."""
  sources = {}
  for name, leaf in _flatten_specs(tree).items():
    if _is_ts_spec(leaf):
      shape = (leaf.get("metadata") or {}).get("shape")
      spec = absolute_ts_spec(leaf, ckpt_dir)
      if shape is None:
        import tensorstore as ts  # pylint: disable=g-import-not-at-top
        shape = ts.open(spec, open=True).result().shape
      sources[name] = _TensorStoreSource(spec, shape)
    else:
      sources[name] = regions.InlineSource(leaf)
  return sources


def _refuse_scalable_t5(names, ckpt_dir):
  if any(n.startswith(("encoder/encoder/", "decoder/decoder/")) for n in names):
    raise ValueError(
        f"{ckpt_dir}: a T5X `scalable_t5` scanned checkpoint (encoder/encoder/...). That network "
        "keeps a relative-position table per layer and 3-D attention kernels, so it is not this "
        "model; export it unscanned from T5X (scan_layers=False) or start from the public mT5 "
        "checkpoints")


# --- Orbax layout ------------------------------------------------------------------------------
def orbax_tree(ckpt_dir: str):
  """The metadata tree of an Orbax PyTree checkpoint (shapes and dtypes, nothing restored)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  md = ocp.PyTreeCheckpointer().metadata(ckpt_dir)
  tree = getattr(getattr(md, "item_metadata", md), "tree", None)
  return tree if tree is not None else md


def _orbax_params_tree(ckpt_dir: str):
  """(key of the params subtree or None, its metadata tree) in an Orbax checkpoint."""
  tree = orbax_tree(ckpt_dir)
  for key in ("target", "params"):
    if key in tree and isinstance(tree[key], Mapping):
      sub = tree[key]
      if set(sub) == {"params"}:
        return (key, "params"), sub["params"]
      return (key,), sub
  if "token_embedder" in tree:
    return (), tree
  raise ValueError(f"{ckpt_dir}: an Orbax checkpoint without parameters under `target` (T5X) or "
                   f"`params` (xfer_t5x); top-level keys: {sorted(tree)}")


def _orbax_restore(ckpt_dir, prefix, names_shapes, shardings, dtype):
  """Restores the named arrays (checkpoint layout) with Orbax, sharded or as numpy."""
  import jax  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  items, args = {}, {}
  for name, shape in names_shapes.items():
    if shardings is None:
      items[name] = np.zeros((), dtype)  # placeholder: restored as numpy of the stored shape
      args[name] = ocp.RestoreArgs(restore_type=np.ndarray, dtype=dtype)
    else:
      items[name] = jax.ShapeDtypeStruct(shape, dtype, sharding=shardings[name])
      args[name] = ocp.ArrayRestoreArgs(sharding=shardings[name], dtype=dtype)

  def nest(flat):
    tree = scan.unflatten(flat)
    for key in reversed(prefix):
      tree = {key: tree}
    return tree

  restored = ocp.PyTreeCheckpointer().restore(
      ckpt_dir, args=ocp.args.PyTreeRestore(item=nest(items), restore_args=nest(args),
                                            partial_restore=True))
  for key in prefix:
    restored = restored[key]
  return scan.flatten(restored)


def _checkpoint_layout_shardings(ckpt_shapes, model_shardings, ckpt_scanned):
  """Shardings for arrays in the checkpoint's layout, derived from the model's (other layout):
  the scanned array is split like one layer, with its layer axis whole."""
  from jax.sharding import NamedSharding, PartitionSpec  # pylint: disable=g-import-not-at-top

  def convert(sharding, ndim, insert):
    if not isinstance(sharding, NamedSharding):
      return sharding
    have = ndim - 1 if insert else ndim + 1  # rank of the model's array
    spec = tuple(sharding.spec) + (None,) * (have - len(sharding.spec))
    spec = scan.insert_layer_axis(spec) if insert else scan.remove_layer_axis(spec)
    return NamedSharding(sharding.mesh, PartitionSpec(*spec))

  out = {}
  for name, shape in ckpt_shapes.items():
    s, u = scan.scanned_name(name), scan.unrolled_name(name)
    if ckpt_scanned and s:
      out[name] = convert(model_shardings[f"{s[0]}/layers_0/{s[1]}"], len(shape), insert=True)
    elif not ckpt_scanned and u:
      out[name] = convert(model_shardings[f"{u[0]}/layers/{u[2]}"], len(shape), insert=False)
    else:
      out[name] = model_shardings[name]
  return out


# --- public API --------------------------------------------------------------------------------
def read_checkpoint_shapes(path: str) -> Dict[str, Tuple[int, ...]]:
  """{parameter path: shape} of a T5X / Orbax checkpoint, in its own layer layout."""
  kind, ckpt_dir = find_checkpoint(path)
  if kind == "legacy":
    return {k: tuple(v.shape) for k, v in _legacy_sources(ckpt_dir).items()}
  _, tree = _orbax_params_tree(ckpt_dir)
  return {k: tuple(v.shape) for k, v in scan.flatten(tree).items()}


def load_t5x_checkpoint(path: str, config: T5Config, shardings: Optional[Mapping] = None,
                        dtype=np.float32):
  """This model's params from a T5X (legacy or Orbax) checkpoint.

  Args:
    path: checkpoint folder (see `find_checkpoint`), local or gs://.
    config: the model; its vocab_size must be set and the checkpoint must fit it
      (CheckpointShapeError otherwise). Its `scan_layers` picks the returned layout.
    shardings: a pytree like the params of `jax.sharding.Sharding`s: each parameter is then a
      global jax.Array built from per-device reads. None: numpy arrays on this host.
    dtype: of the returned arrays (parameters are float32 in this library).
  Returns:
    nested params dict.
  """
  kind, ckpt_dir = find_checkpoint(path)
  flat_shardings = None if shardings is None else scan.flatten(shardings)
  expected = shapes_lib.model_shapes(config)
  if kind == "legacy":
    sources = _legacy_sources(ckpt_dir)
    _refuse_scalable_t5(sources, ckpt_dir)
    sources = regions.to_layout(sources, config.scan_layers)
    shapes_lib.check_shapes({k: v.shape for k, v in sources.items()}, expected, ckpt_dir, config)
    logging.info("restoring %d arrays from T5X checkpoint %s", len(sources), ckpt_dir)
    return scan.unflatten(regions.materialise(sources, flat_shardings, dtype))

  prefix, tree = _orbax_params_tree(ckpt_dir)
  ckpt_shapes = {k: tuple(v.shape) for k, v in scan.flatten(tree).items()}
  _refuse_scalable_t5(ckpt_shapes, ckpt_dir)
  ckpt_scanned = scan.is_scanned(ckpt_shapes)
  found = {k: tuple(v.shape) for k, v in
           regions.to_layout({k: regions.ShapeOnly(s) for k, s in ckpt_shapes.items()},
                      config.scan_layers).items()}
  shapes_lib.check_shapes(found, expected, ckpt_dir, config)
  same_layout = ckpt_scanned == config.scan_layers
  ckpt_shardings = None
  if flat_shardings is not None:
    ckpt_shardings = (flat_shardings if same_layout else _checkpoint_layout_shardings(
        ckpt_shapes, flat_shardings, ckpt_scanned))
  restored = _orbax_restore(ckpt_dir, prefix, ckpt_shapes, ckpt_shardings, dtype)
  if same_layout:
    return scan.unflatten(restored)
  if flat_shardings is None:
    return scan.unflatten(scan.to_layout(restored, config.scan_layers))
  import jax  # pylint: disable=g-import-not-at-top
  names = sorted(expected)
  convert = jax.jit(lambda f: scan.to_layout(f, config.scan_layers),
                    out_shardings={k: flat_shardings[k] for k in names})
  return scan.unflatten(convert(restored))
