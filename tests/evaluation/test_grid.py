"""The grid runner end to end on a tiny grid: results with provenance, exactly once; nothing
redone; a failing phase keeps what earlier runs wrote; a grid killed (SIGKILL) in the middle of a
run and restarted ends with the same results as an uninterrupted one (bitwise: same topology);
an evaluation's completion killed at each of its boundaries loses no result and records none
twice.

The grid: mt5_tiny, intermediate none and sst2, target xnli in en and de. Phases: the sst2
intermediate phase (16 steps), two xnli_train stages (6 steps), two evaluations.
"""
import json
import os
import pathlib
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import gin
import numpy as np
import pytest

import xfer_t5x
from xfer_t5x import cli
from xfer_t5x import results as results_lib
from xfer_t5x.experiments import grid
from xfer_t5x.experiments import state as state_lib

pytestmark = pytest.mark.slow

INTERMEDIATE_STEPS = 16
TARGET_STEPS = 6
LANGS = ("en", "de")
PROVENANCE = ("checkpoint", "gin_sha256", "data_version", "code_version", "started_at",
              "finished_at")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _bindings(ws, root, extra=()):
  return [f"default_vocabulary.path = {ws['vocab']!r}",
          f"register_tasks.data_dir = {ws['data_dir']!r}",
          f"experiment.root_dir = {str(root)!r}",
          "experiment.name = 'tinygrid'",
          "experiment.sizes = {'tiny': 'models/mt5_tiny.gin'}",
          "experiment.intermediates = ['sst2', 'none']",  # the 16-step phase first
          "experiment.targets = ['xnli']",
          f"experiment.languages = {{'xnli': {list(LANGS)!r}}}",
          f"experiment.intermediate_steps = {INTERMEDIATE_STEPS}",
          f"experiment.target_steps = {TARGET_STEPS}",
          "train.checkpoint_period = 4",
          "train.keep_checkpoints = 10",
          *extra]


def _plan(ws, root, extra=()):
  return grid.load_plan(["experiments/demo.gin"], _bindings(ws, root, extra))


def _cli_args(ws, root):
  out = ["--gin_file", "experiments/demo.gin"]
  for b in _bindings(ws, root):
    name, value = b.split(" = ", 1)
    out.append(f"--gin.{name}={value}")
  return out


def _env():
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("XLA_FLAGS", None)
  return env


def _results(db_path):
  with results_lib.ResultsDB(db_path) as db:
    return db.rows()


def _by_key(rows):
  return {(r["run_id"], r["language"], r["metric"]): r for r in rows}


def _assert_same_results(plan, ref_plan, fields=("value", "step")):
  """Every result of `plan` exactly once, with `ref_plan`'s values of `fields`."""
  got, want = _results(plan.results_db), _results(ref_plan.results_db)
  assert len(got) == len(want) == len(_by_key(got))  # every result exactly once
  got_k, want_k = _by_key(got), _by_key(want)
  assert got_k.keys() == want_k.keys()
  for k in want_k:
    for field in fields:
      assert got_k[k][field] == want_k[k][field], (k, field)


def _mtimes(root):
  return {str(p): p.stat().st_mtime_ns for p in pathlib.Path(root).rglob("checkpoint_*")}


@pytest.fixture(autouse=True)
def _clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


@pytest.fixture(scope="module")
def done_grid(demo_workspace, tmp_path_factory):
  """An uninterrupted grid, run in this process: (plan, report)."""
  root = tmp_path_factory.mktemp("grid_uninterrupted")
  plan = _plan(demo_workspace, root)
  report = grid.run_grid(plan)
  gin.clear_config()
  return plan, report


