"""`xfer-t5x recommend`: the intermediate task to use for a language the grid did not evaluate.

  xfer-t5x recommend --results results.sqlite --language sk          # any URIEL ISO 639-3 code
  xfer-t5x recommend --results results.sqlite --language sw --target_task xnli --json rec.json

Predicts, per model size, each intermediate task's gain for the language from its distance to
English and the observed grid (a line over the evaluated languages, with a prediction interval),
ranks the intermediate tasks, and validates the method on the results by leaving one language out
at a time (see `analysis/recommend.py`). A language that is in the results is left out of the fit
and its observed gains are shown beside the predictions.
"""
import json
import sys

from xfer_t5x.analysis import analyze as A
from xfer_t5x.analysis import distances as D
from xfer_t5x.results import ResultsError


def add_arguments(parser):
  parser.add_argument("--results", required=True,
                      help="the grid's results database (.sqlite/.db) or a CSV export of it")
  parser.add_argument("--language", required=True,
                      help="an XTREME-R two-letter code (de, sw, ...) or any ISO 639-3 code URIEL "
                           "has (slk, amh, ...)")
  parser.add_argument("--target_task", default=None,
                      help="predict for this target task only (default: the gain averaged over "
                           "the target tasks)")
  parser.add_argument("--distance", choices=D.DISTANCE_TYPES, default=A.DEFAULT_DISTANCES[0],
                      help=f"the distance to predict from (default: {A.DEFAULT_DISTANCES[0]})")
  parser.add_argument("--experiment", nargs="+", metavar="NAME",
                      help="use only these experiments' results")
  parser.add_argument("--level", type=float, default=0.95, help="prediction interval level")
  parser.add_argument("--json", default=None, metavar="PATH",
                      help="also write the predictions and the validation as JSON")


def _language_distance(lang, kind):
  from xfer_t5x.analysis import languages as L  # pylint: disable=g-import-not-at-top
  if lang in L.ALL_LANGUAGES:
    return D.distance(L.REFERENCE, lang, kind), lang
  try:
    return D.uriel_code_distances(lang, [kind])[kind], lang
  except KeyError:
    raise ValueError(
        f"--language {lang}: neither one of the 50 XTREME-R two-letter codes "
        f"({' '.join(L.ALL_LANGUAGES)}) nor an ISO 639-3 code in URIEL (lang2vec); e.g. "
        "--language slk for Slovak") from None


def run(args) -> int:
  from xfer_t5x.analysis import gains as G  # pylint: disable=g-import-not-at-top
  from xfer_t5x.analysis import recommend as R  # pylint: disable=g-import-not-at-top
  from xfer_t5x.analysis import stats as S  # pylint: disable=g-import-not-at-top
  from xfer_t5x.results import load_results  # pylint: disable=g-import-not-at-top
  if not 0 < args.level < 1:
    print(f"xfer-t5x recommend: --level {args.level}: give a level between 0 and 1, e.g. 0.95",
          file=sys.stderr)
    return 2
  try:
    x0, lang = _language_distance(args.language, args.distance)
    results = load_results(args.results)
  except (ValueError, ResultsError) as e:
    print(f"xfer-t5x recommend: {e}", file=sys.stderr)
    return 2
  if args.experiment:
    results = results[results["experiment"].isin(args.experiment)]
  frame = S.analysis_frame(G.compute_gains(results).by_language, D.distance_table(),
                           [args.distance])
  if args.target_task and args.target_task not in set(frame["target_task"]):
    print(f"xfer-t5x recommend: --target_task {args.target_task}: no gains for it in "
          f"{args.results} (target tasks with gains: "
          f"{', '.join(sorted(set(frame['target_task']))) or 'none'})", file=sys.stderr)
    return 2
  observed = R.language_gains(frame[frame["language"] == lang], args.distance, args.target_task)
  fit_frame = frame[frame["language"] != lang]
  rec = R.recommend(fit_frame, args.distance, x0, args.target_task, args.level)
  val = R.validate(fit_frame, args.distance, args.target_task, args.level)
  what = f"target task {args.target_task}" if args.target_task else "mean over target tasks"
  print(f"{lang}: {args.distance} distance to English {x0:.3f}; predicted gain ({what}), "
        f"{100 * args.level:g}% prediction interval, from "
        f"{R.language_gains(fit_frame, args.distance, args.target_task)['language'].nunique()} "
        "evaluated languages")
  if rec.empty or "predicted_gain" not in rec:
    print("no prediction: the results need gains (runs with and without an intermediate task) "
          f"in at least {R.MIN_LANGUAGES} languages")
    return 1
  seen = {(r.size, r.intermediate): r.gain for r in observed.itertuples(index=False)}
  for size, part in rec.groupby("size", sort=False):
    print(f"\n{size} ({int(part['n_params'].iloc[0]):,} parameters)")
    for r in part.itertuples(index=False):
      if r.note:
        print(f"  {r.intermediate:16s} {r.note}")
        continue
      obs = seen.get((size, r.intermediate))
      print(f"  {int(r.rank)}. {r.intermediate:16s} {r.predicted_gain:+7.2f}  "
            f"[{r.pi_low:+.2f}, {r.pi_high:+.2f}]  slope {r.slope:+.2f}, {r.n_languages} languages"
            + ("" if obs is None else f"  (observed {obs:+.2f})"))
  print("\nleave-one-language-out validation on these results:")
  for v in val["per_size"]:
    print(f"  {v['size']}: Spearman(predicted, observed) {v['spearman']:.2f} over "
          f"{v['n_predictions']} predictions; interval coverage {100 * v['coverage']:.0f}% "
          f"(nominal {100 * v['level']:g}%); best intermediate predicted right for "
          f"{100 * v['top1_agreement']:.0f}% of {v['n_languages']} languages")
  if args.json:
    from xfer_t5x.analysis.report_json import clean  # pylint: disable=g-import-not-at-top
    doc = {"language": lang, "distance": args.distance, "distance_value": x0,
           "target_task": args.target_task, "level": args.level,
           "recommendations": clean(rec.to_dict(orient="records")),
           "observed": clean(observed.to_dict(orient="records")),
           "validation": clean(val["per_size"])}
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(doc, f, indent=1, allow_nan=False)
  return 0
