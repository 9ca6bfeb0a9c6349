"""Atomic writes: the file appears whole or not at all, with the mode `open` would give it."""
import os
import stat

import pytest

from xfer_t5x import fileio


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_keeps_the_umask_mode(tmp_path, umask, mode):
  old = os.umask(umask)
  try:
    path = tmp_path / "out.txt"
    fileio.atomic_write(path, "hello")
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as f:
      f.write("x")
  finally:
    os.umask(old)
  assert path.read_text() == "hello"
  assert stat.S_IMODE(path.stat().st_mode) == mode == stat.S_IMODE(plain.stat().st_mode)


def test_a_failed_write_leaves_the_old_file(tmp_path):
  path = tmp_path / "out.txt"
  fileio.atomic_write(path, "old")
  with pytest.raises(RuntimeError):
    with fileio.atomic_open(path) as f:
      f.write("new, half")
      raise RuntimeError("killed")
  assert path.read_text() == "old"
  assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary left behind
