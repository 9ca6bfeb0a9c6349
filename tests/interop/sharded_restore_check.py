"""Run by test_t5x_sharded.py in a subprocess with 8 fake CPU devices (XLA_FLAGS set there).

Writes a T5X-layout checkpoint with TensorStore and msgpack directly (an independent writer:
nothing from xfer_t5x.interop), restores it into a (4, 2) ('data', 'model') mesh, and checks
every parameter's sharding, values and the regions read. Then the same for the scanned model,
and for Orbax checkpoints in both layer layouts. Prints one JSON line; exits non-zero on failure.
"""
import json
import os
import sys

import flax.linen as nn
import jax
import msgpack
import numpy as np
import tensorstore as ts
from jax.sharding import Mesh, NamedSharding

from xfer_t5x.interop import t5x, writers
from xfer_t5x.model import scan
from xfer_t5x.model.api import EncoderDecoderModel
from xfer_t5x.model.config import T5Config

RULES = [("batch", "data"), ("vocab", "model"), ("mlp", "model"), ("heads", "model"),
         ("joined_kv", "model"), ("kv", None), ("embed", None), ("relpos_buckets", None),
         ("length", None), ("layers", None)]
CONFIG = T5Config(vocab_size=384, emb_dim=64, num_heads=4, head_dim=16, mlp_dim=128,
                  num_encoder_layers=2, num_decoder_layers=2, dropout_rate=0.0, dtype="float32")


def write_t5x_checkpoint_independently(folder, values):
  """T5X's legacy layout by hand: zarr arrays `target.<dotted path>/` plus the msgpack tree."""
  os.makedirs(folder)
  target = {}
  for i, (name, value) in enumerate(sorted(values.items())):
    rel = "target." + name.replace("/", ".")
    chunks = [max(1, d // 2) for d in value.shape]  # chunk borders unlike any shard's
    metadata = {"shape": list(value.shape), "chunks": chunks,
                "compressor": {"id": "gzip", "level": 1}}
    spec = {"driver": "zarr", "dtype": "float32", "metadata": metadata,
            "kvstore": {"driver": "file", "path": os.path.join(folder, rel)}}
    store = ts.open(spec, create=True).result()
    store.write(value).result()
    # What the msgpack file records: the path relative to the checkpoint folder, in the current
    # TensorStore form, and for every third array in the old form (path beside kvstore).
    if i % 3 == 0:
      recorded = {"driver": "zarr", "dtype": "float32", "kvstore": {"driver": "file"},
                  "path": rel, "metadata": metadata}
    else:
      recorded = {"driver": "zarr", "dtype": "float32", "metadata": metadata,
                  "kvstore": {"driver": "file", "path": rel + "/"}}
    node = target
    parts = name.split("/")
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = recorded
  tree = {"version": 3, "optimizer": {"target": target, "state": {"step": 20}}}
  with open(os.path.join(folder, "checkpoint"), "wb") as f:
    f.write(msgpack.packb(tree))


def shardings_for(config, mesh):
  return nn.logical_to_mesh_sharding(EncoderDecoderModel(config).logical_axes(), mesh, RULES)


def check(restored, shardings, expected, label):
  flat, flat_s = scan.flatten(restored), scan.flatten(shardings)
  assert set(flat) == set(expected), (label, sorted(set(flat) ^ set(expected))[:4])
  for name, arr in flat.items():
    assert isinstance(arr, jax.Array), (label, name, type(arr))
    want = flat_s[name]
    assert arr.sharding.is_equivalent_to(want, arr.ndim), (label, name, arr.sharding, want)
    for shard in arr.addressable_shards:
      np.testing.assert_array_equal(np.asarray(shard.data), expected[name][shard.index],
                                    err_msg=f"{label} {name} {shard.index}")
    np.testing.assert_array_equal(np.asarray(arr), expected[name], err_msg=f"{label} {name}")


def main(workdir):
  assert len(jax.devices()) == 8, jax.devices()
  mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
  rng = np.random.default_rng(0)
  abstract = scan.flatten(EncoderDecoderModel(CONFIG).abstract_params())
  values = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in abstract.items()}
  legacy = os.path.join(workdir, "t5x", "checkpoint_20")
  write_t5x_checkpoint_independently(legacy, values)

  # Watch the regions read: nobody reads a whole vocab-sharded array.
  regions = []
  original_read = t5x._ts_read  # pylint: disable=protected-access

  def watching_read(array, index):
    out = original_read(array, index)
    regions.append((tuple(array.shape), out.shape))
    return out

  t5x._ts_read = watching_read  # pylint: disable=protected-access
  shardings = shardings_for(CONFIG, mesh)
  restored = t5x.load_t5x_checkpoint(os.path.dirname(legacy), CONFIG, shardings)
  check(restored, shardings, values, "legacy->unrolled")
  emb_reads = [r for a, r in regions if a == (384, 64)]
  assert emb_reads and all(r == (192, 64) for r in emb_reads), emb_reads
  assert all(r == (64, 64) for a, r in regions if a == (64, 128)), regions  # mlp split in 2

  scanned_config = CONFIG.replace(scan_layers=True)
  scanned_shardings = shardings_for(scanned_config, mesh)
  scanned_values = scan.scan_params(values)
  restored = t5x.load_t5x_checkpoint(legacy, scanned_config, scanned_shardings)
  check(restored, scanned_shardings, scanned_values, "legacy->scanned")
  t5x._ts_read = original_read  # pylint: disable=protected-access

  # Orbax: ours in the unrolled layout into the scanned model, and the scanned layout into the
  # unrolled model (restored sharded in the checkpoint's layout, then converted on device).
  writers.save_params_orbax(scan.unflatten(values),
                            os.path.join(workdir, "orbax_u", "checkpoint_3"))
  writers.save_params_orbax(scan.unflatten(scanned_values),
                            os.path.join(workdir, "orbax_s", "checkpoint_0"))
  for src, config, shard, want, label in (
      ("orbax_u", CONFIG, shardings, values, "orbax unrolled->unrolled"),
      ("orbax_u", scanned_config, scanned_shardings, scanned_values, "orbax unrolled->scanned"),
      ("orbax_s", CONFIG, shardings, values, "orbax scanned->unrolled")):
    restored = t5x.load_t5x_checkpoint(os.path.join(workdir, src), config, shard)
    check(restored, shard, want, label)
  print(json.dumps({"ok": True, "regions_read": len(regions)}))


if __name__ == "__main__":
  main(sys.argv[1])
