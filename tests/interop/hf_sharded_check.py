"""Run by test_hf.py in a subprocess with 8 fake CPU devices (XLA_FLAGS set there).

Writes a Hugging Face MT5 checkpoint (one safetensors file, and the same split into two files
with an index), imports it into a (4, 2) ('data', 'model') mesh, unrolled and scanned, and checks
every parameter's sharding and values against the unsharded import, and the regions read: no
read covers a whole tensor of a sharded parameter. Prints one JSON line; exits non-zero on
failure.
"""
import json
import os
import sys

import jax
import numpy as np

from xfer_t5x import interop
from xfer_t5x.interop import hf
from xfer_t5x.model import scan
from xfer_t5x.model.api import EncoderDecoderModel

sys.path.insert(0, os.path.dirname(__file__))
from sharded_restore_check import CONFIG, check, shardings_for  # noqa: E402


def write_checkpoints(workdir, state):
  single = os.path.join(workdir, "single")
  split = os.path.join(workdir, "split")
  for folder in (single, split):
    os.makedirs(folder)
    with open(os.path.join(folder, hf.CONFIG_FILE), "w") as f:
      json.dump(hf.hf_config_dict(CONFIG), f)
  hf.write_safetensors(state, os.path.join(single, hf.SAFETENSORS_FILE))
  names = sorted(state)
  weight_map = {}
  for part, chunk in enumerate((names[::2], names[1::2])):
    file = f"model-0000{part + 1}-of-00002.safetensors"
    hf.write_safetensors({n: state[n] for n in chunk}, os.path.join(split, file))
    weight_map.update({n: file for n in chunk})
  with open(os.path.join(split, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {}, "weight_map": weight_map}, f)
  return single, split


def main(workdir):
  assert len(jax.devices()) == 8, jax.devices()
  mesh = jax.sharding.Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
  rng = np.random.default_rng(1)
  abstract = scan.flatten(EncoderDecoderModel(CONFIG).abstract_params())
  params = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in abstract.items()}
  state = hf.params_to_hf(scan.unflatten(params), CONFIG)

  reads = []
  original = hf._read_region  # pylint: disable=protected-access

  def watching(array, index):
    out = original(array, index)
    reads.append((tuple(array.shape), tuple(out.shape)))
    return out

  hf._read_region = watching  # pylint: disable=protected-access
  checked = 0
  for folder in write_checkpoints(workdir, state):
    for config in (CONFIG, CONFIG.replace(scan_layers=True)):
      want, _ = hf.load_hf(folder, config)  # unsharded: numpy, every tensor read whole
      reads.clear()
      shardings = shardings_for(config, mesh)
      got = interop.load_pretrained(folder, config, shardings)
      label = f"{os.path.basename(folder)} scan={config.scan_layers}"
      check(got, shardings, scan.flatten(want), label)
      whole = [(a, r) for a, r in reads if a == r]
      # Only the layer norms' scales are replicated; every other tensor is split over 'model'.
      assert whole and all(len(a) == 1 for a, _ in whole), whole
      emb = [r for a, r in reads if a == (384, 64)]   # shared.weight and lm_head.weight
      assert emb and all(r == (192, 64) for r in emb), emb
      checked += 1
  hf._read_region = original  # pylint: disable=protected-access
  print(json.dumps({"ok": True, "imports": checked}))


if __name__ == "__main__":
  main(sys.argv[1])
