"""The whole analysis of one results table: gains -> distances -> statistics -> a result object.

`analyze(results)` runs every estimator of `stats.py` and `mixed_model.py` on the results of a
grid and returns an `Analysis`, which `report.py` renders. Nothing here prints or plots; data
too small for an estimator yields a row with a `note` (or a line in `Analysis.notes`), never an
exception.
"""
import dataclasses

import numpy as np
import pandas as pd
from scipy import stats as sps

from xfer_t5x.analysis import distances as D
from xfer_t5x.analysis import gains as G
from xfer_t5x.analysis import languages as L
from xfer_t5x.analysis import mixed_model as M
from xfer_t5x.analysis import stats as S

# The primary distance comes first; the others are secondary.
DEFAULT_DISTANCES = ("syntactic", "featural", "phonological", "inventory", "genetic", "geographic")
PRIMARY_WHY = {
    "syntactic": "the study asks how linguistic similarity to English limits transfer, and "
                 "syntactic distance (URIEL's syntax features) is the usual primary measure in "
                 "the cross-lingual transfer literature (e.g. Lauscher et al. 2020; Lin et al. "
                 "2019), continuous, and observed for most XTREME-R languages",
}
ALPHA = 0.05
TINY_MODEL_PARAMS = 100_000_000


@dataclasses.dataclass
class Analysis:
  kinds: tuple
  mode: str
  summary: dict
  gains: G.Gains
  distances: pd.DataFrame
  frame: pd.DataFrame
  means: pd.DataFrame
  spearman: pd.DataFrame
  size_effects: pd.DataFrame
  slopes: pd.DataFrame
  slope_differences: pd.DataFrame
  distance_correlations: pd.DataFrame  # Spearman between distance types, over the languages
  answer: dict  # the primary estimates: what the report's first section says
  mixed: list
  mixed_baseline: list  # the same fits adjusted for the baseline score: a sensitivity analysis
  macro_choices: pd.DataFrame
  sensitivity: pd.DataFrame
  notes: list
  include_english: bool
  n_boot: int
  n_perm: int

  @property
  def primary(self):
    return self.kinds[0]


def _summary(results):
  sizes = sorted(results[["size", "n_params"]].drop_duplicates().itertuples(index=False, name=None),
                 key=lambda t: (t[1], t[0]))
  return dict(
      n_rows=len(results), n_runs=results["run_id"].nunique(),
      experiments=sorted(results["experiment"].unique()), sizes=sizes,
      intermediates=sorted(results["intermediate"].unique()),
      target_tasks=sorted(results["target_task"].unique()),
      languages=sorted(results["language"].unique()),
      seeds=sorted(int(s) for s in results["seed"].unique()),
      splits=sorted(results["split"].unique()),
      code_versions=_distinct(results, "code_version"),
      data_versions=_distinct(results, "data_version"))


def _distinct(results, col):
  return sorted(str(v) for v in results[col].unique()) if col in results else []


def _rho(x, y):
  ok = np.isfinite(x) & np.isfinite(y)
  if ok.sum() < S.MIN_LANGUAGES or np.unique(x[ok]).size < 2 or np.unique(y[ok]).size < 2:
    return np.nan
  return float(sps.spearmanr(x[ok], y[ok])[0])


def _sensitivity(gains, kinds, dist, alt_dist, include_english):
  """How much correlations and slopes move with the other macrolanguage choice."""
  out = []
  frames = {m: S.analysis_frame(gains.by_language, t, kinds, include_english)
            for m, t in (("chosen", dist), ("alternative", alt_dist))}
  means = {m: S.language_means(f, kinds) for m, f in frames.items()}
  slopes = {m: S.slopes_by_size(f, kinds) for m, f in frames.items()}
  for (inter, size), part in means["chosen"].groupby(["intermediate", "size"]):
    alt = means["alternative"]
    alt = alt[(alt["intermediate"] == inter) & (alt["size"] == size)]
    for kind in kinds:
      r1 = _rho(part[kind].to_numpy(float), part["gain"].to_numpy(float))
      r2 = _rho(alt[kind].to_numpy(float), alt["gain"].to_numpy(float))
      row = dict(intermediate=inter, size=size, distance=kind, rho_chosen=r1, rho_alternative=r2,
                 delta_rho=r2 - r1)
      for m, name in (("chosen", "slope_chosen"), ("alternative", "slope_alternative")):
        s = slopes[m]
        hit = s[(s["intermediate"] == inter) & (s["size"] == size) & (s["distance"] == kind)]
        row[name] = float(hit["slope"].iloc[0]) if len(hit) and "slope" in hit else np.nan
      row["delta_slope"] = row["slope_alternative"] - row["slope_chosen"]
      out.append(row)
  return pd.DataFrame(out)


