"""`xfer-t5x analyze`: the transfer-gain vs. linguistic-distance report from a results table.

    xfer-t5x analyze --results results.sqlite --out report/
    xfer-t5x analyze --results results.csv --out report/ --distance featural syntactic
    xfer-t5x analyze --results results.sqlite --out report/ --note "Pilot run: 2 seeds only."

Writes report.md, report.html, figures/ and tables/ into --out (see xfer_t5x.analysis.report).
"""
import sys

from xfer_t5x.analysis import analyze as A
from xfer_t5x.analysis import distances as D
from xfer_t5x.results import ResultsError


def add_arguments(parser):
  parser.add_argument("--results", required=True,
                      help="the grid's results database (.sqlite/.db) or a CSV export of it")
  parser.add_argument("--out", required=True, help="directory for report.md, report.html, figures/, tables/")
  parser.add_argument("--distance", nargs="+", choices=D.DISTANCE_TYPES, default=list(A.DEFAULT_DISTANCES),
                      metavar="KIND",
                      help="distance types, the first one primary (plots, mixed model); any of "
                           f"{', '.join(D.DISTANCE_TYPES)} (default: all, syntactic first: the primary measure)")
  parser.add_argument("--macrolanguages", choices=D.MACRO_MODES, default="coverage",
                      help="which URIEL code stands for the eight macrolanguages (default: the one "
                           "with more observed features per distance type)")
  parser.add_argument("--mixed", choices=("primary", "all"), default="primary",
                      help="fit the mixed model for the primary distance only, or for all")
  parser.add_argument("--experiment", nargs="+", metavar="NAME",
                      help="analyse only these experiments (default: all, pooled)")
  parser.add_argument("--intermediate", nargs="+", metavar="NAME",
                      help="analyse only these intermediate tasks (the `none` runs are always kept)")
  parser.add_argument("--include-english", action="store_true",
                      help="keep English in the correlations and slopes (left out by default)")
  parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
  parser.add_argument("--permutations", type=int, default=1000, help="permutations (default 1000)")
  parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and permutations")
  parser.add_argument("--note", action="append", default=[], metavar="TEXT",
                      help="a note shown boxed under the report's title (repeatable; plain text)")


def run(args):
  from xfer_t5x.analysis import report  # matplotlib only when the command runs
  try:
    paths = report.build_report(
        args.results, args.out, kinds=tuple(args.distance), mode=args.macrolanguages,
        include_english=args.include_english, n_boot=args.bootstrap, n_perm=args.permutations,
        seed=args.seed, mixed_distances="all" if args.mixed == "all" else None,
        experiments=args.experiment, intermediates=args.intermediate, notes=args.note)
  except ResultsError as e:
    print(f"xfer-t5x analyze: {e}", file=sys.stderr)
    return 2
  print(f"report: {paths['markdown']}")
  print(f"        {paths['html']}")
  print(f"figures: {paths['figures']}  tables: {paths['tables']}")
  return 0
