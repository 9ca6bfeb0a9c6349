"""The grid's state table and lock (no training): statuses, attempts, interrupted runs."""
import os
import subprocess
import sys

import pytest

from xfer_t5x.experiments import state as state_lib


def test_lock_is_exclusive_and_released(tmp_path):
  root = str(tmp_path)
  assert not state_lib.lock_is_held(root)
  with state_lib.GridLock(root):
    assert state_lib.lock_is_held(root)
    with pytest.raises(state_lib.GridBusyError, match="another `grid run`"):
      state_lib.GridLock(root).acquire()
  assert not state_lib.lock_is_held(root)


def test_lock_of_a_killed_process_is_released(tmp_path):
  code = ("import os, sys; from xfer_t5x.experiments import state; "
          f"state.GridLock({str(tmp_path)!r}).acquire(); os.kill(os.getpid(), 9)")
  proc = subprocess.run([sys.executable, "-c", code], check=False)
  assert proc.returncode == -9
  assert not state_lib.lock_is_held(str(tmp_path))
  state_lib.GridLock(str(tmp_path)).acquire().release()


def test_statuses_attempts_and_interruption(tmp_path):
  root = str(tmp_path)
  with state_lib.StateStore(root) as store:
    assert store.status("a") == "pending"
    store.start("a", "intermediate", "h1")
    assert store.get("a")["pid"] == os.getpid()
    # nobody holds the lock: a phase left running is an interrupted one
    assert store.status("a") == "interrupted"
    assert store.status("a", running_now=True) == "running"
    store.fail("a", "Traceback: boom")
    assert store.status("a") == "failed" and store.get("a")["error"] == "Traceback: boom"
    store.start("a", "intermediate", "h2")
    row = store.get("a")
    assert row["attempts"] == 2 and row["error"] is None and row["config_sha256"] == "h2"
    store.finish("a", "/m/checkpoint_5", 5, "d" * 64)
    row = store.get("a")
    assert (row["status"], row["checkpoint"], row["step"], row["data_version"]) == (
        "done", "/m/checkpoint_5", 5, "d" * 64)
    store.start("b", "evaluate", "h3")
    store.finish("b", "/m/checkpoint_5", 5, "e" * 64, n_params=7, result=[{"x": 1.5}])
    assert store.get("b")["result"] == [{"x": 1.5}] and store.get("b")["n_params"] == 7
  with state_lib.StateStore(root, readonly=True) as ro:
    assert [r["phase_id"] for r in ro.all()] == ["a", "b"]
  with state_lib.StateStore(str(tmp_path / "none"), readonly=True) as missing:
    assert missing.all() == [] and missing.get("a") is None
