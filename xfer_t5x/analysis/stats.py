"""Statistics of gain vs. distance, per model size.

Estimators (the report uses exactly these; the calibration test checks `slopes_by_size`):

- Analysis frame: one row per (intermediate, size, target task, language): the gain averaged
  over seeds (`gains.py`), joined with the language's distances to English. English is left out
  by default (its gain is not cross-lingual transfer, and its distance is 0 on every measure).
- Spearman, per size: over languages, of the language's gain (each (size, task)'s mean gain over
  its languages subtracted first, then averaged over the language's tasks, so that tasks covering
  different languages do not pass for a language effect) vs. distance. 95% CI: percentile
  bootstrap over languages; p: two-sided permutation test (distance labels shuffled).
- Size effect: rho(larger size) - rho(smaller size), bootstrapped over the same resampled
  languages for both sizes (languages present in both).
- Slope, per size: OLS of gain on distance over (language, task) rows with one intercept per
  task; standard errors clustered by language (CR2, Bell-McCaffrey, with their degrees of
  freedom; see `cluster_ols`). Slope difference between two sizes: the same model on both sizes, with task x size
  intercepts and a distance x size term.
- Holm correction across distance types, within each (intermediate, size) or size pair
  (`p_holm`), and across the whole family of slope and slope-difference tests of a report (all
  distances x sizes x intermediate tasks: `p_family`, `holm_across`).
- Slopes are also given per standard deviation of the distance over the fit's languages
  (`slope_per_sd`), so that distance types on different scales can be compared.
"""
import dataclasses
import itertools

import numpy as np
import pandas as pd
from scipy import stats as sps

from xfer_t5x.analysis import languages as L

MIN_LANGUAGES = 5


# --------------------------------------------------------------------------- frames
def analysis_frame(by_language, dist_table, kinds, include_english=False):
  """Seed-averaged gains joined with distances, script and family (one row per language x task)."""
  cols = ["intermediate", "size", "n_params", "log10_params", "target_task", "language", "gain",
          "gain_sd", "n_seeds", "baseline_score"]
  df = by_language[cols].copy()
  if not include_english:
    df = df[df["language"] != L.REFERENCE]
  unknown = sorted(set(df["language"]) - set(dist_table.index))
  if unknown:
    df = df[~df["language"].isin(unknown)]
  d = dist_table[list(kinds) + ["latin", "family"]]
  df = df.join(d, on="language")
  df.attrs["unknown_languages"] = unknown
  return df.reset_index(drop=True)


def language_means(frame, kinds, center_tasks=True):
  """Per (intermediate, size, language): mean over tasks of the (task-centred) gain."""
  df = frame.copy()
  if center_tasks and len(df):
    df["gain"] = df["gain"] - df.groupby(["intermediate", "size", "target_task"])["gain"].transform("mean")
  keys = ["intermediate", "size", "n_params", "language"]
  agg = {"gain": ("gain", "mean"), "n_tasks": ("target_task", "nunique")}
  agg.update({k: (k, "first") for k in kinds})
  return df.groupby(keys, as_index=False).agg(**agg)


def _sizes(df):
  """Sizes sorted by n_params: list of (size, n_params)."""
  return sorted(df[["size", "n_params"]].drop_duplicates().itertuples(index=False, name=None),
                key=lambda t: (t[1], t[0]))


# --------------------------------------------------------------------------- OLS, clustered
@dataclasses.dataclass
class OLSFit:
  params: np.ndarray
  cov: np.ndarray
  names: list
  df: np.ndarray     # degrees of freedom for t, per coefficient
  n_obs: int
  n_clusters: int

  def coef(self, name, level=0.95):
    """(estimate, se, ci_low, ci_high, p) of one coefficient."""
    i = self.names.index(name)
    est, se, df = float(self.params[i]), float(np.sqrt(self.cov[i, i])), float(self.df[i])
    t = sps.t.ppf(0.5 + level / 2, df)
    p = float(2 * sps.t.sf(abs(est / se), df)) if se > 0 else float("nan")
    return est, se, est - t * se, est + t * se, p


