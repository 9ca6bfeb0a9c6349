"""A training run's model dir: checked writable before anything runs, and one writer at a time.

`check_writable(model_dir)` refuses a MODEL_DIR that is a file, or under a file, or in a folder
this process cannot write (read-only file system, permissions), before the run reads data or
compiles, so the user learns it in seconds and Orbax never starts writing there.

`ModelDirLock` is an exclusive `flock` on `<model_dir>/train.lock`, taken by process 0 of a run
for as long as it trains; the file names the holder (host, pid, since when). A second `train` on
the same dir is refused with that holder instead of racing the first one's checkpoints (Orbax
would also delete the first one's checkpoint in progress as a leftover temporary). The kernel drops
the lock when the holder dies, however it dies, so a stale lock cannot block a restart: a lock
file whose holder is gone is simply taken over.

A model dir on an object store (gs://...) cannot be flock'ed: there the lock is not taken (the
log says so), and one launcher per model dir is the user's rule, as in T5X.
"""
import errno
import os
import tempfile

from xfer_t5x import locking
from xfer_t5x.runtime.metrics_writer import log

LOCK_NAME = "train.lock"


class ModelDirError(ValueError):
  """MODEL_DIR cannot be a run's folder here (a file, read-only, not permitted)."""


class ModelDirBusyError(RuntimeError):
  """Another process is training in this model dir."""


def is_local(path) -> bool:
  return "://" not in str(path)


def check_writable(model_dir: str) -> None:
  """Raises ModelDirError unless `model_dir` is (or can be made) a folder this process writes.

  Leaves nothing behind: the probe file it writes into the nearest existing folder is removed.
  """
  if not is_local(model_dir):
    return
  path = os.path.abspath(model_dir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ModelDirError(
        f"MODEL_DIR {model_dir} is a file, not a folder; give a folder (a new path, or the model "
        "dir of the run to continue) or move the file away")
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ModelDirError(
        f"MODEL_DIR {model_dir} cannot be created: {existing} is a file, not a folder; give a "
        "path under a folder")
  try:
    fd, probe = tempfile.mkstemp(dir=existing, prefix=".xfer_t5x_write_probe_")
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    what = ("the file system is read-only" if e.errno == errno.EROFS else
            "the disk is full" if e.errno == errno.ENOSPC else e.strerror)
    target = "in it" if existing == path else f"in {existing}, where it would be created"
    raise ModelDirError(
        f"MODEL_DIR {model_dir}: cannot write {target} ({what}); give a MODEL_DIR on a writable "
        "file system, or fix the folder's permissions") from e


class ModelDirLock:
  """The exclusive lock of one model dir (see the module's docstring); a no-op on gs://."""

  def __init__(self, model_dir: str):
    self.model_dir = model_dir
    self._lock = (locking.FileLock(os.path.join(model_dir, LOCK_NAME))
                  if is_local(model_dir) else None)

  def acquire(self) -> "ModelDirLock":
    if self._lock is None:
      log("%s is not a local folder: no lock is taken; run one `train` per model dir",
          self.model_dir)
      return self
    try:
      self._lock.acquire()
    except locking.LockHeldError as e:
      raise ModelDirBusyError(
          f"MODEL_DIR {self.model_dir} is in use by another training run "
          f"({e.holder or 'holder unknown'}; lock {e.path}): two runs in one model dir would "
          "overwrite each other's checkpoints. Wait for it to finish, stop it, or give another "
          "MODEL_DIR.") from None
    return self

  def release(self, remove: bool = False) -> None:
    """Drops the lock; `remove`: delete the lock file too (a run refused in a dir it created)."""
    if self._lock is not None:
      self._lock.release(remove=remove)
