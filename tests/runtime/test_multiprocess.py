"""Tier 3: two processes joined by jax.distributed (local coordinator, CPU collectives), 4 fake
devices each, train on one (4, 2) mesh, checkpoint and restore; equal to one 8-device process."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import free_port

WORKER = pathlib.Path(__file__).with_name("multiprocess_worker.py")

pytestmark = pytest.mark.slow


def _start(n, pid, port, out):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  return subprocess.Popen([sys.executable, str(WORKER), str(n), str(pid), str(port), str(out)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_two_processes_equal_one(tmp_path):
  multi, single = tmp_path / "multi", tmp_path / "single"
  multi.mkdir()
  single.mkdir()
  port = free_port()
  procs = [_start(2, i, port, multi) for i in range(2)]
  outs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-4000:]
  ref = _start(1, 0, 0, single)
  out = ref.communicate(timeout=600)[0]
  assert ref.returncode == 0, out[-4000:]
  assert (multi / "model" / "checkpoint_3").is_dir()
  got, want = dict(np.load(multi / "params.npz")), dict(np.load(single / "params.npz"))
  assert got.keys() == want.keys() and len(want) > 10
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)