def cluster_ols(y, X, clusters, names, vcov="CR2"):
  """OLS with a cluster-robust covariance and t-based inference.

  vcov="CR2" (default): Bell and McCaffrey's bias-reduced sandwich (each cluster's residuals
  scaled by (I - H_gg)^(-1/2)) with their Satterthwaite degrees of freedom per coefficient
  (Imbens and Kolesar 2016). With ~50 languages of unequal leverage as clusters, the plain
  sandwich with t(G-1) covers about 93% where 95% is asked; this keeps it near 95%.
  vcov="CR1": G/(G-1) (N-1)/(N-K) times the plain sandwich, t with G-1 df (Stata's and
  statsmodels' default).
  """
  y, X = np.asarray(y, np.float64), np.asarray(X, np.float64)
  n, k = X.shape
  codes, groups = pd.factorize(np.asarray(clusters))
  g = len(groups)
  if g < 3 or n <= k:
    raise ValueError(f"too little data for clustered OLS ({n} rows, {k} terms, {g} clusters)")
  xtx_inv = np.linalg.pinv(X.T @ X)
  beta = xtx_inv @ X.T @ y
  resid = y - X @ beta
  scores = np.zeros((g, k))
  if vcov == "CR1":
    np.add.at(scores, codes, X * resid[:, None])
    cov = g / (g - 1) * (n - 1) / (n - k) * xtx_inv @ (scores.T @ scores) @ xtx_inv
    return OLSFit(beta, cov, list(names), np.full(k, g - 1.0), n, g)
  if vcov != "CR2":
    raise ValueError(f"unknown vcov {vcov!r}; use 'CR2' or 'CR1'")
  m = np.eye(n) - X @ xtx_inv @ X.T
  gmat = np.zeros((k, n, g))  # per coefficient, Bell-McCaffrey's G matrix (columns: clusters)
  for j in range(g):
    rows = np.flatnonzero(codes == j)
    xg = X[rows]
    w, v = np.linalg.eigh(m[np.ix_(rows, rows)])
    a = (v * np.where(w > 1e-10, 1.0 / np.sqrt(np.clip(w, 1e-10, None)), 0.0)) @ v.T
    axb = a @ xg @ xtx_inv                      # [n_g, k]
    scores[j] = axb.T @ resid[rows]             # (X'X)^-1 X_g' A_g e_g
    gmat[:, :, j] = (m[:, rows] @ axb).T
  cov = scores.T @ scores
  gg = np.transpose(gmat, (0, 2, 1)) @ gmat
  with np.errstate(invalid="ignore", divide="ignore"):
    df = np.einsum("kjj->k", gg) ** 2 / np.einsum("kji,kji->k", gg, gg)
  df = np.where(np.isfinite(df), np.maximum(df, 1.0), g - 1.0)
  return OLSFit(beta, cov, list(names), df, n, g)


def _dummies(values, prefix):
  codes, levels = pd.factorize(np.asarray(values), sort=True)
  return np.eye(len(levels))[codes], [f"{prefix}[{v}]" for v in levels]


def fit_slope(df, x, y="gain", cluster="language", fixed_effects=("target_task",)):
  """OLS of y on x with one intercept per fixed-effect cell, SEs clustered by `cluster`."""
  if fixed_effects and len(df):
    cells = df[list(fixed_effects)].astype(str).agg("|".join, axis=1)
    D, names = _dummies(cells, "intercept")
  else:
    D, names = np.ones((len(df), 1)), ["intercept"]
  X = np.column_stack([D, df[x].to_numpy(np.float64)])
  return cluster_ols(df[y], X, df[cluster], names + [x])


def _slope_row(fit, name, level):
  est, se, lo, hi, p = fit.coef(name, level)
  return dict(slope=est, se=se, ci_low=lo, ci_high=hi, p=p, n_obs=fit.n_obs,
              n_languages=fit.n_clusters)


def slopes_by_size(frame, kinds, level=0.95):
  """Per (intermediate, size, distance): the slope of gain on distance (see module docstring)."""
  out = []
  for (inter, size, n_params), part in frame.groupby(["intermediate", "size", "n_params"]):
    for kind in kinds:
      sub = part[np.isfinite(part[kind]) & np.isfinite(part["gain"])]
      row = dict(intermediate=inter, size=size, n_params=n_params, distance=kind)
      n_lang = sub["language"].nunique()
      if n_lang < MIN_LANGUAGES or sub[kind].nunique() < 2:
        row.update(n_languages=n_lang, note=f"too few languages ({n_lang}; need {MIN_LANGUAGES})")
      else:
        row.update(_slope_row(fit_slope(sub, kind), kind, level), note="")
        # per SD of the distance over the fit's languages: comparable across distance types
        sd = float(sub.groupby("language")[kind].first().std(ddof=1))
        row.update(distance_sd=sd, slope_per_sd=row["slope"] * sd,
                   ci_low_per_sd=row["ci_low"] * sd, ci_high_per_sd=row["ci_high"] * sd)
      out.append(row)
  return holm(pd.DataFrame(out), ["intermediate", "size"], "p")


