"""The grid runner: run what is missing, resume what was interrupted, never redo what is done.

  plan = grid.load_plan(["experiments/demo.gin"], ["experiment.root_dir = '/tmp/g'"])
  report = grid.run_grid(plan)          # GridReport: what ran, what was skipped, what failed
  rows = grid.status_rows(plan)         # one row per run: done / running / failed / ...

Phases run in the plan's order, each after the phases it depends on (`experiment.expand`). A
phase marked done in the state (`<state dir>/state.sqlite`) is never run again; one left running by a
dead process, or failed, is run again (training continues from its latest checkpoint). When an
evaluate phase finishes, its run's rows go to the results table (`xfer_t5x.results.ResultsDB`,
one transaction per run, replacing that run's earlier rows: every result is recorded exactly
once) with their provenance, and are kept in the state too, so a results database that is lost
or newly pointed to is filled again without re-evaluating.

A failing phase is recorded as failed (with its traceback) and the grid goes on with everything
that does not depend on it; nothing another run wrote is touched (each phase writes only its own
model dir). A preemption (SIGTERM during training) saves a checkpoint and stops the grid cleanly.
"""
import dataclasses
import logging
import os
import signal
import threading
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence

import gin

from xfer_t5x import results as results_lib
from xfer_t5x.experiments import experiment as exp_lib
from xfer_t5x.experiments import phases as phases_lib
from xfer_t5x.experiments import provenance
from xfer_t5x.experiments import state as state_lib
from xfer_t5x.experiments import team as team_lib
from xfer_t5x.runtime import checkpoints as ckpt_lib
from xfer_t5x.runtime import distributed
from xfer_t5x.runtime import gin_utils

STAGE = "evaluate"  # the results' `stage` column: the phase that produced the rows


def load_plan(gin_files: Sequence[str], bindings: Sequence[str] = (),
              search_paths: Sequence[str] = (), root_dir: Optional[str] = None,
              results_db: Optional[str] = None,
              state_dir: Optional[str] = None) -> exp_lib.Plan:
  """Parses an experiment's gin files and bindings and expands it into runs and phases."""
  if not gin_files:
    raise exp_lib.ExperimentError("no experiment: pass --gin_file experiments/<name>.gin")
  files = [gin_utils.resolve_gin_file(f, search_paths) for f in gin_files]
  gin.clear_config()
  try:
    # Other configurables bound there (vocabulary, data dir, ...) matter to the phases, which
    # parse the same files strictly; here only `experiment` is read.
    gin_utils.setup_gin(files, bindings, search_paths, finalize=False, skip_unknown=True)
    exp = exp_lib.experiment()
  finally:
    gin.clear_config()
  plan = exp_lib.expand(exp, root_dir=root_dir, experiment_files=files, user_bindings=bindings,
                        results_db=results_db, state_dir=state_dir)
  _check_configs(plan, search_paths)
  return plan


def _check_configs(plan: exp_lib.Plan, search_paths: Sequence[str]) -> None:
  """Parses the first phase of each kind strictly, so that a bad binding fails now, once."""
  seen = set()
  for phase in plan.phases:
    key = (phase.kind, phase.size)
    if key in seen:
      continue
    seen.add(key)
    try:
      phases_lib.config_hash(phase, search_paths)
    except Exception as e:  # pylint: disable=broad-except  (gin raises many kinds)
      raise exp_lib.ExperimentError(
          f"the gin config of phase {phase.phase_id} ({phase.kind}) does not parse: "
          f"{type(e).__name__}: {e}") from e


