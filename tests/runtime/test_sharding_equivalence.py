"""Tier 2: the same 3 training steps on every mesh give the (1,1) result (loss, gradients,
updated parameters, optimizer statistics); k=4 microbatches give the full-batch update."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

WORKER = pathlib.Path(__file__).with_name("sharding_worker.py")
RTOL, ATOL = 1e-5, 1e-6  # CONTRACTS.md: float32 comparisons

pytestmark = pytest.mark.slow


def _run(tmp_path, data, model, dims, microbatches):
  out = tmp_path / f"r_{data}x{model}_{dims}d_k{microbatches}.npz"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, str(WORKER), str(data), str(model), str(dims),
                         str(microbatches), str(out)], capture_output=True, text=True, env=env,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return dict(np.load(out))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  return _run(tmp_path_factory.mktemp("ref"), 1, 1, 1, 1)


def _assert_same(got, ref):
  assert got.keys() == ref.keys()
  assert any(k.startswith("grad/") for k in ref) and any(k.startswith("opt/") for k in ref)
  for k in ref:
    np.testing.assert_allclose(got[k], ref[k], rtol=RTOL, atol=ATOL, err_msg=k)


def test_training_changes_parameters(reference, tmp_path):
  """Guards the comparisons below against a step that does nothing."""
  assert reference["loss"][2] < reference["loss"][0]


@pytest.mark.parametrize("data,model,dims", [(8, 1, 1), (4, 2, 1), (2, 4, 1), (1, 8, 1),
                                             (4, 2, 2), (2, 4, 2), (8, 1, 2), (1, 8, 2)])
def test_mesh_matches_single_device(reference, tmp_path, data, model, dims):
  _assert_same(_run(tmp_path, data, model, dims, 1), reference)


def test_microbatched_step_equals_full_batch(reference, tmp_path):
  _assert_same(_run(tmp_path, 1, 1, 1, 4), reference)


def test_microbatched_sharded_step(reference, tmp_path):
  _assert_same(_run(tmp_path, 4, 2, 2, 4), reference)