def slope_differences(frame, kinds, level=0.95):
  """Per size pair (smaller a, larger b): slope_b - slope_a, clustered by language."""
  out = []
  for inter, part in frame.groupby("intermediate"):
    for (sa, na), (sb, nb) in itertools.combinations(_sizes(part), 2):
      two = part[part["size"].isin([sa, sb])]
      for kind in kinds:
        sub = two[np.isfinite(two[kind]) & np.isfinite(two["gain"])]
        row = dict(intermediate=inter, size_a=sa, size_b=sb, distance=kind)
        n_lang = sub["language"].nunique()
        if n_lang < MIN_LANGUAGES or sub["size"].nunique() < 2:
          row.update(n_languages=n_lang, note=f"too few languages ({n_lang}; need {MIN_LANGUAGES})")
          out.append(row)
          continue
        cells = sub["size"].astype(str) + "|" + sub["target_task"].astype(str)
        D, names = _dummies(cells, "intercept")
        is_b = (sub["size"] == sb).to_numpy(np.float64)
        dist = sub[kind].to_numpy(np.float64)
        fit = cluster_ols(sub["gain"], np.column_stack([D, dist, dist * is_b]), sub["language"],
                          names + [kind, "diff"])
        est, se, lo, hi, p = fit.coef("diff", level)
        row.update(diff=est, se=se, ci_low=lo, ci_high=hi, p=p, n_languages=fit.n_clusters, note="")
        out.append(row)
  return holm(pd.DataFrame(out), ["intermediate", "size_a", "size_b"], "p")


# --------------------------------------------------------------------------- Spearman
def _rank_corr_rows(rx, ry):
  """Pearson correlation of each row pair of rank matrices (NaN for a constant row)."""
  rx = rx - rx.mean(axis=-1, keepdims=True)
  ry = ry - ry.mean(axis=-1, keepdims=True)
  den = np.sqrt((rx * rx).sum(-1) * (ry * ry).sum(-1))
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(den > 0, (rx * ry).sum(-1) / np.where(den > 0, den, 1), np.nan)


def spearman_ci(x, y, n_boot=1000, n_perm=1000, level=0.95, rng=None, boot_idx=None):
  """(rho, ci_low, ci_high, p_perm, bootstrap rhos) of x vs y; percentile bootstrap CI."""
  rng = rng if rng is not None else np.random.default_rng(0)
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  n = len(x)
  rx, ry = sps.rankdata(x), sps.rankdata(y)
  rho = float(_rank_corr_rows(rx, ry))
  idx = boot_idx if boot_idx is not None else rng.integers(0, n, size=(n_boot, n))
  boots = _rank_corr_rows(sps.rankdata(x[idx], axis=1), sps.rankdata(y[idx], axis=1))
  ok = boots[np.isfinite(boots)]
  a = (1 - level) / 2
  lo, hi = (np.quantile(ok, [a, 1 - a]) if len(ok) else (np.nan, np.nan))
  perms = np.argsort(rng.random((n_perm, n)), axis=1)
  null = _rank_corr_rows(rx[perms], np.broadcast_to(ry, (n_perm, n)))
  p = (1 + np.sum(np.abs(null) >= abs(rho) - 1e-12)) / (n_perm + 1) if np.isfinite(rho) else np.nan
  return rho, float(lo), float(hi), float(p), boots


