"""The estimators of stats.py against statsmodels/scipy and hand-checkable cases."""
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from xfer_t5x.analysis import stats as S


def _data(seed=0, n_lang=30, n_task=3):
  rng = np.random.default_rng(seed)
  d = rng.uniform(0.1, 0.5, n_lang)
  u = rng.normal(0, 1, n_lang)
  rows = [dict(language=f"l{i}", target_task=f"t{t}", x=d[i], gain=1 + t - 4 * d[i] + u[i] + rng.normal(0, 0.5))
          for i in range(n_lang) for t in range(n_task) if rng.random() < 0.8]
  return pd.DataFrame(rows)


def test_cr1_matches_statsmodels_cluster():
  df = _data()
  X = np.column_stack([np.ones(len(df)), df["x"]])
  fit = S.cluster_ols(df["gain"], X, df["language"], ["const", "x"], vcov="CR1")
  groups = pd.factorize(df["language"])[0]
  ref = sm.OLS(df["gain"].to_numpy(), X).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
  np.testing.assert_allclose(fit.params, ref.params, rtol=1e-10)
  np.testing.assert_allclose(fit.cov, ref.cov_params(), rtol=1e-8)
  est, se, lo, hi, p = fit.coef("x")
  np.testing.assert_allclose([lo, hi], ref.conf_int()[1], rtol=1e-8)
  assert p == pytest.approx(ref.pvalues[1], rel=1e-6)


def test_cr2_with_one_row_per_cluster_is_hc2_and_df_is_n_minus_1():
  df = _data(1).drop_duplicates("language")
  X = np.column_stack([np.ones(len(df)), df["x"]])
  fit = S.cluster_ols(df["gain"], X, df["language"], ["const", "x"])
  ref = sm.OLS(df["gain"].to_numpy(), X).fit(cov_type="HC2")
  np.testing.assert_allclose(fit.cov, ref.cov_params(), rtol=1e-8)
  # intercept only, singleton clusters: Bell-McCaffrey's degrees of freedom are exactly n - 1
  one = S.cluster_ols(df["gain"], np.ones((len(df), 1)), df["language"], ["const"])
  assert one.df[0] == pytest.approx(len(df) - 1)


def test_fit_slope_recovers_a_clear_slope_with_task_intercepts():
  df = _data(2, n_lang=60)
  fit = S.fit_slope(df, "x")
  est, se, lo, hi, _ = fit.coef("x")
  assert lo < -4 < hi and hi < 0
  assert fit.n_clusters == df["language"].nunique() and fit.names[:3] == ["intercept[t0]", "intercept[t1]", "intercept[t2]"]


def test_spearman_matches_scipy_and_permutation_p():
  rng = np.random.default_rng(3)
  x = rng.random(25)
  y = -x + rng.normal(0, 0.2, 25)
  rho, lo, hi, p, boots = S.spearman_ci(x, y, n_boot=500, n_perm=500, rng=rng)
  assert rho == pytest.approx(sps.spearmanr(x, y)[0])
  assert lo <= rho <= hi and hi < 0
  assert p == pytest.approx(1 / 501)  # no shuffle is as extreme as a strong correlation
  noise = rng.random(25)
  _, lo0, hi0, p0, _ = S.spearman_ci(x, noise, n_boot=500, n_perm=2000, rng=rng)
  ref = sps.spearmanr(x, noise)
  assert abs(p0 - ref.pvalue) < 0.06  # permutation and asymptotic p agree roughly
  assert lo0 < hi0


def test_holm_matches_statsmodels_and_table_grouping():
  rng = np.random.default_rng(4)
  for _ in range(3):
    p = rng.random(6) ** 3
    np.testing.assert_allclose(S.holm_adjust(p), multipletests(p, method="holm")[1])
  t = pd.DataFrame(dict(size=["a", "a", "b", "b"], p=[0.01, 0.04, 0.02, np.nan]))
  out = S.holm(t, ["size"], "p")
  np.testing.assert_allclose(out["p_holm"].to_numpy()[:3], [0.02, 0.04, 0.02])
  assert np.isnan(out["p_holm"].iloc[3])


def test_too_few_languages_give_notes_not_errors():
  frame = pd.DataFrame(dict(intermediate="mnli", size="tiny", n_params=1000, log10_params=3.0,
                            target_task="xnli", language=["de", "fr", "ja"], gain=[1.0, 2.0, 0.5],
                            featural=[0.18, 0.23, 0.41]))
  means = S.language_means(frame, ["featural"])
  sp = S.spearman_by_size(means, ["featural"], n_boot=10, n_perm=10)
  assert "too few languages (3" in sp["note"].iloc[0] and "rho" not in sp.columns
  sl = S.slopes_by_size(frame, ["featural"])
  assert "too few languages" in sl["note"].iloc[0]