def test_every_result_recorded_once_with_provenance(done_grid):
  plan, report = done_grid
  assert report.complete and not report.failed
  assert len(report.ran) == len(plan.phases) == 5
  assert sorted(report.recorded) == sorted(r.run_id for r in plan.runs)
  rows = _results(plan.results_db)
  keys = {(r["run_id"], r["language"], r["metric"]) for r in rows}
  assert len(keys) == len(rows)  # once each
  assert {(r, l) for r, l, _ in keys} == {(run.run_id, l) for run in plan.runs for l in LANGS}
  for r in rows:
    run = plan.run(r["run_id"])
    assert (r["experiment"], r["size"], r["intermediate"], r["target_task"], r["seed"]) == (
        "tinygrid", "tiny", run.intermediate, "xnli", 0)
    assert r["stage"] == "evaluate" and r["split"] == "test"
    assert r["metric"] == "accuracy" and r["task_score"] is True
    assert 0.0 <= r["value"] <= 100.0
    assert all(r[c] for c in PROVENANCE), r
    eval_phase = plan.phase(run.eval_phase_id)
    assert r["checkpoint"] == eval_phase.final_checkpoint and os.path.isdir(r["checkpoint"])
    assert r["step"] == TARGET_STEPS
    assert HEX64.match(r["gin_sha256"]) and HEX64.match(r["data_version"])
    assert r["code_version"].startswith(xfer_t5x.__version__)
    assert r["started_at"] <= r["finished_at"]
    assert r["n_params"] > 100_000
  by_run = {r["run_id"]: r for r in rows}
  none, sst2 = by_run["tinygrid/tiny/none/xnli/seed0"], by_run["tinygrid/tiny/sst2/xnli/seed0"]
  assert none["n_params"] == sst2["n_params"]
  # the sst2 run's chain holds one more phase (and reads the SST-2 files): other hashes
  assert none["gin_sha256"] != sst2["gin_sha256"]
  assert none["data_version"] != sst2["data_version"]
  empty_sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256("")
  with state_lib.StateStore(plan.state_dir, readonly=True) as store:
    rows_by_phase = {row["phase_id"]: row for row in store.all()}
  assert rows_by_phase.keys() == {p.phase_id for p in plan.phases}
  for row in rows_by_phase.values():  # each phase read data files, and recorded their hash
    assert row["status"] == "done" and HEX64.match(row["data_version"])
    assert row["data_version"] != empty_sha and HEX64.match(row["config_sha256"])
  # the evaluation wrote its files into the last stage's model dir
  model_dir = pathlib.Path(plan.phase(plan.run(none["run_id"]).eval_phase_id).model_dir)
  assert (model_dir / "inference_eval" / f"xnli.en-{TARGET_STEPS}.jsonl").exists()
  assert (model_dir / "config.gin").exists()


def test_finished_grid_is_never_redone(done_grid, demo_workspace, tmp_path, capsys):
  plan, _ = done_grid
  before_rows, before_mtimes = _results(plan.results_db), _mtimes(plan.root_dir)
  report = grid.run_grid(_plan(demo_workspace, plan.root_dir))
  assert report.ran == [] and report.recorded == [] and report.changed == []
  assert sorted(report.skipped) == sorted(p.phase_id for p in plan.phases)
  assert _results(plan.results_db) == before_rows
  assert _mtimes(plan.root_dir) == before_mtimes
  # A new results database is filled from the grid's state, without running anything.
  other_db = str(tmp_path / "other.sqlite")
  report = grid.run_grid(grid.load_plan(["experiments/demo.gin"],
                                        _bindings(demo_workspace, plan.root_dir),
                                        results_db=other_db))
  assert report.ran == [] and sorted(report.recorded) == sorted(r.run_id for r in plan.runs)
  assert _results(other_db) == before_rows
  assert _mtimes(plan.root_dir) == before_mtimes
  capsys.readouterr()
  assert cli.main(["grid", "status", *_cli_args(demo_workspace, plan.root_dir)]) == 0
  out = capsys.readouterr().out
  assert "2 runs in" in out and "2 done" in out and "0 pending" in out


def test_results_command_prints_and_exports(done_grid, tmp_path, capsys):
  plan, _ = done_grid
  csv_path = tmp_path / "out.csv"
  assert cli.main(["results", "--db", plan.results_db, "--csv", str(csv_path)]) == 0
  out = capsys.readouterr().out
  assert "tinygrid" in out and "avg" in out
  frame = results_lib.load_results(str(csv_path))
  assert list(frame.columns) == list(results_lib.COLUMNS)
  assert len(frame) == len(_results(plan.results_db))


