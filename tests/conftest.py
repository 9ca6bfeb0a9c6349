"""Shared test setup: CPU only, a persistent compilation cache, and the paths of shared data."""
import os
import pathlib
import socket

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


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory):
  """Demo data in the released file formats plus a local SentencePiece vocabulary, made once
  per session: {"data_dir": ..., "vocab": ...}."""
  from xfer_t5x.tasks import demo_data, vocab  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("demo_workspace")
  data_dir = demo_data.write_demo_data(str(root / "data"))
  vocab.build_local_vocabulary(demo_data.demo_texts(data_dir), str(root / "spm.model"))
  return {"data_dir": str(data_dir), "vocab": str(root / "spm.model")}


def free_port() -> int:
  """A free localhost port for a jax.distributed coordinator in multi-process tests."""
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def finish_all(procs, timeout: float = 300):
  """The combined outputs of processes started with stdout=PIPE (stderr merged), once all have
  ended; any still running after `timeout` is killed. Asserts that every one exited 0."""
  try:
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-4000:]
  return outs
