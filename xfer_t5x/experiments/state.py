"""The grid's bookkeeping: which phase is done, running, failed or pending, and one lock per grid.

`<state dir>/state.sqlite` (the grid's root unless `experiment.state_dir` says otherwise; always
a local folder) holds one row per phase that was ever started:

  phase_id, kind, status (running | done | failed | interrupted), config_sha256 (the phase's
  parsed gin config), checkpoint and step (what a training phase ended with, or what an
  evaluation evaluated), data_version, n_params, result (evaluate: the results rows as JSON, so
  that a results database lost or moved is filled again without re-evaluating), attempts, pid,
  host, started_at, finished_at, error (the last failure's traceback).

A phase never started has no row: it is `pending`. A row left `running` by a process that died
(SIGKILL, a crash, a lost machine) reads as `interrupted` once nobody holds the grid's lock, and
the next `grid run` resumes it (the trainer continues from its latest complete checkpoint).

`GridLock` is an exclusive `flock` on `<state dir>/grid.lock`, held for the whole of a `grid run`;
the kernel drops it when the process dies, however it dies, so a stale lock cannot block a
restart.
"""
import datetime
import json
import os
import socket
import sqlite3
from typing import Dict, List, Optional

from xfer_t5x import locking

STATUSES = ("done", "running", "failed", "interrupted", "pending")
_COLUMNS = (
    ("phase_id", "TEXT PRIMARY KEY"), ("kind", "TEXT NOT NULL"), ("status", "TEXT NOT NULL"),
    ("config_sha256", "TEXT"), ("checkpoint", "TEXT"), ("step", "INTEGER"),
    ("data_version", "TEXT"), ("n_params", "INTEGER"), ("result", "TEXT"),
    ("attempts", "INTEGER NOT NULL DEFAULT 0"), ("pid", "INTEGER"), ("host", "TEXT"),
    ("started_at", "TEXT"), ("finished_at", "TEXT"), ("error", "TEXT"),
)
COLUMNS = tuple(c for c, _ in _COLUMNS)


def now() -> str:
  """The current time as ISO 8601 (UTC, seconds)."""
  return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


class GridBusyError(RuntimeError):
  """Another process is running this grid."""


class GridLock:
  """An exclusive, non-blocking lock on `<root>/grid.lock` (released when the process dies)."""

  def __init__(self, root: str):
    self.path = os.path.join(root, "grid.lock")
    self._lock = locking.FileLock(self.path)

  def acquire(self) -> "GridLock":
    try:
      self._lock.acquire()
    except locking.LockHeldError as e:
      raise GridBusyError(
          f"another `grid run` ({e.holder or 'unknown process'}) is working in "
          f"{os.path.dirname(self.path)}; wait for it to finish (`xfer-t5x grid status` shows "
          "its progress) or stop it first") from None
    return self

  def release(self) -> None:
    self._lock.release()

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def lock_is_held(root: str) -> bool:
  """Whether some process holds the grid's lock now (a `grid run` is working)."""
  return locking.is_held(os.path.join(root, "grid.lock"))


class StateDatabaseError(ValueError):
  """The grid's state DB is empty or unreadable: taking it as a new grid would redo every phase."""


REBUILD_HINT = ("Rebuild it from the model dirs and the results database (it is moved aside, "
                "nothing is deleted): xfer-t5x grid rebuild-state with the same --gin_file and "
                "--gin. flags as `grid run`; then run the grid again.")


def check_database(path: str) -> None:
  """Raises StateDatabaseError if the file at `path` exists but is empty or not a state DB."""
  if not os.path.exists(path):
    return
  if os.path.getsize(path) == 0:
    raise StateDatabaseError(
        f"the grid's state {path} is empty (0 bytes: a disk that filled up, a copy that failed); "
        f"taking it as a new grid would redo every finished phase. {REBUILD_HINT}")
  try:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
      names = [r[1] for r in conn.execute("PRAGMA table_info(phases)")]
      tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    finally:
      conn.close()
  except sqlite3.DatabaseError as e:
    raise StateDatabaseError(
        f"the grid's state {path} cannot be read as SQLite ({e}). {REBUILD_HINT}") from e
  missing = [c for c in COLUMNS if c not in names]
  if missing and tables:  # (no table at all: a store killed while creating its table)
    raise StateDatabaseError(
        f"the grid's state {path} is a SQLite file without the phases table's columns "
        f"{missing}: not this library's grid state. {REBUILD_HINT}")