def _select(results, experiments, intermediates, notes):
  """Filters by experiment / intermediate, and keeps one split per target task."""
  if experiments:
    results = results[results["experiment"].isin(list(experiments))]
  elif results["experiment"].nunique() > 1:
    notes.append(f"the results hold {results['experiment'].nunique()} experiments, pooled here "
                 "(choose one with --experiment)")
  if intermediates:
    results = results[results["intermediate"].isin(list(intermediates) + [G.BASELINE])]
  splits = results.groupby("target_task")["split"].unique()
  keep = {t: ("test" if "test" in s else sorted(s)[0]) for t, s in splits.items() if len(s) > 1}
  for task, split in keep.items():
    notes.append(f"{task} has results on splits {sorted(splits[task])}; using {split!r}")
    results = results[(results["target_task"] != task) | (results["split"] == split)]
  return results


def analyze(results, kinds=DEFAULT_DISTANCES, mode="coverage", include_english=False,
            n_boot=1000, n_perm=1000, seed=0, mixed_distances=None, dist_table=None,
            experiments=None, intermediates=None):
  """Runs the analysis on a results DataFrame (`xfer_t5x.results.load_results`).

  kinds: distance types, the first is the primary one (plots; the mixed model by default);
  mode: macrolanguage choice (`distances.MACRO_MODES`); mixed_distances: distance types to fit
  the mixed model for (default: the primary one; "all" for every one); experiments,
  intermediates: keep only these (the `none` runs are always kept).
  """
  kinds = tuple(kinds)
  bad = [k for k in kinds if k not in D.DISTANCE_TYPES]
  if bad or not kinds:
    raise ValueError(f"unknown distance type(s) {bad}; choose from {D.DISTANCE_TYPES}")
  notes = []
  results = _select(results, experiments, intermediates, notes)
  if results.empty:
    notes.append("no results rows are left after the selection")
  summary = _summary(results)
  gains = G.compute_gains(results)
  notes.extend(gains.notes)
  dist = dist_table if dist_table is not None else D.distance_table(mode=mode)
  frame = S.analysis_frame(gains.by_language, dist, kinds, include_english)
  if frame.attrs.get("unknown_languages"):
    notes.append(f"languages without URIEL distances left out: {frame.attrs['unknown_languages']}")
  means = S.language_means(frame, kinds)
  n_lang = frame["language"].nunique()
  if len(summary["sizes"]) and max(n for _, n in summary["sizes"]) < TINY_MODEL_PARAMS:
    notes.append("every model here has under 100M parameters: these are tiny test models, not mT5, "
                 "and the numbers only show that the pipeline runs")
  if n_lang < S.MIN_LANGUAGES:
    notes.append(f"only {n_lang} target language(s) with gains: too few for correlations or "
                 f"slopes (need {S.MIN_LANGUAGES}); the tables below show gains only")
  elif n_lang < 20:
    notes.append(f"only {n_lang} target languages: intervals are wide, and with about 49 languages "
                 "a correlation difference below ~0.3 is already near the detection limit")
  if len(summary["sizes"]) == 1:
    notes.append("one model size only: no size effect can be estimated")
  if len(summary["seeds"]) == 1:
    notes.append("one seed only: no per-seed spread")
  spearman = S.spearman_by_size(means, kinds, n_boot, n_perm, seed=seed)
  effects = S.size_effects(means, kinds, n_boot, seed=seed)
  # One family of tests for the whole report: every slope and slope difference.
  slopes, diffs = S.holm_across([S.slopes_by_size(frame, kinds), S.slope_differences(frame, kinds)])
  if mixed_distances is None:
    mixed_distances = kinds[:1]
  elif mixed_distances == "all":
    mixed_distances = kinds
  parts = [part for _, part in frame.groupby("intermediate")]
  mixed = [M.mixed_model(part, k) for part in parts for k in mixed_distances]
  mixed_baseline = [M.mixed_model(part, k, baseline=True) for part in parts for k in mixed_distances]
  choices = D.macrolanguage_choices(mode)
  in_data = sorted(set(frame["language"]) & set(L.MACROLANGUAGES))
  if in_data:
    alt_mode = "alternative" if mode == "coverage" else "coverage"
    sens = _sensitivity(gains, kinds, dist, D.distance_table(mode=alt_mode), include_english)
  else:
    sens = pd.DataFrame()
  if "genetic" in kinds and n_lang:
    notes.append(f"genetic distance takes only {frame['genetic'].nunique()} distinct values "
                 f"over these {n_lang} languages: read it as ordinal (its Spearman rank "
                 "correlation), not its linear slope")
  return Analysis(kinds=kinds, mode=mode, summary=summary, gains=gains, distances=dist,
                  frame=frame, means=means, spearman=spearman, size_effects=effects,
                  distance_correlations=distance_correlations(frame, kinds),
                  answer=primary_answer(slopes, diffs, kinds[0]),
                  slopes=slopes, slope_differences=diffs, mixed=mixed,
                  mixed_baseline=mixed_baseline,
                  macro_choices=choices[choices["language"].isin(in_data)].reset_index(drop=True),
                  sensitivity=sens, notes=notes, include_english=include_english,
                  n_boot=n_boot, n_perm=n_perm)


