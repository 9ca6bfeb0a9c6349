"""Decoding jitted under a 2x2 ('data', 'model') mesh of fake CPU devices, with parameters
sharded by their logical axes, returns what the single-device decode returns (beam search's
choices made per example on each device, its top-k over the 'model'-split vocabulary)."""
import os
import pathlib
import subprocess
import sys
import textwrap

import flax
import numpy as np
import pytest

from tests.model.model_helpers import (MARGIN, assert_clear_margins, copy_batch,
                                       reference_beam_search)
from xfer_t5x.model import decoding

REPO = pathlib.Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import functools
    import jax
    jax.config.update("jax_num_cpu_devices", 4)
    import flax, numpy as np
    from tests.model.model_helpers import tiny_config
    from xfer_t5x.model import decoding
    from xfer_t5x.model.api import EncoderDecoderModel
    from xfer_t5x.runtime import partitioning

    data = np.load({npz!r})
    model = EncoderDecoderModel(tiny_config())
    flat = {{tuple(k.split("/")): data["param/" + k] for k in data["names"]}}
    params = flax.traverse_util.unflatten_dict(flat)
    part = partitioning.Partitioner(partitioning.make_mesh(data=2, model=2))
    shardings = part.shardings(model.logical_axes(), params)
    params = jax.device_put(params, shardings)
    assert any(len(x.sharding.device_set) > 1 and not x.sharding.is_fully_replicated
               for x in jax.tree_util.tree_leaves(params)), "nothing is sharded"
    batch = {{"encoder_input_tokens": jax.device_put(data["inputs"], part.batch_sharding())}}
    out = {{}}
    with part.activate():
      for name, method, kw in [("greedy", "greedy", {{}}), ("beam2", "beam", {{"num_beams": 2}}),
                               ("beam4", "beam", {{"num_beams": 4}})]:
        fn = jax.jit(functools.partial(decoding.predict_batch, model, method=method,
                                       max_decode_length=8, **kw))
        tokens, scores = fn(params, batch)
        out[name + "_tokens"], out[name + "_scores"] = np.asarray(tokens), np.asarray(scores)
    np.savez({result!r}, **out)
    print("devices", len(jax.devices()))
""")


@pytest.mark.slow
def test_decoding_under_a_sharded_mesh_matches_one_device(trained, tmp_path):
  model, params = trained
  inputs = np.asarray(copy_batch(np.random.default_rng(124), 6)["encoder_input_tokens"])
  expected = {}
  for name, method, kw in [("greedy", "greedy", {}), ("beam2", "beam", {"num_beams": 2}),
                           ("beam4", "beam", {"num_beams": 4})]:
    tokens, scores = decoding.predict_batch(model, params, {"encoder_input_tokens": inputs},
                                            method=method, max_decode_length=8, **kw)
    expected[name] = (np.asarray(tokens), np.asarray(scores))
  assert_clear_margins(model, params, inputs, expected["greedy"][0])
  for row in inputs:
    for k in (2, 4):
      finished, gap = reference_beam_search(model, params, row, 8, k=k)
      assert gap > MARGIN, f"near-tie ({gap:.2e}) in {k}-beam search's choices"

  flat = {"/".join(k): np.asarray(v) for k, v in flax.traverse_util.flatten_dict(params).items()}
  npz, result = tmp_path / "in.npz", tmp_path / "out.npz"
  np.savez(npz, inputs=inputs, names=np.array(sorted(flat)),
           **{"param/" + k: v for k, v in flat.items()})
  script = SCRIPT.format(npz=str(npz), result=str(result))
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert "devices 4" in proc.stdout
  got = np.load(result)
  for method, (tokens, scores) in expected.items():
    np.testing.assert_array_equal(got[method + "_tokens"], tokens, err_msg=method)
    np.testing.assert_allclose(got[method + "_scores"], scores, rtol=1e-5, atol=1e-5,
                               err_msg=method)