@dataclasses.dataclass
class GridReport:
  ran: List[str] = dataclasses.field(default_factory=list)        # phases run to completion
  skipped: List[str] = dataclasses.field(default_factory=list)    # already done
  failed: List[str] = dataclasses.field(default_factory=list)
  blocked: List[str] = dataclasses.field(default_factory=list)    # a dependency is not done
  recorded: List[str] = dataclasses.field(default_factory=list)   # runs written to the table
  changed: List[str] = dataclasses.field(default_factory=list)    # done, config changed since
  rebuilt: List[str] = dataclasses.field(default_factory=list)    # done without rows: run again
  preempted: Optional[str] = None
  seconds: float = 0.0
  follower: bool = False  # a process other than 0: ran what process 0 said, recorded nothing
  followed: int = 0       # the phases it ran so

  @property
  def complete(self) -> bool:
    return not (self.failed or self.blocked or self.preempted)


def _log(msg, *args):
  print(msg % args if args else msg, flush=True)


def _rows_for_run(plan: exp_lib.Plan, run: exp_lib.Run, store: state_lib.StateStore,
                  outcome: phases_lib.Outcome) -> List[dict]:
  """The results rows of a run whose evaluate phase just produced `outcome`."""
  chain = [store.get(pid) for pid in run.phase_ids[:-1]]
  gin_pairs = [(pid, row["config_sha256"]) for pid, row in zip(run.phase_ids, chain)]
  gin_pairs.append((run.eval_phase_id, outcome.config_sha256))
  data_pairs = [(pid, row["data_version"]) for pid, row in zip(run.phase_ids, chain)]
  data_pairs.append((run.eval_phase_id, outcome.data_version))
  starts = [row["started_at"] for row in chain if row.get("started_at")]
  eval_row = store.get(run.eval_phase_id)
  started = min(starts + [eval_row["started_at"]])
  common = dict(
      run_id=run.run_id, experiment=run.experiment, size=run.size, n_params=outcome.n_params,
      intermediate=run.intermediate, target_task=run.target, stage=run.result_stage,
      seed=run.seed,
      checkpoint=outcome.checkpoint, step=outcome.step,
      gin_sha256=provenance.chain_hash(gin_pairs),
      data_version=provenance.chain_hash(data_pairs),
      code_version=provenance.code_version(), started_at=started, finished_at=state_lib.now())
  from xfer_t5x.tasks import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
  rows = []
  for task in plan.phase(run.eval_phase_id).eval_tasks:
    info = outcome.task_info[task]
    for metric, value in sorted(outcome.metrics[task].items()):
      rows.append(dict(common, language=info["language"], split=info["split"], metric=metric,
                       value=value,
                       # a score beside the target's own enters no average
                       task_score=run.result_stage == STAGE
                       and metrics_lib.is_task_score_metric(run.target, metric)))
  return rows


def _runs_by_eval_phase(plan) -> Dict[str, List[exp_lib.Run]]:
  out: Dict[str, List[exp_lib.Run]] = {}
  for r in plan.runs:
    out.setdefault(r.eval_phase_id, []).append(r)
  return out


def _missing_input(phase: exp_lib.Phase, store: state_lib.StateStore) -> Optional[str]:
  """A message if the checkpoint a phase starts from (made by a done phase) is gone."""
  if phase.kind == "evaluate":
    need = phase.final_checkpoint
  elif phase.depends_on and not _has_checkpoint(phase.model_dir):
    need = phase.initial_checkpoint
  else:
    return None
  if need and not _exists(need):
    dep = phase.depends_on[0]
    return (f"phase {phase.phase_id} starts from {need}, the final checkpoint of {dep}, which is "
            f"marked done but the checkpoint is gone; put it back, or delete the row of {dep} "
            f"from {store.path} (table phases) to train it again")
  return None


def _exists(path: str) -> bool:
  return ckpt_lib.as_path(path).exists()


def _has_checkpoint(model_dir: str) -> bool:
  """Whether a model dir (local or remote) holds a checkpoint_<step> folder (training can
  resume)."""
  d = ckpt_lib.as_path(model_dir)
  return d.exists() and any(
      p.name.startswith("checkpoint_") and p.name[len("checkpoint_"):].isdigit()
      for p in d.iterdir())


