"""An exclusive, non-blocking lock file that names its holder (the grid's and the model dir's).

`flock` on a local file: the kernel drops it when the holding process dies, however it dies, so a
stale lock cannot block a restart (the next process simply takes it). The file holds
"pid P on HOST since TIME" for the message of whoever is refused.
"""
import datetime
import errno
import fcntl
import os
import socket
from typing import Optional


class LockHeldError(RuntimeError):
  """Someone else holds the lock; `holder` is what the lock file says about them."""

  def __init__(self, path: str, holder: str):
    super().__init__(f"{path} is held by {holder or 'an unknown process'}")
    self.path, self.holder = path, holder


def holder(path: str) -> str:
  try:
    with open(path, encoding="utf-8") as f:
      return f.read().strip()
  except OSError:
    return ""


class FileLock:
  """`acquire()` takes the lock or raises LockHeldError; `release()` gives it back."""

  def __init__(self, path: str):
    self.path = path
    self._fd: Optional[int] = None

  def acquire(self) -> "FileLock":
    os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
        raise LockHeldError(self.path, holder(self.path)) from None
      raise
    since = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode())
    self._fd = fd
    return self

  def release(self, remove: bool = False) -> None:
    """Drops the lock; `remove`: delete the lock file first (nobody else can be waiting on it:
    acquiring never waits)."""
    if self._fd is None:
      return
    if remove:
      try:
        os.remove(self.path)
      except OSError:
        pass
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    self._fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def is_held(path: str) -> bool:
  """Whether some process holds the lock at `path` now."""
  if not os.path.exists(path):
    return False
  fd = os.open(path, os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
  except OSError:
    return True
  else:
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False
  finally:
    os.close(fd)