class StateStore:
  """The phases table in `<root>/state.sqlite` (one short transaction per change).

  An existing file that is empty or not a state DB is refused (StateDatabaseError, naming the
  file and `grid rebuild-state`), never silently taken as a new grid.
  """

  def __init__(self, root: str, readonly: bool = False):
    self.root = root
    self.path = os.path.join(root, "state.sqlite")
    check_database(self.path)
    if readonly:
      if not os.path.exists(self.path):
        self._conn = None
        return
      self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=60)
    else:
      os.makedirs(root, exist_ok=True)
      self._conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
      self._conn.execute("PRAGMA journal_mode=WAL")
      cols = ", ".join(f"{c} {t}" for c, t in _COLUMNS)
      self._conn.execute(f"CREATE TABLE IF NOT EXISTS phases ({cols})")
    self._conn.row_factory = sqlite3.Row

  def close(self):
    if self._conn is not None:
      self._conn.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  # -- reads ---------------------------------------------------------------------------------------

  def get(self, phase_id: str) -> Optional[Dict]:
    if self._conn is None:
      return None
    row = self._conn.execute("SELECT * FROM phases WHERE phase_id = ?", (phase_id,)).fetchone()
    return _decode(row) if row else None

  def all(self) -> List[Dict]:
    if self._conn is None:
      return []
    return [_decode(r) for r in self._conn.execute("SELECT * FROM phases ORDER BY phase_id")]

  def status(self, phase_id: str, running_now: Optional[bool] = None) -> str:
    """done, running, failed, interrupted or pending (`running_now`: is the lock held?)."""
    return effective_status(self.get(phase_id), self.root if running_now is None else running_now)

  # -- writes --------------------------------------------------------------------------------------

  def start(self, phase_id: str, kind: str, config_sha256: str) -> None:
    """Marks a phase running (a new row, or a failed/interrupted one tried again)."""
    self._conn.execute(
        "INSERT INTO phases (phase_id, kind, status, config_sha256, attempts, pid, host, "
        "started_at, error) VALUES (?, ?, 'running', ?, 1, ?, ?, ?, NULL) "
        "ON CONFLICT(phase_id) DO UPDATE SET status = 'running', config_sha256 = excluded."
        "config_sha256, attempts = attempts + 1, pid = excluded.pid, host = excluded.host, "
        "started_at = COALESCE(phases.started_at, excluded.started_at), error = NULL",
        (phase_id, kind, config_sha256, os.getpid(), socket.gethostname(), now()))

  def finish(self, phase_id: str, checkpoint: str, step: int, data_version: str,
             n_params: Optional[int] = None, result: Optional[list] = None) -> None:
    """Marks a phase done with what it produced (an evaluation's results rows in `result`: one
    statement, so the phase is never done without them)."""
    self._conn.execute(
        "UPDATE phases SET status = 'done', checkpoint = ?, step = ?, data_version = ?, "
        "n_params = ?, result = ?, finished_at = ?, pid = NULL WHERE phase_id = ?",
        (checkpoint, int(step), data_version, n_params,
         None if result is None else json.dumps(result), now(), phase_id))

  def fail(self, phase_id: str, error: str) -> None:
    self._conn.execute("UPDATE phases SET status = 'failed', error = ?, pid = NULL, "
                       "finished_at = ? WHERE phase_id = ?", (error, now(), phase_id))

  def interrupt(self, phase_id: str, why: str) -> None:
    self._conn.execute("UPDATE phases SET status = 'interrupted', error = ?, pid = NULL "
                       "WHERE phase_id = ?", (why, phase_id))


def _decode(row) -> Dict:
  out = dict(row)
  if out.get("result"):
    out["result"] = json.loads(out["result"])
  return out


def effective_status(row: Optional[Dict], running_now) -> str:
  """A row's status as `grid status` shows it; `running_now` is a bool or the grid's root."""
  if row is None:
    return "pending"
  status = row["status"]
  if status == "running":
    held = lock_is_held(running_now) if isinstance(running_now, str) else bool(running_now)
    return "running" if held else "interrupted"
  return status
