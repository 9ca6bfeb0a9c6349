"""`xfer-t5x demo`: the whole study in miniature on CPU, from data the project generates.

  xfer-t5x demo --out demo_out          (what `make demo` runs)

Into --out it writes:
  data/            small datasets in the real released formats (tasks/demo_data.py): MNLI, SST-2,
                   XNLI and PAN-X in en, de, es, sw, zh, ar, hi, tr; SQuAD v1.1, XQuAD, LAReQA
                   (XQuAD-R) and Tatoeba; the baselines' text and translated MNLI
  spm.model        a local SentencePiece vocabulary trained on that data
  grid/            the experiment gin/experiments/demo.gin: two tiny mT5 sizes, intermediate
                   tasks mnli and sst2 plus the baselines none, mlm and mnli_translated,
                   targets xnli and panx, one seed, a few dozen steps per phase; model dirs,
                   state.sqlite and results.sqlite
  grid_retrieval/  gin/experiments/demo_retrieval.gin: the tiny size with none, mlm and
                   mnli_translated, targets xquad, lareqa (a dual encoder) and tatoeba (the
                   xquad model's encoder, and the lareqa dual encoder beside it); its rows go
                   into grid/results.sqlite
  results.csv      the results table (CONTRACTS.md "Results")
  report/          the analysis report (report.md, report.html, figures/, tables/)

The models start from random weights and train for seconds: the numbers show that the pipeline
works end to end, and nothing about mT5 or about transfer. The demo says so where it prints and
in the report. Running it again in the same folder finds every run done and does nothing new.
`--gin.X=...` bindings apply on top of the demo's experiment (e.g. fewer steps or sizes).
"""
import os
import sys
import time

DEMO_EXPERIMENT = "experiments/demo.gin"
RETRIEVAL_EXPERIMENT = "experiments/demo_retrieval.gin"  # overrides DEMO_EXPERIMENT
RETRIEVAL_GRID = "grid_retrieval"
DISCLAIMER = ("These numbers come from untrained tiny models: two miniature mT5 sizes started "
              "from random weights and trained for a few dozen steps on small generated data. "
              "They show that the pipeline works end to end (intermediate -> target -> zero-shot "
              "evaluation -> results table -> analysis) and say nothing about mT5 or about "
              "cross-lingual transfer.")


def add_arguments(parser):
  parser.add_argument("--out", default="demo_out",
                      help="folder for the demo's data, vocabulary, grid, results and report "
                      "(default: demo_out)")
  parser.add_argument("--bootstrap", type=int, default=200,
                      help="the report's bootstrap resamples and permutations (default 200)")
  parser.add_argument("--no_report", action="store_true", help="skip the analysis report")


def _say(text=""):
  print(text, flush=True)


def prepare(out: str):
  """Writes the demo data and vocabulary into `out` (once); returns (data dir, vocab path)."""
  from xfer_t5x.tasks import demo_data, vocab  # pylint: disable=g-import-not-at-top
  data = os.path.join(out, "data")
  marker = os.path.join(data, ".complete")
  if not os.path.exists(marker):
    demo_data.write_demo_data(data)
    with open(marker, "w", encoding="utf-8") as f:
      f.write("written by xfer-t5x demo\n")
  spm = os.path.join(out, "spm.model")
  vocab.build_local_vocabulary(demo_data.demo_texts(data), spm)
  return data, spm


def _compilation_cache(out: str):
  """A persistent XLA cache in the demo folder: phases of one size share compiled steps."""
  import jax  # pylint: disable=g-import-not-at-top
  if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    jax.config.update("jax_compilation_cache_dir", os.path.join(out, ".jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def run(args) -> int:
  t0 = time.time()
  out = os.path.abspath(os.path.expanduser(args.out))
  os.makedirs(out, exist_ok=True)
  _say(f"xfer-t5x demo in {out}\n{DISCLAIMER}\n")
  data, spm = prepare(out)
  _compilation_cache(out)

  from xfer_t5x import results as results_lib  # pylint: disable=g-import-not-at-top
  from xfer_t5x.experiments import grid, grid_cmd, results_cmd  # pylint: disable=g-import-not-at-top
  bindings = [f"default_vocabulary.path = {spm!r}", f"register_tasks.data_dir = {data!r}",
              f"experiment.root_dir = {os.path.join(out, 'grid')!r}"] + list(args.gin_bindings)
  plan = grid.load_plan([DEMO_EXPERIMENT], bindings, args.gin_search_paths)
  report = grid.run_grid(plan, args.gin_search_paths)
  _say(grid_cmd.summary_line(plan, report))
  # The QA and retrieval part: its own grid state, its rows in the same results table.
  retrieval_bindings = bindings + [
      f"experiment.root_dir = {os.path.join(out, RETRIEVAL_GRID)!r}",
      f"experiment.results_db = {plan.results_db!r}"]
  retrieval = grid.load_plan([DEMO_EXPERIMENT, RETRIEVAL_EXPERIMENT], retrieval_bindings,
                             args.gin_search_paths)
  retrieval_report = grid.run_grid(retrieval, args.gin_search_paths)
  _say(grid_cmd.summary_line(retrieval, retrieval_report))
  nothing_new = not (report.ran or report.recorded or retrieval_report.ran
                     or retrieval_report.recorded)

  csv_path = os.path.join(out, "results.csv")
  if not (nothing_new and os.path.exists(csv_path)):
    with results_lib.ResultsDB(plan.results_db) as db:
      n = results_lib.write_csv(db.rows(), csv_path)
    _say(f"results: {n} rows in {plan.results_db}, exported to {csv_path}")
  frame = results_lib.load_results(plan.results_db)
  if len(frame):
    _say("\ntask score per language (mean of the XTREME-R metrics, 0-100; untrained tiny models):")
    _say(results_cmd.score_table(frame).to_string(index=False, float_format="{:.1f}".format))

  status = 0 if report.complete and retrieval_report.complete else 1
  report_dir = os.path.join(out, "report")
  if args.no_report:
    pass
  elif nothing_new and os.path.exists(os.path.join(report_dir, "report.md")):
    _say(f"\nreport: {report_dir}/report.md (unchanged: nothing new ran)")
  else:
    try:
      from xfer_t5x.analysis import report as report_lib  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      _say(f"\nno analysis report: xfer_t5x.analysis is not available ({e})")
    else:
      paths = report_lib.build_report(plan.results_db, report_dir, notes=[DISCLAIMER],
                                      n_boot=args.bootstrap, n_perm=args.bootstrap)
      _say(f"\nreport: {paths['markdown']}\n        {paths['html']}")
  if nothing_new:
    _say(f"\nNothing new: every run of the demo was already done in {out} (delete the folder "
         "to start over).")
  _say(f"\n{DISCLAIMER}\ndemo finished in {time.time() - t0:.0f}s" +
       ("" if status == 0 else " with FAILED phases (see `xfer-t5x grid status --state_dir "
        f"{plan.state_dir} --errors`)"))
  return status


if __name__ == "__main__":
  from xfer_t5x import cli  # pylint: disable=g-import-not-at-top
  sys.exit(cli.main(["demo"] + sys.argv[1:]))
