"""`xfer-t5x distances`: the distances of the 50 XTREME-R languages from English (URIEL).

    xfer-t5x distances                    # table of all 50, with script and family
    xfer-t5x distances --format csv > distances.csv
    xfer-t5x distances --choices          # which URIEL code stands for each macrolanguage

Definitions: xfer_t5x.analysis.distances (also printed with --definitions).
"""
from xfer_t5x.analysis import distances as D
from xfer_t5x.analysis import languages as L


def add_arguments(parser):
  parser.add_argument("--languages", nargs="+", metavar="LANG",
                      help="two-letter codes (default: all 50 XTREME-R languages)")
  parser.add_argument("--macrolanguages", choices=D.MACRO_MODES, default="coverage",
                      help="which URIEL code stands for the eight macrolanguages (default: coverage)")
  parser.add_argument("--format", choices=("text", "csv", "markdown"), default="text")
  parser.add_argument("--choices", action="store_true", help="print the macrolanguage choices instead")
  parser.add_argument("--definitions", action="store_true", help="print the distance definitions first")


def run(args):
  import sys
  try:
    langs = [L.check_language(l) for l in (args.languages or L.ALL_LANGUAGES)]
  except ValueError as e:
    print(f"xfer-t5x distances: {e}", file=sys.stderr)
    return 2
  if args.definitions:
    for k in D.DISTANCE_TYPES:
      print(f"# {k}: {D.DEFINITIONS[k]}")
  if args.choices:
    table = D.macrolanguage_choices(args.macrolanguages)
  else:
    table = D.distance_table(langs, mode=args.macrolanguages).reset_index()
    for k in D.DISTANCE_TYPES:
      table[k] = table[k].round(4)
  if args.format == "csv":
    print(table.to_csv(index=False), end="")
  elif args.format == "markdown":
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "|".join("---" for _ in table.columns) + "|")
    for r in table.itertuples(index=False, name=None):
      print("| " + " | ".join(str(v) for v in r) + " |")
  else:
    print(table.to_string(index=False))
  return 0