class _StopRequest:
  """SIGTERM outside training (the trainer handles it inside): finish the phase, then stop.

  The trainer installs its own handler when a training phase starts, so this one is installed
  again before each phase; the handler found at the start is put back at the end.
  """

  def __init__(self):
    self.requested = False
    self._previous = None
    self._active = threading.current_thread() is threading.main_thread()

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    self.requested = True

  def arm(self):
    if self._active:
      prev = signal.signal(signal.SIGTERM, self._handle)
      if self._previous is None:
        self._previous = prev

  def restore(self):
    if self._active and self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def run_grid(plan: exp_lib.Plan, search_paths: Sequence[str] = (), retry_failed: bool = True,
             log: Callable = _log) -> GridReport:
  """Runs every phase of `plan` that is not done (see the module docstring)."""
  t0 = time.time()
  report = GridReport()
  distributed.initialize()  # the hosts of a slice run the grid together (experiments/team.py)
  if not team_lib.is_leader():
    report.followed = team_lib.follow(plan, search_paths, log)
    report.follower = True
    report.seconds = time.time() - t0
    return report
  stop = _StopRequest()
  leader = team_lib.Leader()
  try:
    _run_grid(plan, search_paths, retry_failed, log, report, stop, leader)
  finally:
    leader.stop("the grid run ended" if not report.preempted else "preempted")
    stop.restore()
  report.seconds = time.time() - t0
  return report


def _sort_done(plan, store, db, search_paths, report) -> List[exp_lib.Phase]:
  """Notes the done phases (re-recording evaluations missing from the results table); returns
  the phases still to run."""
  recorded = set(db.run_ids())
  by_eval = _runs_by_eval_phase(plan)
  todo = []
  for phase in plan.phases:
    row = store.get(phase.phase_id)
    if not (row and row["status"] == "done"):
      todo.append(phase)
      continue
    runs = by_eval.get(phase.phase_id, [])
    by_run: Dict[str, List[dict]] = {}
    for r in row.get("result") or []:
      by_run.setdefault(r["run_id"], []).append(r)
    if any(run.run_id not in by_run for run in runs):
      # Done without its rows (a state written before rows travelled with completion): the
      # evaluation runs again from its checkpoint.
      todo.append(phase)
      report.rebuilt.append(phase.phase_id)
      continue
    report.skipped.append(phase.phase_id)
    if row["config_sha256"] != phases_lib.config_hash(phase, search_paths):
      report.changed.append(phase.phase_id)
    for run in runs:
      if run.run_id not in recorded:
        db.record_run(by_run[run.run_id])
        report.recorded.append(run.run_id)
  return todo


def _execute(plan, phase, store, db, search_paths, report, log, leader) -> bool:
  """Runs one phase and records what it made; returns False when the grid must stop."""
  gone = _missing_input(phase, store)
  sha = phases_lib.config_hash(phase, search_paths)
  store.start(phase.phase_id, phase.kind, sha)
  if gone:
    raise phases_lib.PhaseError(gone)
  outcome = leader.run(phase, search_paths)  # on every process of the grid at once
  if outcome.preempted:
    store.interrupt(phase.phase_id, f"preempted at step {outcome.step}")
    report.preempted = phase.phase_id
    log("preempted during %s at step %d: checkpoint saved; run the grid again to resume",
        phase.phase_id, outcome.step)
    return False
  if phase.kind == "evaluate":
    # The rows are durable before the phase is done, and the phase's completion carries them:
    # a kill before `finish` runs the evaluation again (its rows replace these); a kill after it
    # leaves rows in the state DB that `_sort_done` records if the results DB lacks them.
    runs = _runs_by_eval_phase(plan)[phase.phase_id]
    rows = [_rows_for_run(plan, run, store, outcome) for run in runs]
    for run_rows in rows:
      db.record_run(run_rows)       # one transaction: the run's rows replace any earlier ones
    store.finish(phase.phase_id, outcome.checkpoint, outcome.step, outcome.data_version,
                 n_params=outcome.n_params, result=[r for run_rows in rows for r in run_rows])
    report.recorded.extend(run.run_id for run in runs)
  else:
    store.finish(phase.phase_id, outcome.checkpoint, outcome.step, outcome.data_version)
  report.ran.append(phase.phase_id)
  return True


