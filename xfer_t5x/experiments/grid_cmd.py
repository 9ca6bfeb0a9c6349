"""`xfer-t5x grid`: run an experiment's grid, or show where it stands.

  xfer-t5x grid run --gin_file experiments/demo.gin --gin.experiment.root_dir=/tmp/grid \\
    --gin.default_vocabulary.path=/tmp/demo/spm.model --gin.register_tasks.data_dir=/tmp/demo/data
  xfer-t5x grid status --gin_file experiments/demo.gin --gin.experiment.root_dir=/tmp/grid
  xfer-t5x grid status --state_dir /tmp/grid --errors
  xfer-t5x grid rebuild-state --gin_file experiments/demo.gin --gin.experiment.root_dir=/tmp/grid

`run` runs every phase that is not done (resuming interrupted ones from their checkpoints) and
records each finished run in the results table; running it again after everything is done does
nothing. `status` lists the runs as done / running / failed / interrupted / pending; without
--gin_file it shows only the phases the grid's state knows (pending ones need the experiment).
The state (state.sqlite, grid.lock) and the results database live in the grid's root, or in
--state_dir (a local folder) when the root is remote (gs://...). An empty or unreadable
state.sqlite is refused rather than taken as a new grid (which would redo every phase);
`rebuild-state` moves it aside and writes a new one from what the folders hold: trainings whose
final checkpoint is there and evaluations whose rows are in the results database are done, and
the rest is left for `run` (trainings resume from their latest checkpoints).
On several processes (every host of a slice running the same `grid run`), process 0 keeps the
state and the results and the others run each phase with it (experiments/team.py).
Exit status of `run`: 0 when every run is done (or the grid was preempted and saved), 1 when
some phase failed or waits for a failed one.
"""
import sys

from xfer_t5x.runtime import gin_utils


def add_arguments(parser):
  parser.add_argument("action", choices=("run", "status", "rebuild-state"),
                      help="run the grid, show its status, or rebuild a lost or damaged state "
                      "DB from the model dirs and the results database")
  parser.add_argument("--root", default=None,
                      help="the grid's folder (default: experiment.root_dir from gin)")
  parser.add_argument("--state_dir", default=None,
                      help="local folder of the grid's state (default: experiment.state_dir, "
                      "else the root)")
  parser.add_argument("--db", default=None,
                      help="the results database (default: experiment.results_db, else "
                      "<state dir>/results.sqlite)")
  parser.add_argument("--no_retry_failed", action="store_true",
                      help="run: leave failed phases alone instead of trying them again")
  parser.add_argument("--errors", action="store_true",
                      help="status: print the last error of every failed or interrupted phase")
  gin_utils.add_gin_arguments(parser)


def _print_table(rows, columns):
  widths = {c: max([len(c)] + [len(str(r[c])) for r in rows]) for c in columns}
  print("  ".join(c.ljust(widths[c]) for c in columns))
  for r in rows:
    print("  ".join(str(r[c]).ljust(widths[c]) for c in columns))


