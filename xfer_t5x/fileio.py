"""Atomic file writes, local or remote: the one place the library replaces a file.

Locally the data goes to a temporary file beside the target, which is renamed over it only once
complete, so a crash never leaves a half-written file. Object stores (gs://) write whole objects
anyway, so remote paths are written directly.
"""
import contextlib
import os
import tempfile
from typing import Union


def is_remote(path) -> bool:
  return "://" in os.fspath(path)


@contextlib.contextmanager
def atomic_open(path, mode: str = "w"):
  """`open(path, mode)` whose result appears at `path` only when the block completes."""
  if mode not in ("w", "wb"):
    raise ValueError(f"atomic_open mode {mode!r}: use 'w' or 'wb'")
  path = os.fspath(path)
  kw = {"encoding": "utf-8", "newline": ""} if mode == "w" else {}
  if is_remote(path):
    from etils import epath  # pylint: disable=g-import-not-at-top
    p = epath.Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open(mode) as f:
      yield f
    return
  parent = os.path.dirname(os.path.abspath(os.path.expanduser(path)))
  os.makedirs(parent, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
  try:
    # mkstemp makes the file 0600; give it the mode `open` would (0666 less the umask).
    os.chmod(tmp, 0o666 & ~_umask())
    with os.fdopen(fd, mode, **kw) as f:
      yield f
    os.replace(tmp, os.path.expanduser(path))
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def atomic_write(path, data: Union[str, bytes]) -> None:
  """Replaces `path` with `data` (text or bytes) atomically."""
  with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as f:
    f.write(data)


def _umask() -> int:
  """The process's umask (read from /proc where it can be, without changing it)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except OSError:
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask
