"""Blocked top-k over a pool sharded on the mesh equals brute-force top-k, ties included.

The test runs this file as a script in a subprocess with 8 fake CPU devices: meshes (4, 2) and
(1, 1), a pool that fits in no single block (and does not divide into the devices' blocks), query
blocks with a ragged last one, and embeddings whose similarities tie exactly (0/1 vectors with
the same number of ones: every cosine is an exact multiple of 1/4); and a pool a tiny model
embeds straight onto the mesh (never whole on the host) against its host embeddings.
"""
import json
import os
import subprocess
import sys

if __name__ == "__main__":
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def brute_force(queries, pool, k):
  """Every similarity, then sorted by (similarity descending, index ascending)."""
  q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  c = pool / np.linalg.norm(pool, axis=1, keepdims=True)
  sims = q @ c.T
  order = np.lexsort((np.broadcast_to(np.arange(len(pool)), sims.shape), -sims), axis=1)
  return order[:, :k], np.take_along_axis(sims, order[:, :k], axis=1)


def _tied(rng, n, dim=16, ones=4):
  out = np.zeros((n, dim), np.float32)
  for row in out:
    row[rng.choice(dim, ones, replace=False)] = 1.0
  return out


def _worker(out_path):
  import jax  # pylint: disable=g-import-not-at-top
  from xfer_t5x.evaluation import search  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime.partitioning import make_mesh  # pylint: disable=g-import-not-at-top
  assert len(jax.devices()) == 8
  rng = np.random.default_rng(0)
  cases = {"tied": (_tied(rng, 70), _tied(rng, 1000)),
           "random": (rng.normal(size=(45, 24)).astype(np.float32),
                      rng.normal(size=(777, 24)).astype(np.float32))}
  out = {}
  for name, (queries, pool) in cases.items():
    for shape in ((4, 2), (1, 1)):
      mesh = make_mesh(data=shape[0], model=shape[1], devices=jax.devices()[:shape[0] * shape[1]])
      idx, vals = search.top_k(queries, pool, 20, mesh, block_size=16, query_block=32)
      full_v, full_i = jax.lax.top_k(jax.numpy.asarray(
          search._normalise(queries) @ search._normalise(pool).T), 20)
      out[f"{name}{shape}"] = {"idx": idx.tolist(), "vals": vals.tolist(),
                               "jax_idx": np.asarray(full_i).tolist(),
                               "jax_vals": np.asarray(full_v).tolist()}
  out.update(_embedded_pool())
  with open(out_path, "w") as f:
    json.dump(out, f)


def _embedded_pool():
  """A pool embedded by a tiny model straight onto the mesh (MeshRunner.embed_pool) against
  the host embeddings of `embed`, on (4, 2) and (1, 1)."""
  import jax  # pylint: disable=g-import-not-at-top
  from xfer_t5x.evaluation.runner import MeshRunner  # pylint: disable=g-import-not-at-top
  from xfer_t5x.model.api import EncoderDecoderModel  # pylint: disable=g-import-not-at-top
  from xfer_t5x.model.config import T5Config  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime.partitioning import Partitioner, make_mesh  # pylint: disable=g-import-not-at-top
  model = EncoderDecoderModel(T5Config(vocab_size=128, emb_dim=32, num_heads=2, head_dim=16,
                                       mlp_dim=64, num_encoder_layers=2, num_decoder_layers=1,
                                       dtype="float32", dropout_rate=0.0))
  params = jax.jit(model.init)(jax.random.PRNGKey(0))
  rng = np.random.default_rng(1)
  tokens = rng.integers(2, 128, (101, 12)).astype(np.int32)
  tokens[::7, 5:] = 0
  queries = rng.integers(2, 128, (9, 12)).astype(np.int32)
  out = {}
  for shape in ((4, 2), (1, 1)):
    part = Partitioner(make_mesh(shape[0], shape[1], devices=jax.devices()[:shape[0] * shape[1]]))
    runner = MeshRunner(model, params, part, batch_size=16)
    pool = runner.embed_pool(tokens, None, block_size=8)
    host = runner.embed(tokens)
    q = runner.embed(queries)
    on_mesh = runner.top_k(q, pool, 10)
    from_host = runner.top_k(q, host, 10)
    out[f"pool{shape}"] = {
        "rows": list(pool.array.shape), "n": pool.n,
        "devices": len(pool.array.sharding.device_set),
        "shard_rows": sorted({s.data.shape[0] for s in pool.array.addressable_shards}),
        "max_diff": float(np.abs(np.asarray(pool.array)[:101] - host / np.linalg.norm(
            host, axis=1, keepdims=True)).max()),
        "padding_zero": bool(np.all(np.asarray(pool.array)[101:] == 0)),
        "same_idx": bool(np.array_equal(on_mesh[0], from_host[0])),
        "vals_diff": float(np.abs(on_mesh[1] - from_host[1]).max())}
  return out


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
  out = tmp_path_factory.mktemp("search") / "out.json"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True,
                        text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(out.read_text())


def test_blocked_search_equals_brute_force_with_ties(searched):
  rng = np.random.default_rng(0)
  queries, pool = _tied(rng, 70), _tied(rng, 1000)
  want_i, want_v = brute_force(queries, pool, 20)
  sims = (queries / 2) @ (pool / 2).T
  assert (np.sort(sims, axis=1)[:, -21:] == np.sort(sims, axis=1)[:, -20:-19]).any(), \
      "the case must have ties at the k-th place"
  for shape in ("(4, 2)", "(1, 1)"):
    got = searched[f"tied{shape}"]
    assert np.array_equal(np.array(got["idx"]), want_i), shape  # the same order, ties included
    assert np.array_equal(np.array(got["jax_idx"]), want_i)  # as lax.top_k over the whole row
    assert np.allclose(got["vals"], want_v, atol=1e-6)


def test_blocked_search_equals_brute_force_on_random_embeddings(searched):
  rng = np.random.default_rng(0)
  _tied(rng, 70), _tied(rng, 1000)  # the worker drew these first
  queries = rng.normal(size=(45, 24)).astype(np.float32)
  pool = rng.normal(size=(777, 24)).astype(np.float32)
  want_i, want_v = brute_force(queries, pool, 20)
  for shape in ("(4, 2)", "(1, 1)"):
    got = searched[f"random{shape}"]
    assert np.array_equal(np.array(got["idx"]), want_i), shape
    assert np.allclose(got["vals"], want_v, atol=1e-5)


if __name__ == "__main__":
  _worker(sys.argv[1])


def test_a_pool_embedded_onto_the_mesh_is_the_host_pool_split_over_every_device(searched):
  for shape, devices in (("(4, 2)", 8), ("(1, 1)", 1)):
    got = searched[f"pool{shape}"]
    assert got["n"] == 101 and got["devices"] == devices, got
    rows = got["rows"][0]
    assert rows >= 101 and rows % devices == 0 and got["shard_rows"] == [rows // devices]
    assert got["max_diff"] < 1e-5 and got["padding_zero"], got
    assert got["same_idx"] and got["vals_diff"] < 1e-5, got