def spearman_by_size(means, kinds, n_boot=1000, n_perm=1000, level=0.95, seed=0):
  """Per (intermediate, size, distance): Spearman of language gain vs distance, CI, p, Holm p."""
  out = []
  for (inter, size, n_params), part in means.groupby(["intermediate", "size", "n_params"]):
    for k_i, kind in enumerate(kinds):
      sub = part[np.isfinite(part[kind]) & np.isfinite(part["gain"])]
      row = dict(intermediate=inter, size=size, n_params=n_params, distance=kind,
                 n_languages=len(sub))
      if len(sub) < MIN_LANGUAGES:
        row["note"] = f"too few languages ({len(sub)}; need {MIN_LANGUAGES})"
      else:
        rng = np.random.default_rng([seed, k_i, int(n_params) % (2**31)])
        rho, lo, hi, p, _ = spearman_ci(sub[kind], sub["gain"], n_boot, n_perm, level, rng)
        row.update(rho=rho, ci_low=lo, ci_high=hi, p_perm=p, note="")
      out.append(row)
  return holm(pd.DataFrame(out), ["intermediate", "size"], "p_perm")


def size_effects(means, kinds, n_boot=1000, level=0.95, seed=0):
  """Per size pair (a smaller, b larger): rho_b - rho_a, bootstrapped over the same languages."""
  out = []
  for inter, part in means.groupby("intermediate"):
    for (sa, _), (sb, _) in itertools.combinations(_sizes(part), 2):
      for k_i, kind in enumerate(kinds):
        a = part[part["size"] == sa].set_index("language")
        b = part[part["size"] == sb].set_index("language")
        common = sorted(set(a.index[np.isfinite(a["gain"]) & np.isfinite(a[kind])])
                        & set(b.index[np.isfinite(b["gain"]) & np.isfinite(b[kind])]))
        row = dict(intermediate=inter, size_a=sa, size_b=sb, distance=kind, n_languages=len(common))
        if len(common) < MIN_LANGUAGES:
          row["note"] = f"too few shared languages ({len(common)}; need {MIN_LANGUAGES})"
          out.append(row)
          continue
        rng = np.random.default_rng([seed, k_i, 7])
        idx = rng.integers(0, len(common), size=(n_boot, len(common)))
        x = a.loc[common, kind].to_numpy(np.float64)
        ra, *_, ba = spearman_ci(x, a.loc[common, "gain"], n_boot, 1, level, rng, idx)
        rb, *_, bb = spearman_ci(x, b.loc[common, "gain"], n_boot, 1, level, rng, idx)
        d = bb - ba
        d = d[np.isfinite(d)]
        q = (1 - level) / 2
        lo, hi = np.quantile(d, [q, 1 - q]) if len(d) else (np.nan, np.nan)
        p = min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))) if len(d) else np.nan
        row.update(rho_a=ra, rho_b=rb, delta=rb - ra, ci_low=float(lo), ci_high=float(hi),
                   p_boot=float(p), note="")
        out.append(row)
  return holm(pd.DataFrame(out), ["intermediate", "size_a", "size_b"], "p_boot")


# --------------------------------------------------------------------------- Holm
def holm(table, by, p_col):
  """Adds `p_holm`: Holm-adjusted `p_col` across distance types within each `by` group."""
  if table.empty or p_col not in table.columns:
    if not table.empty:
      table["p_holm"] = np.nan
    return table
  table = table.copy()
  table["p_holm"] = np.nan
  for _, idx in table.groupby(by).groups.items():
    p = table.loc[idx, p_col]
    ok = p.notna()
    if ok.any():
      table.loc[p[ok].index, "p_holm"] = holm_adjust(p[ok].to_numpy())
  return table


def holm_across(tables, p_col="p", out_col="p_family"):
  """Adds `out_col` to each table: Holm over every p-value of all the tables together (one
  family of tests); returns the tables in order."""
  sizes = [len(t) if p_col in t.columns else 0 for t in tables]
  ps = np.concatenate([t[p_col].to_numpy(np.float64) if n else np.zeros(0)
                       for t, n in zip(tables, sizes)]) if tables else np.zeros(0)
  adj = np.full(len(ps), np.nan)
  ok = np.isfinite(ps)
  if ok.any():
    adj[ok] = holm_adjust(ps[ok])
  out, start = [], 0
  for t, n in zip(tables, sizes):
    t = t.copy()
    if n:
      t[out_col] = adj[start:start + n]
    elif not t.empty:
      t[out_col] = np.nan
    start += n
    out.append(t)
  return out


def holm_adjust(p):
  """Holm's step-down adjusted p-values: max over j <= i of min(1, (m - j) p_(j)), in input order."""
  p = np.asarray(p, np.float64)
  m = len(p)
  order = np.argsort(p, kind="stable")
  adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
  out = np.empty(m)
  out[order] = adj
  return out