def _run_grid(plan, search_paths, retry_failed, log, report, stop, leader):
  os.makedirs(plan.state_dir, exist_ok=True)
  with state_lib.GridLock(plan.state_dir), state_lib.StateStore(plan.state_dir) as store, \
      results_lib.ResultsDB(plan.results_db) as db:
    todo = _sort_done(plan, store, db, search_paths, report)
    if report.rebuilt:
      log("note: %d evaluation(s) were marked done without their results (a state written by an "
          "older version); they run again from their checkpoints (first: %s)",
          len(report.rebuilt), report.rebuilt[0])
    if report.changed:
      log("note: %d done phase(s) have a different config now than when they ran (first: %s); "
          "they are kept as they are. Use a new experiment name to run the changed config.",
          len(report.changed), report.changed[0])
    n = len(todo)
    log("grid %s: %d runs, %d phases; %d done, %d to run (root %s, results %s)",
        plan.experiment.name, len(plan.runs), len(plan.phases), len(report.skipped), n,
        plan.root_dir, plan.results_db)
    for i, phase in enumerate(todo, 1):
      stop.arm()
      if stop.requested:
        report.preempted = phase.phase_id
        log("stop requested (SIGTERM): %s and the phases after it were not started; run the "
            "grid again to go on", phase.phase_id)
        break
      not_done = [d for d in phase.depends_on if store.status(d, running_now=True) != "done"]
      if not_done:
        report.blocked.append(phase.phase_id)
        log("[%d/%d] %s: waits for %s (not done); skipped", i, n, phase.phase_id, not_done[0])
        continue
      row = store.get(phase.phase_id)
      if row and row["status"] == "failed" and not retry_failed:
        report.failed.append(phase.phase_id)
        continue
      what = (f"evaluate {len(phase.eval_tasks)} languages at step {phase.steps}"
              if phase.kind == "evaluate" else f"train {phase.task} to step {phase.steps}")
      again = f" (attempt {row['attempts'] + 1}, was {row['status']})" if row else ""
      log("[%d/%d] %s %s: %s%s", i, n, phase.kind, phase.phase_id, what, again)
      try:
        if not _execute(plan, phase, store, db, search_paths, report, log, leader):
          break
      except KeyboardInterrupt:
        store.interrupt(phase.phase_id, "interrupted (Ctrl-C)")
        raise
      except Exception as e:  # pylint: disable=broad-except
        err = traceback.format_exc()
        if store.get(phase.phase_id) is None:
          store.start(phase.phase_id, phase.kind, "")
        store.fail(phase.phase_id, err)
        report.failed.append(phase.phase_id)
        logging.error("phase %s failed:\n%s", phase.phase_id, err)
        log("FAILED %s: %s: %s (traceback in `xfer-t5x grid status --errors`)",
            phase.phase_id, type(e).__name__, str(e).splitlines()[0] if str(e) else "")


# ------------------------------------------------------------------------------------------------
# Status


def phase_statuses(plan: exp_lib.Plan) -> Dict[str, str]:
  """{phase_id: done | running | failed | interrupted | pending}."""
  held = state_lib.lock_is_held(plan.state_dir)
  with state_lib.StateStore(plan.state_dir, readonly=True) as store:
    rows = {r["phase_id"]: r for r in store.all()}
  return {p.phase_id: state_lib.effective_status(rows.get(p.phase_id), held) for p in plan.phases}


def run_status(run: exp_lib.Run, statuses: Dict[str, str]) -> str:
  """A run's status from its phases': done only when its evaluation is."""
  chain = [statuses[p] for p in run.phase_ids]
  if chain[-1] == "done":
    return "done"
  for s in ("running", "failed", "interrupted"):
    if s in chain:
      return s
  return "pending"


