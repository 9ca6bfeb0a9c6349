"""`xfer-t5x results`: print the results table and export it as CSV.

  xfer-t5x results --db demo_out/grid/results.sqlite
  xfer-t5x results --db demo_out/grid/results.sqlite --csv results.csv
  xfer-t5x results --db results.sqlite --long --target xnli

By default it prints one line per run: its task score (the mean of the metrics marked
`task_score`; QA: EM and F1) in each language and their mean. `--long` prints every row
(run, language, metric, value). `--csv` writes the full table, every column of CONTRACTS.md
"Results", whatever the filters.
"""
import os
import sys

import pandas as pd

from xfer_t5x import results as results_lib

RUN_KEYS = ["experiment", "size", "intermediate", "target_task", "seed", "split"]


def add_arguments(parser):
  parser.add_argument("--db", default=None,
                      help="the results database (.sqlite) or a CSV export (default: "
                      "results.sqlite in --root)")
  parser.add_argument("--root", default=None, help="a grid's folder (reads <root>/results.sqlite)")
  parser.add_argument("--csv", default=None, metavar="OUT", help="export the whole table as CSV")
  parser.add_argument("--long", action="store_true", help="print every (run, language, metric) row")
  parser.add_argument("--experiment", default=None, help="only this experiment")
  parser.add_argument("--target", default=None, help="only this target task")


def score_table(frame: pd.DataFrame) -> pd.DataFrame:
  """One row per run: task score per language (columns) and `avg`, sorted."""
  ts = frame[frame["task_score"] & frame["value"].notna()]
  if ts.empty:
    return pd.DataFrame()
  scores = ts.groupby(RUN_KEYS + ["language"], as_index=False)["value"].mean()
  wide = scores.pivot_table(index=RUN_KEYS, columns="language", values="value")
  wide["avg"] = wide.mean(axis=1)
  return wide.reset_index().sort_values(RUN_KEYS).reset_index(drop=True)


def run(args) -> int:
  path = args.db or (os.path.join(args.root, "results.sqlite") if args.root else None)
  if not path:
    print("xfer-t5x results: pass --db PATH (the grid's results.sqlite, or a CSV) or --root DIR",
          file=sys.stderr)
    return 2
  try:
    frame = results_lib.load_results(path)
  except results_lib.ResultsError as e:
    print(f"xfer-t5x results: {e}", file=sys.stderr)
    return 2
  if args.csv:
    n = results_lib.write_csv(frame.to_dict("records"), args.csv)
    print(f"wrote {n} rows to {args.csv}")
  shown = frame
  if args.experiment:
    shown = shown[shown["experiment"] == args.experiment]
  if args.target:
    shown = shown[shown["target_task"] == args.target]
  if shown.empty:
    print(f"{path}: no results" + (" match the filters" if len(frame) else " yet"))
    return 0
  with pd.option_context("display.max_rows", None, "display.max_columns", None,
                         "display.width", 200, "display.float_format", "{:.2f}".format):
    if args.long:
      print(shown[["run_id", "language", "split", "metric", "value", "task_score", "step"]]
            .to_string(index=False))
    else:
      print(score_table(shown).to_string(index=False))
  print(f"\n{shown['run_id'].nunique()} runs, {len(shown)} rows in {path}")
  return 0
