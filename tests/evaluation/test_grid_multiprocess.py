"""A two-process local rehearsal of a grid launched on a two-host slice: two `xfer-t5x grid run`
processes (jax.distributed, 4 fake CPU devices each, standing in for two hosts) run every phase
together; process 0 alone writes the state and the results, every result once.

Process 1 is given its own --state_dir and --db: a follower that wrote bookkeeping would leave
files there.
"""
import os
import subprocess
import sys

import gin
import pytest

from tests.conftest import finish_all, free_port
from tests.evaluation.test_grid import LANGS, _bindings, _plan, _results

pytestmark = pytest.mark.slow


def _args(ws, root, state_dir=None, db=None):
  # Synchronous checkpoints: on CPU (gloo) Orbax's background save would run its cross-process
  # steps in an order that may differ between processes (see test_preemption_multiprocess.py).
  out = ["grid", "run", "--gin_file", "experiments/demo.gin"]
  for b in _bindings(ws, root, ["experiment.intermediates = ['sst2']",
                                "train.async_checkpointing = False"]):
    name, value = b.split(" = ", 1)
    out.append(f"--gin.{name}={value}")
  if state_dir:
    out += ["--state_dir", str(state_dir), "--db", str(db)]
  return out


def test_two_processes_run_the_grid_together_and_only_process_0_records(demo_workspace,
                                                                        tmp_path):
  root = tmp_path / "grid"
  elsewhere = tmp_path / "process1_state"
  port = free_port()
  procs = []
  for pid in (0, 1):
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               XLA_FLAGS="--xla_force_host_platform_device_count=4",
               XFER_T5X_COORDINATOR=f"localhost:{port}", XFER_T5X_NUM_PROCESSES="2",
               XFER_T5X_PROCESS_ID=str(pid))
    args = _args(demo_workspace, root) if pid == 0 else _args(
        demo_workspace, root, elsewhere, elsewhere / "results.sqlite")
    procs.append(subprocess.Popen([sys.executable, "-m", "xfer_t5x", *args], env=env,
                                  cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  outs = finish_all(procs, timeout=900)
  leader, follower = outs
  assert "ran 3 phases" in leader and "1 runs recorded" in leader, leader[-3000:]
  assert "process 1: the grid's leader (process 0) stopped" in follower, follower[-3000:]
  assert "after 3 phases run together" in follower, follower[-3000:]
  assert not elsewhere.exists()  # the follower opened no state or results database

  plan = _plan(demo_workspace, root, ["experiment.intermediates = ['sst2']",
                                      "train.async_checkpointing = False"])
  gin.clear_config()
  rows = _results(plan.results_db)
  keys = [(r["run_id"], r["language"], r["metric"]) for r in rows]
  assert len(keys) == len(set(keys)) == len(LANGS)  # every result once
  assert {r["run_id"] for r in rows} == {run.run_id for run in plan.runs}
  assert all(0.0 <= r["value"] <= 100.0 for r in rows)
  # Both processes trained the same model: one model dir, its checkpoints complete.
  for phase in plan.phases:
    if phase.kind != "evaluate":
      assert os.path.isdir(phase.final_checkpoint), phase.phase_id