def status_rows(plan: exp_lib.Plan) -> List[dict]:
  """One dict per run: run_id, status, and the phase it is at (the first one not done)."""
  statuses = phase_statuses(plan)
  out = []
  for run in plan.runs:
    at = next((p for p in run.phase_ids if statuses[p] != "done"), "")
    out.append(dict(run_id=run.run_id, status=run_status(run, statuses), phase=at,
                    phase_status=statuses.get(at, "")))
  return out


def phase_errors(state_dir: str) -> List[dict]:
  """Rows of the phases that failed or were interrupted, with their error text."""
  with state_lib.StateStore(state_dir, readonly=True) as store:
    return [r for r in store.all() if r["status"] in ("failed", "interrupted") or
            (r["status"] == "running" and not state_lib.lock_is_held(state_dir))]


# ------------------------------------------------------------------------------------------------
# Rebuilding a lost or damaged state


@dataclasses.dataclass
class RebuildReport:
  moved: Optional[str]                                     # where the old state went, if any
  trained: List[str] = dataclasses.field(default_factory=list)    # done: final checkpoint there
  evaluated: List[str] = dataclasses.field(default_factory=list)  # done: rows in the results DB
  pending: List[str] = dataclasses.field(default_factory=list)    # to run (training resumes)


def _data_version_of(model_dir: str) -> str:
  """The data version a training phase wrote into its model dir's data report ('' if none)."""
  import json  # pylint: disable=g-import-not-at-top
  from xfer_t5x.tasks import data_report  # pylint: disable=g-import-not-at-top
  path = ckpt_lib.as_path(model_dir) / data_report.REPORT_FILE
  try:
    return str(json.loads(path.read_text()).get("data_version") or "")
  except (OSError, ValueError):
    return ""


def rebuild_state(plan: exp_lib.Plan, search_paths: Sequence[str] = ()) -> RebuildReport:
  """A new state DB from what the grid's folders hold, the old one (if any) moved aside.

  A training phase is done when its final checkpoint (`checkpoint_<steps>`) is in its model
  dir; an evaluation is done when the results database holds rows for every run it evaluates
  (those rows become its result, as `grid run` would have stored them). Everything else is left
  pending: the next `grid run` resumes a training from its latest checkpoint and evaluates what
  has no rows. Holds the grid's lock, so no `grid run` works meanwhile.
  """
  path = os.path.join(plan.state_dir, "state.sqlite")
  with state_lib.GridLock(plan.state_dir):
    moved = None
    if os.path.exists(path):
      moved = f"{path}.bad-{time.strftime('%Y%m%d-%H%M%S')}"
      for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
          os.replace(path + suffix, moved + suffix)
    report = RebuildReport(moved=moved)
    by_eval = _runs_by_eval_phase(plan)
    with state_lib.StateStore(plan.state_dir) as store, \
        results_lib.ResultsDB(plan.results_db) as db:
      for phase in plan.phases:
        if phase.kind == "evaluate":
          rows = [db.rows(run_id=run.run_id) for run in by_eval.get(phase.phase_id, [])]
          if not rows or not all(rows):
            report.pending.append(phase.phase_id)
            continue
          flat = [r for run_rows in rows for r in run_rows]
          store.start(phase.phase_id, phase.kind, phases_lib.config_hash(phase, search_paths))
          store.finish(phase.phase_id, phase.final_checkpoint, phase.steps, "",
                       n_params=flat[0]["n_params"], result=flat)
          report.evaluated.append(phase.phase_id)
        elif _exists(phase.final_checkpoint):
          store.start(phase.phase_id, phase.kind, phases_lib.config_hash(phase, search_paths))
          store.finish(phase.phase_id, phase.final_checkpoint, phase.steps,
                       _data_version_of(phase.model_dir))
          report.trained.append(phase.phase_id)
        else:
          report.pending.append(phase.phase_id)
  return report
