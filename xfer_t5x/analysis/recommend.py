"""Which intermediate task to use for a language the grid did not evaluate.

For each (intermediate task, model size) of the results, the gain of the languages that were
evaluated (averaged over seeds and over the language's target tasks, or for one target task) is
regressed on their distance to English (ordinary least squares over languages). The new
language's gain is predicted from its own distance, with the textbook prediction interval

    yhat +- t(n-2) * s * sqrt(1 + 1/n + (x0 - xbar)^2 / Sxx),

which holds the language's own deviation from the line as well as the line's uncertainty. The
intermediate tasks are ranked by predicted gain.

`validate` checks this on the results themselves, leaving one language out at a time: each
evaluated language is predicted from the others, and the predictions are compared with what was
observed (rank correlation of predicted and observed gains, coverage of the intervals, and how
often the best predicted intermediate task is the best observed one).
"""
import dataclasses
from typing import Dict, Optional

import numpy as np
import pandas as pd
from scipy import stats as sps

MIN_LANGUAGES = 4  # for a line and a residual variance with two degrees of freedom left


@dataclasses.dataclass(frozen=True)
class LineFit:
  intercept: float
  slope: float
  s: float        # residual standard deviation
  n: int
  x_mean: float
  sxx: float

  def predict(self, x0: float, level: float = 0.95):
    """(prediction, low, high) for a new language at distance x0."""
    y = self.intercept + self.slope * x0
    half = sps.t.ppf(0.5 + level / 2, self.n - 2) * self.s * np.sqrt(
        1 + 1 / self.n + (x0 - self.x_mean) ** 2 / self.sxx)
    return y, y - half, y + half


def fit_line(x, y) -> Optional[LineFit]:
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  ok = np.isfinite(x) & np.isfinite(y)
  x, y = x[ok], y[ok]
  n = len(x)
  if n < MIN_LANGUAGES or np.ptp(x) == 0:
    return None
  xm = x.mean()
  sxx = float(((x - xm) ** 2).sum())
  slope = float(((x - xm) * (y - y.mean())).sum() / sxx)
  intercept = float(y.mean() - slope * xm)
  resid = y - intercept - slope * x
  s = float(np.sqrt((resid ** 2).sum() / (n - 2)))
  return LineFit(intercept, slope, s, n, float(xm), sxx)


def language_gains(frame: pd.DataFrame, kind: str, target_task: Optional[str] = None):
  """One row per (intermediate, size, n_params, language): the gain averaged over the language's
  target tasks (or of `target_task` only) and its `kind` distance."""
  if target_task is not None:
    frame = frame[frame["target_task"] == target_task]
  return (frame.groupby(["intermediate", "size", "n_params", "language"], as_index=False)
          .agg(gain=("gain", "mean"), x=(kind, "first")))


def recommend(frame, kind: str, x0: float, target_task: Optional[str] = None,
              level: float = 0.95) -> pd.DataFrame:
  """Predicted gain of every (size, intermediate task) at distance x0, best first per size."""
  rows = []
  for (inter, size, n_params), part in language_gains(frame, kind, target_task).groupby(
      ["intermediate", "size", "n_params"]):
    fit = fit_line(part["x"], part["gain"])
    row = dict(size=size, n_params=n_params, intermediate=inter, n_languages=len(part))
    if fit is None:
      row.update(note=f"too few languages ({len(part)}; need {MIN_LANGUAGES})")
    else:
      y, lo, hi = fit.predict(x0, level)
      row.update(predicted_gain=y, pi_low=lo, pi_high=hi, slope=fit.slope, note="")
    rows.append(row)
  out = pd.DataFrame(rows)
  if out.empty or "predicted_gain" not in out:
    return out
  out = out.sort_values(["n_params", "predicted_gain"], ascending=[True, False],
                        na_position="last").reset_index(drop=True)
  out["rank"] = out.groupby("size")["predicted_gain"].rank(ascending=False, method="min")
  return out


def leave_one_language_out(frame, kind: str, target_task: Optional[str] = None,
                           level: float = 0.95) -> pd.DataFrame:
  """Each language's gain for each (size, intermediate), predicted from the other languages."""
  lg = language_gains(frame, kind, target_task)
  rows = []
  for (inter, size, n_params), part in lg.groupby(["intermediate", "size", "n_params"]):
    for i, r in enumerate(part.itertuples(index=False)):
      rest = part.drop(part.index[i])
      fit = fit_line(rest["x"], rest["gain"])
      if fit is None:
        continue
      y, lo, hi = fit.predict(r.x, level)
      rows.append(dict(size=size, n_params=n_params, intermediate=inter, language=r.language,
                       x=r.x, observed=r.gain, predicted=y, pi_low=lo, pi_high=hi,
                       covered=bool(lo <= r.gain <= hi)))
  return pd.DataFrame(rows)


def validate(frame, kind: str, target_task: Optional[str] = None,
             level: float = 0.95) -> Dict[str, object]:
  """Leave-one-language-out summary per size: Spearman of predicted vs observed gains over
  (language, intermediate) pairs, interval coverage, and per language how the ranking of the
  intermediate tasks agrees (top-1 agreement, mean Spearman over languages)."""
  lolo = leave_one_language_out(frame, kind, target_task, level)
  sizes = []
  if lolo.empty:
    return {"per_size": sizes, "predictions": lolo}
  for (size, n_params), part in lolo.groupby(["size", "n_params"], sort=False):
    rho = sps.spearmanr(part["predicted"], part["observed"])[0] if len(part) > 2 else np.nan
    top1, within = [], []
    for _, lang in part.groupby("language"):
      if lang["intermediate"].nunique() < 2:
        continue
      top1.append(lang.loc[lang["predicted"].idxmax(), "intermediate"]
                  == lang.loc[lang["observed"].idxmax(), "intermediate"])
      if lang["intermediate"].nunique() > 2:
        within.append(sps.spearmanr(lang["predicted"], lang["observed"])[0])
    sizes.append(dict(size=size, n_params=int(n_params), n_predictions=len(part),
                      n_languages=int(part["language"].nunique()),
                      spearman=float(rho), coverage=float(part["covered"].mean()),
                      level=level,
                      top1_agreement=float(np.mean(top1)) if top1 else np.nan,
                      mean_within_language_spearman=(float(np.nanmean(within))
                                                     if within else np.nan)))
  sizes.sort(key=lambda r: r["n_params"])
  return {"per_size": sizes, "predictions": lolo}
