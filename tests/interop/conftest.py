"""Fixtures shared by the interop tests."""
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture
def run_on_8_devices(tmp_path):
  """Runs a check script of this folder with 8 fake CPU devices (argument: a work folder);
  asserts it exits 0 and returns its stdout."""
  def run(script: str) -> str:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join([REPO, env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, os.path.join(HERE, script), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout
  return run


@pytest.fixture(scope="module")
def real_checkpoint(shared_data):
  """The checkpoint T5X itself wrote (../shared/data/t5x_checkpoint) and its values."""
  folder = shared_data / "t5x_checkpoint"
  if not folder.is_dir():
    pytest.skip(f"{folder} is absent (real data samples live in ../shared/data beside the repo)")
  return str(folder / "checkpoint_20"), dict(np.load(folder / "params_step20.npz"))