def test_failing_phase_keeps_earlier_results(done_grid, demo_workspace, tmp_path, capsys):
  plan, _ = done_grid
  # A copy of the finished grid, so the other tests keep theirs.
  import shutil  # pylint: disable=g-import-not-at-top
  root = tmp_path / "grid"
  shutil.copytree(plan.root_dir, root)
  before = _by_key(_results(root / "results.sqlite"))
  broken = ("experiment.targets = {'xnli': ['xnli_train'], 'broken': ['no_such_task']}",
            "experiment.languages = {'xnli': ['en', 'de'], 'broken': ['en']}")
  bplan = _plan(demo_workspace, root, broken)
  report = grid.run_grid(bplan)
  assert not report.complete
  assert sorted(report.failed) == ["tinygrid/tiny/seed0/none/broken/1-no_such_task",
                                   "tinygrid/tiny/seed0/sst2/broken/1-no_such_task"]
  assert sorted(report.blocked) == ["tinygrid/tiny/seed0/none/broken/evaluate",
                                    "tinygrid/tiny/seed0/sst2/broken/evaluate"]
  assert report.ran == [] and report.changed == []
  after = _by_key(_results(root / "results.sqlite"))
  assert after == {k: v for k, v in before.items()}  # untouched, nothing added
  statuses = {r["run_id"]: r["status"] for r in grid.status_rows(bplan)}
  assert statuses["tinygrid/tiny/none/broken/seed0"] == "failed"
  assert statuses["tinygrid/tiny/none/xnli/seed0"] == "done"
  errors = grid.phase_errors(str(root))
  assert len(errors) == 2 and all("no_such_task" in e["error"] for e in errors)
  # Trying again retries the failed phases (and fails again), still without touching the rest.
  report = grid.run_grid(bplan)
  assert len(report.failed) == 2 and report.ran == []
  with state_lib.StateStore(str(root), readonly=True) as store:
    assert store.get(report.failed[0])["attempts"] == 2
  assert _by_key(_results(root / "results.sqlite")) == before


def _wait_for_checkpoint(root, proc, timeout=600):
  t = time.time()
  while True:
    found = [p for p in pathlib.Path(root).rglob("checkpoint_*") if p.name.split("_")[-1].isdigit()]
    if found:
      return found
    assert proc.poll() is None, "the grid ended before any checkpoint appeared"
    assert time.time() - t < timeout, "no checkpoint appeared"
    time.sleep(0.05)


def _predictions(root):
  """Every inference_eval line of a grid, keyed by the path below the root."""
  out = {}
  for p in sorted(pathlib.Path(root).rglob("inference_eval/*.jsonl")):
    if p.name == "metrics.jsonl":
      continue
    out[str(p.relative_to(root))] = [json.loads(line) for line in p.read_text().splitlines()]
  return out


def _params(checkpoint):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  tree = ocp.PyTreeCheckpointer().restore(os.path.join(checkpoint, "state"))
  params = tree["params"] if isinstance(tree, dict) else tree[1]
  return {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(params).items()}


