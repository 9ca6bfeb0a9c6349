"""Fixtures shared by the interop tests."""
import numpy as np
import pytest


@pytest.fixture(scope="module")
def real_checkpoint(shared_data):
  """The checkpoint T5X itself wrote (../shared/data/t5x_checkpoint) and its values."""
  folder = shared_data / "t5x_checkpoint"
  if not folder.is_dir():
    pytest.skip(f"{folder} is absent (real data samples live in ../shared/data beside the repo)")
  return str(folder / "checkpoint_20"), dict(np.load(folder / "params_step20.npz"))
