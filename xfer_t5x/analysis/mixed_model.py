"""The mixed-effects model of gain on distance, model size and script.

    gain ~ distance * log10_params_c + latin
           + (1 | language) + (1 | target task) + (1 | family)

over (language, target task, size) rows for one intermediate task (gains averaged over seeds).
`log10_params_c` is centred, so the `distance` coefficient is the slope at the mean log size and
`distance:log10_params_c` says how the slope changes per tenfold more parameters. The three random
intercepts are crossed, fitted in statsmodels' MixedLM as variance components of one all-covering
group (REML).

The `none` run's score (the baseline) is not a covariate of the primary model: the gain is that
score subtracted from the treated one, so the two share the baseline's noise, and the baseline
itself falls with distance; adjusting for it manufactures a distance effect (on simulated grids
with no effect it finds one nearly every time; tests/analysis/test_mixed_calibration.py).
`baseline=True` fits it with the centred baseline score as a stated sensitivity analysis only.

Terms that the data cannot identify are dropped and named (one size: no size terms; one script:
no `latin`; a grouping with one level: no random effect). If the fit fails or does not converge,
it falls back to a model without the family component, then to OLS with the same fixed effects
and language-clustered standard errors, and says why.
"""
import dataclasses
import warnings

import numpy as np
import pandas as pd
import patsy  # statsmodels' formula engine
import statsmodels.formula.api as smf
from scipy import stats as sps

from xfer_t5x.analysis import stats as S

MIN_ROWS = 10


@dataclasses.dataclass
class MixedResult:
  intermediate: str
  distance: str
  method: str               # "MixedLM (REML)", "OLS, language-clustered SEs" or "not fitted"
  formula: str
  coefficients: pd.DataFrame  # term, coef, se, ci_low, ci_high, p
  variance_components: dict
  notes: list
  diagnostics: list = dataclasses.field(default_factory=list)  # the optimizer's warnings


def _prepare(frame, kind):
  df = frame[np.isfinite(frame[kind]) & np.isfinite(frame["gain"])].copy()
  df["distance"] = df[kind].astype(np.float64)
  df["log10_params_c"] = df["log10_params"] - df["log10_params"].mean()
  df["baseline_c"] = df["baseline_score"] - df["baseline_score"].mean()
  df["latin"] = df["latin"].astype(np.float64)
  df["task"] = df["target_task"].astype(str)
  df["family"] = df["family"].astype(str)
  df["language"] = df["language"].astype(str)
  df["all"] = 1
  return df


def _fixed_terms(df, notes, baseline):
  terms = ["distance"]
  if df["log10_params"].nunique() > 1:
    terms = ["distance * log10_params_c"]
  else:
    notes.append("one model size only: no log10(params) or distance x size terms")
  if df["latin"].nunique() > 1:
    terms.append("latin")
  else:
    notes.append("all languages share one script class: no `latin` term")
  if baseline and df["baseline_c"].abs().max() > 0:
    terms.append("baseline_c")
  return "gain ~ " + " + ".join(terms)


def _coef_table(names, est, se, dist):
  est, se = np.asarray(est, float), np.asarray(se, float)
  q = dist.ppf(0.975)
  with np.errstate(invalid="ignore", divide="ignore"):
    p = 2 * dist.sf(np.abs(est / se))
  return pd.DataFrame(dict(term=names, coef=est, se=se, ci_low=est - q * se, ci_high=est + q * se, p=p))


def _fit_mixed(df, formula, groups):
  vc = {g: f"0 + C({g})" for g in groups}
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = smf.mixedlm(formula, df, groups="all", re_formula="0", vc_formula=vc)
    res = model.fit(reml=True)
  msgs = sorted({str(w.message).splitlines()[0] for w in caught})
  if not res.converged:
    raise RuntimeError("did not converge" + (f" ({'; '.join(msgs)})" if msgs else ""))
  fe = res.fe_params
  se = res.bse_fe
  if not np.all(np.isfinite(se)):
    raise RuntimeError("the fixed-effect covariance is singular (standard errors not finite)")
  table = _coef_table(list(fe.index), fe.values, se.values, sps.norm)
  vcs = dict(zip(model.exog_vc.names, np.asarray(res.vcomp, float)))
  vcs["residual"] = float(res.scale)
  return table, vcs, msgs


BASELINE_NOTE = ("sensitivity analysis only: adjusting for the baseline (`none`) score, which "
                 "shares its noise with the gain and falls with distance, biases the distance "
                 "slope (a post-treatment covariate); not a finding")


def mixed_model(frame, kind, baseline=False):
  """Fits the model for one distance type on an analysis frame of one intermediate task
  (`baseline`: also adjust for the centred baseline score, as a sensitivity analysis)."""
  notes = [BASELINE_NOTE] if baseline else []
  inter = ", ".join(sorted(frame["intermediate"].astype(str).unique()))
  df = _prepare(frame, kind)
  formula = _fixed_terms(df, notes, baseline)
  if len(df) < MIN_ROWS or df["language"].nunique() < S.MIN_LANGUAGES:
    return MixedResult(inter, kind, "not fitted", formula, pd.DataFrame(), {}, notes + [
        f"too little data ({len(df)} rows, {df['language'].nunique()} languages; need "
        f"{MIN_ROWS} rows and {S.MIN_LANGUAGES} languages)"])
  groups = [g for g in ("language", "task", "family") if df[g].nunique() > 1]
  dropped = [g for g in ("language", "task", "family") if g not in groups]
  if dropped:
    notes.append(f"random effect(s) {dropped} dropped: one level only")
  diagnostics = []
  attempts = [groups]
  if "family" in groups:
    attempts.append([g for g in groups if g != "family"])
  for attempt in attempts:
    if not attempt:
      break
    try:
      table, vcs, msgs = _fit_mixed(df, formula, attempt)
    except (np.linalg.LinAlgError, ValueError, RuntimeError, ZeroDivisionError) as e:
      notes.append(f"MixedLM with random effects {attempt} failed ({str(e).split(' (')[0]}; "
                   "details under Diagnostics)")
      diagnostics.append(f"MixedLM with random effects {attempt} failed: {e}")
      continue
    if attempt != groups:
      notes.append(f"fitted without the family component, random effects {attempt}")
    re = " + ".join(f"(1 | {g})" for g in attempt)
    return MixedResult(inter, kind, "MixedLM (REML)", f"{formula} + {re}", table, vcs, notes,
                       diagnostics + [f"statsmodels: {m}" for m in msgs])
  # fall back: OLS with the same fixed effects, language-clustered SEs
  y, X = patsy.dmatrices(formula, df, return_type="dataframe")
  try:
    fit = S.cluster_ols(y.iloc[:, 0], X.to_numpy(), df["language"], list(X.columns))
  except ValueError as e:
    return MixedResult(inter, kind, "not fitted", formula, pd.DataFrame(), {}, notes + [str(e)])
  se = np.sqrt(np.diag(fit.cov))
  table = _coef_table(fit.names, fit.params, se, sps.t(fit.df))
  notes.append("fell back to OLS with language-clustered standard errors (no random effects)")
  return MixedResult(inter, kind, "OLS, language-clustered SEs", formula, table, {}, notes,
                     diagnostics)