def test_grid_killed_mid_run_and_restarted_matches_uninterrupted(done_grid, demo_workspace,
                                                                 tmp_path):
  ref_plan, _ = done_grid
  root = tmp_path / "grid"
  cmd = [sys.executable, "-m", "xfer_t5x", "grid", "run", *_cli_args(demo_workspace, root)]
  proc = subprocess.Popen(cmd, env=_env(), cwd=tmp_path, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  try:
    first = _wait_for_checkpoint(root, proc)
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  plan = _plan(demo_workspace, root)
  statuses = grid.phase_statuses(plan)
  assert "interrupted" in statuses.values(), (first, statuses)  # killed in the middle of a phase
  assert sum(s == "done" for s in statuses.values()) < len(plan.phases)
  killed_in = [p for p, s in statuses.items() if s == "interrupted"]
  assert len(killed_in) == 1
  gin.clear_config()

  done = subprocess.run(cmd, env=_env(), cwd=tmp_path, capture_output=True, text=True,
                        timeout=900)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  assert "was running" in done.stdout  # the killed phase ran again ...
  assert "resumed from" in done.stdout + done.stderr  # ... from its checkpoint
  assert all(s == "done" for s in grid.phase_statuses(plan).values())

  # The same configs (the grid's folder is not part of them) and the same data files.
  _assert_same_results(plan, ref_plan, ("value", "n_params", "step", "gin_sha256",
                                        "data_version"))
  assert _predictions(root) == _predictions(ref_plan.root_dir)
  for run in plan.runs:  # the final parameters, bitwise
    ckpt = plan.phase(run.eval_phase_id).final_checkpoint
    ref = ref_plan.phase(run.eval_phase_id).final_checkpoint
    a, b = _params(ckpt), _params(ref)
    assert a.keys() == b.keys()
    for name in a:
      assert np.array_equal(a[name], b[name]), (run.run_id, name)


def test_sigterm_stops_the_grid_cleanly(demo_workspace, tmp_path):
  root = tmp_path / "grid"
  cmd = [sys.executable, "-m", "xfer_t5x", "grid", "run", *_cli_args(demo_workspace, root)]
  proc = subprocess.Popen(cmd, env=_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  try:
    _wait_for_checkpoint(root, proc)
  finally:
    proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out[-3000:]
  # The signal came during the first (16-step) training phase: it saved and stopped there.
  assert "preempted during tinygrid/tiny/seed0/sst2/intermediate" in out, out[-3000:]
  statuses = grid.phase_statuses(_plan(demo_workspace, root))
  assert statuses["tinygrid/tiny/seed0/sst2/intermediate"] == "interrupted"
  assert [s for s in statuses.values() if s != "pending"] == ["interrupted"]


# --- the evaluate phase's completion, killed at each boundary ---------------------------------
# Boundaries, in order: the rows built but nothing written; the rows in the results DB but the
# phase not done; the phase done (its rows in the state DB) and nothing after. A fourth case is a
# state DB written before rows travelled with the phase's completion: done, no rows anywhere.
# Each case starts from a copy of the uninterrupted grid's folder with its evaluations undone,
# so only the evaluations run again; the kill is os._exit (no cleanup, as SIGKILL).
KILLING = textwrap.dedent("""
    import os, sys
    from xfer_t5x import results as results_lib
    from xfer_t5x.experiments import state as state_lib

    point = sys.argv[1]
    record_run, finish = results_lib.ResultsDB.record_run, state_lib.StateStore.finish

    def killing_record_run(self, rows):
      if point == "rows built":
        os._exit(137)
      out = record_run(self, rows)
      if point == "rows recorded":
        os._exit(137)
      return out

    def killing_finish(self, phase_id, *args, **kwargs):
      finish(self, phase_id, *args, **kwargs)
      if point == "phase done" and self.get(phase_id)["kind"] == "evaluate":
        os._exit(137)

    results_lib.ResultsDB.record_run = killing_record_run
    state_lib.StateStore.finish = killing_finish
    from xfer_t5x import cli
    sys.exit(cli.main(sys.argv[2:]))
""")


def _with_evaluations_undone(ref_plan, ws, root):
  shutil.copytree(ref_plan.root_dir, root)
  plan = _plan_at(ws, root)
  (root / "results.sqlite").unlink()
  with sqlite3.connect(plan.state_dir + "/state.sqlite") as conn:
    conn.execute("DELETE FROM phases WHERE kind = 'evaluate'")
  return plan


def _plan_at(ws, root):
  plan = _plan(ws, root)
  gin.clear_config()
  return plan


@pytest.mark.parametrize("point", ["rows built", "rows recorded", "phase done"])
def test_kill_at_each_boundary_then_restart(point, done_grid, demo_workspace, tmp_path):
  ref_plan, _ = done_grid
  root = tmp_path / "grid"
  plan = _with_evaluations_undone(ref_plan, demo_workspace, root)
  args = ["grid", "run", *_cli_args(demo_workspace, root)]
  killed = subprocess.run([sys.executable, "-c", KILLING, point, *args], env=_env(),
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
  assert killed.returncode == 137, killed.stdout[-3000:] + killed.stderr[-3000:]
  statuses = grid.phase_statuses(plan)
  gin.clear_config()
  evals = [p.phase_id for p in plan.phases if p.kind == "evaluate"]
  assert (statuses[evals[0]] == "done") == (point == "phase done"), statuses

  again = subprocess.run([sys.executable, "-m", "xfer_t5x", *args], env=_env(), cwd=tmp_path,
                         capture_output=True, text=True, timeout=900)
  assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
  assert all(s == "done" for s in grid.phase_statuses(plan).values())
  gin.clear_config()
  _assert_same_results(plan, ref_plan)


def test_done_evaluation_without_rows_runs_again(done_grid, demo_workspace, tmp_path):
  ref_plan, _ = done_grid
  root = tmp_path / "grid"
  shutil.copytree(ref_plan.root_dir, root)
  plan = _plan_at(demo_workspace, root)
  (root / "results.sqlite").unlink()
  with sqlite3.connect(plan.state_dir + "/state.sqlite") as conn:  # the old defect's state
    conn.execute("UPDATE phases SET result = NULL WHERE kind = 'evaluate'")
  out = subprocess.run([sys.executable, "-m", "xfer_t5x", "grid", "run",
                        *_cli_args(demo_workspace, root)], env=_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  assert "done without their results" in out.stdout, out.stdout[-3000:]
  _assert_same_results(plan, ref_plan)


# --- a lost or damaged state or results database ----------------------------------------------

def _state_rows(plan):
  with state_lib.StateStore(plan.state_dir, readonly=True) as store:
    return {r["phase_id"]: r for r in store.all()}


@pytest.mark.parametrize("damage", ["empty", "garbage"])
def test_damaged_state_is_refused_then_rebuilt_from_the_folders(damage, done_grid, demo_workspace,
                                                                tmp_path, capsys):
  ref_plan, _ = done_grid
  root = tmp_path / "grid"
  shutil.copytree(ref_plan.root_dir, root)
  plan = _plan_at(demo_workspace, root)
  state_file = root / "state.sqlite"
  for suffix in ("-wal", "-shm"):
    pathlib.Path(f"{state_file}{suffix}").unlink(missing_ok=True)
  state_file.write_bytes(b"" if damage == "empty" else b"not sqlite at all\n" * 300)
  before = state_file.read_bytes()
  # One evaluation's rows are lost too: the rebuilt state leaves it to run again.
  lost = ref_plan.runs[0]
  with results_lib.ResultsDB(plan.results_db) as db:
    db.delete_run(lost.run_id)
  args = _cli_args(demo_workspace, root)

  assert cli.main(["grid", "run", *args]) == 2
  err = capsys.readouterr().err
  assert str(state_file) in err and "grid rebuild-state" in err and "Traceback" not in err, err
  assert state_file.read_bytes() == before  # refused: nothing written
  gin.clear_config()

  assert cli.main(["grid", "rebuild-state", *args]) == 0
  out = capsys.readouterr().out
  assert "3 training phases done" in out and "1 evaluations done" in out, out
  assert "1 phases left" in out, out
  moved = list(root.glob("state.sqlite.bad-*"))
  assert len(moved) == 1 and moved[0].read_bytes() == before  # moved aside, never deleted
  rebuilt, ref = _state_rows(plan), _state_rows(ref_plan)
  gin.clear_config()
  assert rebuilt.keys() == ref.keys() - {lost.eval_phase_id}
  for pid, row in rebuilt.items():
    assert row["status"] == "done"
    for field in ("kind", "step", "config_sha256"):
      assert row[field] == ref[pid][field], (pid, field)
    assert (os.path.relpath(row["checkpoint"], root) ==
            os.path.relpath(ref[pid]["checkpoint"], ref_plan.root_dir)), pid
    if row["kind"] != "evaluate":
      assert row["data_version"] == ref[pid]["data_version"], pid  # from data_report.json
    else:
      assert sorted(row["result"], key=str) == sorted(ref[pid]["result"], key=str)

  assert cli.main(["grid", "run", *args]) == 0
  out = capsys.readouterr().out
  assert "ran 1 phases" in out and "4 already done" in out, out
  gin.clear_config()
  _assert_same_results(plan, ref_plan)


def test_damaged_results_database_is_refused_and_refilled_from_the_state(done_grid,
                                                                         demo_workspace,
                                                                         tmp_path, capsys):
  ref_plan, _ = done_grid
  root = tmp_path / "grid"
  shutil.copytree(ref_plan.root_dir, root)
  plan = _plan_at(demo_workspace, root)
  db_file = pathlib.Path(plan.results_db)
  for suffix in ("-wal", "-shm"):
    pathlib.Path(f"{db_file}{suffix}").unlink(missing_ok=True)
  db_file.write_bytes(b"garbage, not a database\n" * 300)
  args = _cli_args(demo_workspace, root)
  assert cli.main(["grid", "run", *args]) == 2
  err = capsys.readouterr().err
  assert str(db_file) in err and "not a readable SQLite results database" in err, err
  assert "Traceback" not in err
  gin.clear_config()
  db_file.rename(db_file.with_suffix(".sqlite.bad"))  # as the message says
  assert cli.main(["grid", "run", *args]) == 0
  out = capsys.readouterr().out
  assert "re-recorded 2 runs from the state" in out, out
  gin.clear_config()
  _assert_same_results(plan, ref_plan)
