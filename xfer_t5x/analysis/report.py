"""The analysis report: Markdown and HTML with tables, figures and the definitions behind them.

`build_report(results_path, out_dir)` reads a results database or CSV, runs `analyze.analyze`,
and writes into `out_dir`:

    report.md, report.html      the report (the same content)
    figures/*.png               gain vs distance per size, per-task panels, language x size heat map
    tables/*.csv                every table in full (gains per seed and per language, distances,
                                correlations, size effects, slopes, mixed-model coefficients)

Data too small for an estimator (the demo's few languages, one size, one seed) is said plainly
in the report; it never makes the report fail. `notes` (plain text, e.g. the demo's "untrained
tiny models" disclaimer) are shown as a boxed "Note" right under the title, before anything else.
"""
import html
import os
from typing import Sequence

import numpy as np
import pandas as pd

from xfer_t5x.analysis import analyze as A
from xfer_t5x.analysis import distances as D
from xfer_t5x.analysis import gains as G
from xfer_t5x.analysis import plots
from xfer_t5x.analysis import report_json
from xfer_t5x.results import load_results

ESTIMATORS = [
    "**Analysis unit.** One row per (intermediate, size, target task, language): the gain averaged "
    "over seeds. English is {english}.",
    "**Spearman, per size.** Over languages: each (size, task)'s mean gain over its languages is "
    "subtracted, the rest averaged over the language's tasks, and ranked against the distance. "
    "95% CI: percentile bootstrap over languages ({n_boot} resamples); p: two-sided permutation "
    "test ({n_perm} shuffles of the distances).",
    "**Size effect.** rho(larger size) - rho(smaller size), both computed on the same bootstrap "
    "resamples of the languages the two sizes share; 95% percentile CI, two-sided bootstrap p.",
    "**Slope, per size** (the estimator the calibration test checks). OLS of gain on distance over "
    "(language, task) rows with one intercept per target task; standard errors clustered by "
    "language (CR2, Bell-McCaffrey), t intervals with Bell-McCaffrey degrees of freedom. The slope "
    "difference between two sizes comes from one such model on both sizes (task x size intercepts, "
    "a distance x size term).",
    "**Mixed model.** gain ~ distance * log10(params) + latin, random intercepts for language, "
    "target task and family (crossed variance components in statsmodels' MixedLM, REML); "
    "log10(params) centred. Falls back (without family, then OLS with clustered SEs) when a fit "
    "fails, and says so. The baseline (`none`) score is not a covariate: the gain is computed "
    "from it (they share its noise) and it falls with distance, so adjusting for it manufactures "
    "a distance effect (on simulated grids with none, nearly always). The baseline-adjusted fit "
    "is shown only as a sensitivity analysis.",
    "**Multiple testing.** The report's family of tests is every slope and every slope "
    "difference (all distance types x sizes or size pairs x intermediate tasks): Holm over that "
    "whole family is column `p_family`, the one the answer above uses. Holm across the distance "
    "types within each (intermediate, size) or size pair is kept as the secondary column "
    "`p_holm`. Spearman and size-effect p-values are descriptive (`p_holm` within their own "
    "groups).",
    "**Standardised slopes.** `slope_per_sd`: the slope times the standard deviation of that "
    "distance over the fit's languages (the change in gain per SD of distance), so that distance "
    "types on different scales can be compared.",
]


