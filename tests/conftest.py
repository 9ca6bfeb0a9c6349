"""Shared test setup: CPU only, a persistent compilation cache, and the paths of shared data."""
import os
import pathlib

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(pathlib.Path.home() / ".cache" / "xfer_t5x_jax_tests"))

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
  """../shared/data, or a skip naming why it is absent."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"real data samples not found at {SHARED_DATA} (they sit beside the repo in CI)")
  return SHARED_DATA


def shared_path(*parts):
  """A path under ../shared/data, skipping the calling test with a reason if it is absent."""
  p = SHARED_DATA.joinpath(*parts)
  if not p.exists():
    pytest.skip(f"{p} is absent (real data samples live in ../shared/data beside the repo)")
  return p