def _status(args) -> int:
  from xfer_t5x.experiments import grid, state  # pylint: disable=g-import-not-at-top
  if args.gin_file:
    plan = grid.load_plan(args.gin_file, args.gin_bindings, args.gin_search_paths,
                          root_dir=args.root, results_db=args.db, state_dir=args.state_dir)
    root = plan.state_dir
    rows = grid.status_rows(plan)
    _print_table(rows, ("run_id", "status", "phase", "phase_status"))
    counts = {s: sum(r["status"] == s for r in rows) for s in state.STATUSES}
    print(f"\n{len(rows)} runs in {root}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    print(f"results: {plan.results_db}")
  elif args.state_dir or args.root:
    root = args.state_dir or args.root
    held = state.lock_is_held(root)
    with state.StateStore(root, readonly=True) as store:
      rows = [dict(phase_id=r["phase_id"], kind=r["kind"],
                   status=state.effective_status(r, held), step=r["step"] if r["step"] is not None else "",
                   attempts=r["attempts"]) for r in store.all()]
    if not rows:
      print(f"{root}: no phase has started here (no {root}/state.sqlite)")
      return 0
    _print_table(rows, ("phase_id", "kind", "status", "step", "attempts"))
    counts = {s: sum(r["status"] == s for r in rows) for s in state.STATUSES[:-1]}
    print(f"\n{len(rows)} phases started in {root}: " +
          ", ".join(f"{n} {s}" for s, n in counts.items()) +
          " (pass the experiment's --gin_file to see the pending ones)")
  else:
    print("xfer-t5x grid status: pass the experiment (--gin_file ...) or the grid's --state_dir "
          "(or --root, when the state is there)", file=sys.stderr)
    return 2
  if args.errors:
    for r in grid.phase_errors(root):
      print(f"\n--- {r['phase_id']} ({r['status']}, attempt {r['attempts']}):\n"
            f"{r['error'] or 'the process running it died (killed or crashed); run the grid again to resume'}")
  return 0


def _experiment_plan(args):
  """The experiment's plan from --gin_file and the flags, or None (after saying so) without one."""
  from xfer_t5x.experiments import grid  # pylint: disable=g-import-not-at-top
  if not args.gin_file:
    print(f"xfer-t5x grid {args.action}: pass the experiment, e.g. --gin_file "
          "experiments/demo.gin", file=sys.stderr)
    return None
  return grid.load_plan(args.gin_file, args.gin_bindings, args.gin_search_paths,
                        root_dir=args.root, results_db=args.db, state_dir=args.state_dir)


def _run(args) -> int:
  from xfer_t5x.experiments import grid  # pylint: disable=g-import-not-at-top
  plan = _experiment_plan(args)
  if plan is None:
    return 2
  report = grid.run_grid(plan, args.gin_search_paths, retry_failed=not args.no_retry_failed)
  if report.follower:  # process 0 printed the summary and holds the results
    return 0
  print(summary_line(plan, report))
  if report.preempted:
    return 0
  return 0 if report.complete else 1


def _rebuild(args) -> int:
  from xfer_t5x.experiments import grid  # pylint: disable=g-import-not-at-top
  plan = _experiment_plan(args)
  if plan is None:
    return 2
  report = grid.rebuild_state(plan, args.gin_search_paths)
  if report.moved:
    print(f"moved the old state to {report.moved}")
  print(f"rebuilt {plan.state_dir}/state.sqlite: {len(report.trained)} training phases done "
        f"(final checkpoint found), {len(report.evaluated)} evaluations done (rows in "
        f"{plan.results_db}), {len(report.pending)} phases left to `grid run` (trainings resume "
        "from their latest checkpoints)")
  return 0


def summary_line(plan, report) -> str:
  """One line saying what a grid run did."""
  if not report.ran and not report.failed and not report.blocked and not report.preempted:
    extra = f"; re-recorded {len(report.recorded)} runs from the state" if report.recorded else ""
    return (f"all {len(plan.runs)} runs of {plan.experiment.name} were already done in "
            f"{plan.root_dir}: nothing new to run{extra}")
  parts = [f"ran {len(report.ran)} phases in {report.seconds:.0f}s",
           f"{len(report.skipped)} already done", f"{len(report.recorded)} runs recorded"]
  if report.failed:
    parts.append(f"{len(report.failed)} FAILED (first: {report.failed[0]})")
  if report.blocked:
    parts.append(f"{len(report.blocked)} waiting on failed phases")
  if report.preempted:
    parts.append(f"preempted in {report.preempted}: run again to resume")
  return f"grid {plan.experiment.name}: " + ", ".join(parts) + f"; results in {plan.results_db}"


def run(args) -> int:
  from xfer_t5x.experiments import experiment, state  # pylint: disable=g-import-not-at-top
  try:
    if args.action == "status":
      return _status(args)
    if args.action == "rebuild-state":
      return _rebuild(args)
    return _run(args)
  except (experiment.ExperimentError, state.GridBusyError, FileNotFoundError) as e:
    print(f"xfer-t5x grid {args.action}: {e}", file=sys.stderr)
    return 2