class Doc:
  """A list of blocks rendered to Markdown and to HTML."""

  def __init__(self):
    self.blocks = []

  def h(self, level, text):
    self.blocks.append(("h", level, text))

  def p(self, text):
    self.blocks.append(("p", text))

  def bullets(self, items):
    if items:
      self.blocks.append(("ul", list(items)))

  def table(self, df):
    self.blocks.append(("table", df))

  def note(self, text):
    """A boxed caller's note (plain text: escaped in HTML, no Markdown markup)."""
    self.blocks.append(("note", text))

  def image(self, relpath, caption):
    if relpath:
      self.blocks.append(("img", relpath, caption))

  def markdown(self):
    out = []
    for b in self.blocks:
      if b[0] == "h":
        out.append("#" * b[1] + " " + b[2])
      elif b[0] == "p":
        out.append(b[1])
      elif b[0] == "ul":
        out.append("\n".join(f"- {i}" for i in b[1]))
      elif b[0] == "table":
        out.append(_md_table(b[1]))
      elif b[0] == "note":
        out.append("\n".join("> " + ("**Note.** " if i == 0 else "") + line if line else ">"
                             for i, line in enumerate(b[1].strip().split("\n"))))
      else:
        out.append(f"![{b[2]}]({b[1]})\n\n*{b[2]}*")
    return "\n\n".join(out) + "\n"

  def html(self, title):
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
           "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
           "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
           "th{background:#f0f0f0}img{max-width:100%}figcaption{font-style:italic}"
           ".note{border:2px solid #c00;padding:0.5em}</style>"
           "</head><body>"]
    for b in self.blocks:
      if b[0] == "h":
        out.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
      elif b[0] == "p":
        out.append(f"<p>{_inline(b[1])}</p>")
      elif b[0] == "ul":
        out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b[1]) + "</ul>")
      elif b[0] == "table":
        df = _formatted(b[1])
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
        rows = "".join("<tr>" + "".join(f"<td>{_inline(v)}</td>" for v in r) + "</tr>"
                       for r in df.itertuples(index=False, name=None))
        out.append(f"<table><tr>{head}</tr>{rows}</table>")
      elif b[0] == "note":
        out.append("<p class='note'><b>Note.</b> " +
                   html.escape(b[1].strip()).replace("\n", "<br>") + "</p>")
      else:
        out.append(f"<figure><img src='{html.escape(b[1])}' alt='{html.escape(b[2])}'>"
                   f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def _inline(text):
  """Escapes text for HTML, keeping **bold** and `code` from the Markdown."""
  parts = html.escape(text).split("**")
  text = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
  parts = text.split("`")
  return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


_P_COLUMNS = ("p", "p_perm", "p_boot", "p_holm")


def _fmt(col, v):
  if v is None or (isinstance(v, float) and np.isnan(v)):
    return "-"
  if isinstance(v, (bool, np.bool_)):
    return "yes" if v else "no"
  if isinstance(v, (int, np.integer)):
    return f"{int(v):.3g}" if col == "n_params" else str(int(v))
  if isinstance(v, (float, np.floating)):
    if col in _P_COLUMNS and 0 <= v <= 1:
      return "<0.001" if v < 0.001 else f"{v:.3f}"
    if col == "n_params" or abs(v) >= 1e5:
      return f"{v:.3g}"
    return f"{v + 0.0:.3f}".replace("-0.000", "0.000")
  return str(v)


def _formatted(df):
  df = df.reset_index() if df.index.name else df
  return pd.DataFrame({c: [_fmt(str(c), v) for v in df[c].tolist()] for c in df.columns})


def _md_table(df):
  if df.empty:
    return "*(empty)*"
  f = _formatted(df)
  esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
  lines = ["| " + " | ".join(esc(c) for c in f.columns) + " |",
           "|" + "|".join("---" for _ in f.columns) + "|"]
  lines += ["| " + " | ".join(esc(v) for v in r) + " |" for r in f.itertuples(index=False, name=None)]
  return "\n".join(lines)


def _drop_empty(df, cols):
  return df[[c for c in cols if c in df.columns]]


def _mixed_table(fits):
  return pd.concat([m.coefficients.assign(intermediate=m.intermediate, distance=m.distance,
                                          method=m.method) for m in fits
                    if not m.coefficients.empty] or [pd.DataFrame()])


def _write_tables(a, tables_dir):
  os.makedirs(tables_dir, exist_ok=True)
  out = {
      "gains_per_seed": a.gains.per_seed, "gains_by_language": a.gains.by_language,
      "unmatched": a.gains.unmatched, "distances": a.distances.reset_index(),
      "spearman": a.spearman, "size_effects": a.size_effects, "slopes": a.slopes,
      "slope_differences": a.slope_differences, "macrolanguage_choices": a.macro_choices,
      "macrolanguage_sensitivity": a.sensitivity,
      "mixed_model": _mixed_table(a.mixed),
      "mixed_model_baseline_adjusted": _mixed_table(a.mixed_baseline),
  }
  for name, df in out.items():
    df.to_csv(os.path.join(tables_dir, f"{name}.csv"), index=False)


_SCATTER_CAPTION = (
    "Gain vs {kind} distance per size: points are languages (gain averaged over target tasks "
    "and seeds); lines are the OLS fits over (language, task) gains with the average task "
    "intercept, 95% bands from language-clustered errors; each panel states its slope and CI.")


def _mixed_fits(doc, fits):
  for m in fits:
    doc.h(3, f"{m.intermediate}, {m.distance} distance: {m.method}")
    doc.p(f"`{m.formula}`")
    if not m.coefficients.empty:
      doc.table(m.coefficients)
    if m.variance_components:
      doc.p("Variance components: " + ", ".join(f"{k} {v:.3g}" for k, v in m.variance_components.items()) + ".")
    doc.bullets(m.notes)


def _stat_section(doc, title, df, cols, estimate, empty_text):
  doc.h(2, title)
  if df.empty:
    doc.p(empty_text)
    return
  notes = sorted(set(n for n in df.get("note", pd.Series(dtype=str)).fillna("") if n))
  if estimate not in df.columns or df[estimate].isna().all():
    doc.p("Not estimated: " + "; ".join(notes) + ".")
    return
  doc.table(_drop_empty(df, cols))
  if notes:
    doc.p("Not estimated where: " + "; ".join(notes) + ".")


def write_report(a, out_dir, source="results", notes: Sequence[str] = ()):
  """Writes the report of an `Analysis` into out_dir; returns {"markdown", "html", ...} paths.

  Args:
    a: the `analyze.Analysis` to report.
    out_dir: folder for report.md, report.html, figures/ and tables/ (created).
    source: the results path named in the report.
    notes: the caller's notes, plain text, each shown boxed under the title (HTML-escaped).
  """
  notes = _checked_notes(notes)
  os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
  _write_tables(a, os.path.join(out_dir, "tables"))
  s = a.summary
  doc = Doc()
  doc.h(1, "Transfer gain vs. linguistic distance from English")
  for note in notes:
    if note.strip():
      doc.note(note)
  doc.h(2, "Answer")
  doc.p(a.answer["text"])
  figs = os.path.join(out_dir, "figures")
  first = plots.gain_vs_distance(a.frame, a.primary, os.path.join(figs, f"gain_vs_{a.primary}.png"),
                                 slopes=a.slopes)
  doc.image(first and os.path.relpath(first, out_dir), _SCATTER_CAPTION.format(kind=a.primary))
  doc.p(f"Source: `{source}` ({s['n_rows']} rows, {s['n_runs']} runs). Every estimate, interval "
        "and p-value is in `report.json` with the inputs' provenance; every table is in `tables/` "
        "as CSV.")
  if a.notes:
    doc.h(2, "Read this first")
    doc.bullets(a.notes)
  doc.h(2, "Data")
  doc.table(pd.DataFrame([
      ("experiments", ", ".join(s["experiments"])),
      ("sizes (n_params)", ", ".join(f"{n} ({p:.3g}, log10 {np.log10(p):.2f})" for n, p in s["sizes"])),
      ("intermediates", ", ".join(s["intermediates"])),
      ("target tasks", ", ".join(s["target_tasks"])),
      ("languages", f"{len(s['languages'])}: {' '.join(s['languages'])}"),
      ("seeds", ", ".join(map(str, s["seeds"]))), ("splits", ", ".join(s["splits"])),
      ("matched gains (per seed)", str(len(a.gains.per_seed))),
      ("scores without a matching `none` run", str(len(a.gains.unmatched))),
  ], columns=["", "value"]))

  doc.h(2, "Definitions")
  doc.bullets([
      "**Task score** of a run in a language: the mean of its metrics marked `task_score` (QA: EM and F1).",
      f"**Gain**: task score with the intermediate task minus the task score with intermediate = "
      f"`{G.BASELINE}`, matched on ({', '.join(G.MATCH_KEYS)}), then averaged over seeds (the "
      "per-seed sd, min and max are in `tables/gains_by_language.csv`). Size enters as log10(n_params).",
  ] + [f"**{k} distance**: {D.DEFINITIONS[k]}." for k in D.DISTANCE_TYPES] + [
      "**Script**: Latin or not (covariate `latin`); **family**: the top Glottolog family "
      "(random effect). Both are tables in `xfer_t5x/analysis/languages.py`.",
  ])
  doc.h(3, "Estimators")
  doc.bullets([e.format(english="included" if a.include_english else
                        "left out (its gain is not cross-lingual transfer; its distance is 0)",
                        n_boot=a.n_boot, n_perm=a.n_perm) for e in ESTIMATORS])

  doc.h(2, "Macrolanguages")
  doc.p("URIEL holds eight of the languages both as a macrolanguage and as an individual language. "
        "Per distance type we take the code with more observed (not imputed) features of that type "
        "(family nodes for genetic); a tie goes to the macrolanguage code. Choice mode: "
        f"`{a.mode}`.")
  if a.macro_choices.empty:
    doc.p("None of the languages in these results is one of the eight macrolanguages.")
  else:
    doc.table(a.macro_choices)
    sens = a.sensitivity
    if sens.empty or not (sens["delta_rho"].notna().any() or sens["delta_slope"].notna().any()):
      doc.p("How much the results move with the other choice could not be computed here (too few "
            "languages for correlations or slopes).")
    else:
      max_abs = lambda x: np.nanmax(np.abs(x)) if x.notna().any() else np.nan  # noqa: E731
      doc.p(f"With the other code of every pair, Spearman's rho moves by at most "
            f"{max_abs(sens['delta_rho']):.3f} and the slope by at most "
            f"{max_abs(sens['delta_slope']):.3f} (per distance type below; full table in "
            "`tables/macrolanguage_sensitivity.csv`).")
      doc.table(sens.groupby("distance", as_index=False, sort=False).agg(
          max_abs_delta_rho=("delta_rho", max_abs), max_abs_delta_slope=("delta_slope", max_abs)))

  doc.h(2, "Gains")
  if a.gains.by_language.empty:
    doc.p(f"No gains: the results need runs with intermediate = `{G.BASELINE}` and runs with an "
          "intermediate task, matched on experiment, size, target task, split, language and seed.")
  else:
    bl = a.gains.by_language
    doc.table(bl.groupby(["intermediate", "size", "n_params", "target_task"], as_index=False).agg(
        mean_gain=("gain", "mean"), sd_over_languages=("gain", "std"), languages=("language", "nunique"),
        seeds=("n_seeds", "max")).sort_values(["intermediate", "n_params", "target_task"]))

  cols = ["intermediate", "size", "distance", "n_languages", "rho", "ci_low", "ci_high", "p_perm", "p_holm"]
  _stat_section(doc, "Spearman correlation of gain vs distance, per size", a.spearman, cols, "rho",
                "No correlations: no gains to correlate.")
  cols = ["intermediate", "size_a", "size_b", "distance", "n_languages", "rho_a", "rho_b", "delta",
          "ci_low", "ci_high", "p_boot", "p_holm"]
  _stat_section(doc, "Size effect: difference of correlations", a.size_effects, cols, "delta",
                "No size effect: the results need at least two sizes with gains.")
  cols = ["intermediate", "size", "distance", "n_languages", "n_obs", "slope", "se", "ci_low",
          "ci_high", "slope_per_sd", "ci_low_per_sd", "ci_high_per_sd", "p", "p_family", "p_holm"]
  _stat_section(doc, "Slope of gain on distance, per size (OLS, language-clustered SEs)", a.slopes,
                cols, "slope", "No slopes: no gains.")
  cols = ["intermediate", "size_a", "size_b", "distance", "n_languages", "diff", "se", "ci_low",
          "ci_high", "p", "p_family", "p_holm"]
  _stat_section(doc, "Slope difference between sizes (larger minus smaller)", a.slope_differences,
                cols, "diff", "No slope differences: the results need at least two sizes with gains.")

  doc.h(2, "Mixed-effects model")
  if not a.mixed:
    doc.p("Not fitted: no gains.")
  _mixed_fits(doc, a.mixed)
  if a.mixed_baseline:
    doc.h(2, "Sensitivity: the mixed model adjusted for the baseline score (biased; not a finding)")
    doc.p("The same model with the centred `none` score as a covariate. It is post-treatment for "
          "the gain (which subtracts that score) and falls with distance, so its distance "
          "coefficient is biased towards a distance effect; a large difference from the model "
          "above says how much the baseline's noise and its distance trend could matter.")
    _mixed_fits(doc, a.mixed_baseline)

  doc.h(2, "Figures")
  for kind in a.kinds[1:]:
    p = plots.gain_vs_distance(a.frame, kind, os.path.join(figs, f"gain_vs_{kind}.png"),
                               slopes=a.slopes)
    doc.image(p and os.path.relpath(p, out_dir), _SCATTER_CAPTION.format(kind=kind))
  for inter in sorted(a.frame["intermediate"].unique()):
    p = plots.task_panels(a.frame, a.primary, inter, os.path.join(figs, f"tasks_{_safe(inter)}_{a.primary}.png"))
    doc.image(p and os.path.relpath(p, out_dir), f"Per target task, intermediate {inter}: gain vs {a.primary} distance.")
  p = plots.heatmap(a.frame, a.primary, os.path.join(figs, f"heatmap_{a.primary}.png"))
  doc.image(p and os.path.relpath(p, out_dir), f"Gain by language (sorted by {a.primary} distance) and size.")
  if a.frame.empty:
    doc.p("No figures: no gains to plot.")

  doc.h(2, "Distances to English")
  doc.p(f"Primary: **{a.primary}** ({a.answer['why']}). The others are secondary: they are "
        "strongly correlated with each other and with the primary one over these languages "
        "(Spearman, below), so their results are not independent findings.")
  if not a.distance_correlations.empty:
    doc.table(a.distance_correlations.rename_axis("distance"))
  langs = sorted(set(s["languages"]) & set(a.distances.index))
  doc.table(a.distances.loc[langs, list(a.kinds) + ["script", "family"]])
  diagnostics = [f"{m.intermediate}, {m.distance}: {n}" for m in a.mixed + a.mixed_baseline
                 for n in m.diagnostics]
  doc.h(2, "Diagnostics")
  doc.bullets(diagnostics or ["No fitting warnings."])
  report_json.write(a, os.path.join(out_dir, "report.json"), source)
  md_path, html_path = os.path.join(out_dir, "report.md"), os.path.join(out_dir, "report.html")
  with open(md_path, "w", encoding="utf-8") as f:
    f.write(doc.markdown())
  with open(html_path, "w", encoding="utf-8") as f:
    f.write(doc.html("Transfer gain vs. linguistic distance from English"))
  return {"markdown": md_path, "html": html_path, "figures": figs, "tables": os.path.join(out_dir, "tables")}


def _checked_notes(notes):
  """notes as a list of strings; one bare string (a common slip) is an error, not its letters."""
  if isinstance(notes, str) or not all(isinstance(n, str) for n in notes):
    raise TypeError(f"report notes must be a sequence of strings (e.g. [text]), got {notes!r:.80}")
  return list(notes)


def _safe(name):
  return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def build_report(results_path, out_dir, notes: Sequence[str] = (), **analyze_kwargs):
  """Reads results (.sqlite/.db or .csv), analyses them, writes the report; returns the paths.

  `notes` go to `write_report` (shown under the title); `analyze_kwargs` to `analyze.analyze`.
  """
  notes = _checked_notes(notes)
  results = load_results(results_path)
  a = A.analyze(results, **analyze_kwargs)
  return write_report(a, out_dir, source=os.fspath(results_path), notes=notes)