def distance_correlations(frame, kinds):
  """Spearman correlations between the distance types over the languages of the frame."""
  langs = frame.groupby("language")[list(kinds)].first()
  if len(langs) < 3:
    return pd.DataFrame()
  return langs.corr(method="spearman")


def _fmt_p(p):
  return "n/a" if not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def primary_answer(slopes, diffs, primary, alpha=ALPHA):
  """The primary estimates (slope per size, the slope difference between the smallest and the
  largest size, for the primary distance) and the paragraph that states them."""
  family = int(pd.concat([slopes.get("p", pd.Series(dtype=float)),
                          diffs.get("p", pd.Series(dtype=float))]).notna().sum())
  out = {"distance": primary, "why": PRIMARY_WHY.get(primary, "chosen by the user"),
         "alpha": alpha, "family_size": family, "estimator": "OLS slope of gain on distance with "
         "target-task intercepts, language-clustered CR2 errors; Holm over the report's family",
         "slopes": [], "differences": []}
  rows = slopes[(slopes["distance"] == primary)] if "slope" in slopes else None
  for r in (rows.itertuples(index=False) if rows is not None else ()):
    if not np.isfinite(getattr(r, "slope", np.nan)):
      continue
    out["slopes"].append(dict(
        intermediate=r.intermediate, size=r.size, n_params=int(r.n_params), slope=r.slope,
        ci_low=r.ci_low, ci_high=r.ci_high, slope_per_sd=r.slope_per_sd, p=r.p,
        p_family=r.p_family, significant=bool(r.p_family < alpha), n_languages=int(r.n_languages)))
  drows = diffs[(diffs["distance"] == primary)] if "diff" in diffs else None
  for inter, part in (drows.groupby("intermediate") if drows is not None else ()):
    sizes = {s["size"]: s["n_params"] for s in out["slopes"] if s["intermediate"] == inter}
    if len(sizes) < 2:
      continue
    small, large = min(sizes, key=sizes.get), max(sizes, key=sizes.get)
    hit = part[(part["size_a"] == small) & (part["size_b"] == large)]
    if hit.empty or not np.isfinite(hit["diff"].iloc[0]):
      continue
    h = hit.iloc[0]
    out["differences"].append(dict(
        intermediate=inter, smaller=small, larger=large, diff=h["diff"], ci_low=h["ci_low"],
        ci_high=h["ci_high"], p=h["p"], p_family=h["p_family"],
        significant=bool(h["p_family"] < alpha)))
  out["text"] = _answer_text(out)
  return out


def _params(n):
  return f"{n / 1e9:.3g}B" if n >= 1e9 else f"{n / 1e6:.3g}M"


def _answer_text(ans):
  d, alpha = ans["distance"], ans["alpha"]
  if not ans["slopes"]:
    return (f"No answer from these results: no slope of gain on {d} distance could be "
            "estimated (see the notes below).")
  parts = [f"Primary measure: {d} distance to English ({ans['why']}). Per model size, the "
           f"slope of the gain (task-score points per unit of distance; per SD of the distance "
           f"in brackets), its 95% CI and its Holm-adjusted p over the report's "
           f"{ans['family_size']} tests (alpha = {alpha:g}):"]
  by_inter = {}
  for s in ans["slopes"]:
    by_inter.setdefault(s["intermediate"], []).append(s)
  for inter, rows in by_inter.items():
    items = "; ".join(
        f"{r['size']} ({_params(r['n_params'])} params) {r['slope']:+.2f} "
        f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] ({r['slope_per_sd']:+.2f} per SD), "
        f"p_adj {_fmt_p(r['p_family'])}"
        + (" *" if r["significant"] else "")
        for r in sorted(rows, key=lambda r: r["n_params"]))
    parts.append(f"intermediate {inter}: {items}.")
  small_slope = {(s["intermediate"], s["size"]): s["slope"] for s in ans["slopes"]}
  for dd in ans["differences"]:
    shrink = dd["diff"] * small_slope[(dd["intermediate"], dd["smaller"])] < 0
    verdict = ((f"the dependence {'shrinks' if shrink else 'grows'} with size"
                if dd["significant"] else
                "no detectable change of the dependence with size"))
    parts.append(
        f"{dd['intermediate']}: {verdict}: slope({dd['larger']}) - slope({dd['smaller']}) = "
        f"{dd['diff']:+.2f} [{dd['ci_low']:+.2f}, {dd['ci_high']:+.2f}], p_adj "
        f"{_fmt_p(dd['p_family'])}.")
  parts.append("(* significant at alpha after adjustment; a negative slope means less gain "
               "for languages further from English.)")
  return " ".join(parts)
