"""Calibration on simulated grids with a planted effect (CONTRACTS.md, "Numbers in tests").

gain = a - b[size] * distance + noise, with b larger for the small model (simulate.py). The
estimators checked are the ones the report uses: `stats.slopes_by_size` (OLS of gain on distance
with task intercepts, language-clustered CR2 errors) and `stats.slope_differences`, run on results
tables through `compute_gains` (the mixed model: test_mixed_calibration.py).
"""
import numpy as np
import pytest

from xfer_t5x.analysis import analyze as A
from xfer_t5x.analysis import distances as D
from xfer_t5x.analysis import gains as G
from xfer_t5x.analysis import simulate as sim
from xfer_t5x.analysis import stats as S

B = {"small": 10.0, "xxl": 3.0}
NULL = {"small": 0.0, "xxl": 0.0}
KIND = "featural"


@pytest.fixture(scope="module")
def table():
  return D.distance_table()


def _frame(results, table):
  return S.analysis_frame(G.compute_gains(results).by_language, table, [KIND])


def _slopes(results, table):
  return S.slopes_by_size(_frame(results, table), [KIND]).set_index("size")


def _difference(results, table):
  (row,) = S.slope_differences(_frame(results, table), [KIND]).to_dict(orient="records")
  return row


def test_planted_effect_is_recovered_by_every_estimator(table):
  results = sim.simulate_results(2024, B, dist_table=table)
  a = A.analyze(results, kinds=(KIND, "syntactic"), n_boot=400, n_perm=400, dist_table=table)
  sl = a.slopes[a.slopes["distance"] == KIND].set_index("size")
  for size, b in B.items():  # sign and size of b, within the reported interval
    assert sl.loc[size, "ci_low"] <= -b <= sl.loc[size, "ci_high"], size
  assert sl.loc["small", "ci_high"] < 0
  assert sl.loc["small", "slope"] < sl.loc["xxl", "slope"]
  diff = a.slope_differences.set_index("distance").loc[KIND]
  assert diff["ci_low"] <= B["small"] - B["xxl"] <= diff["ci_high"] and diff["ci_low"] > 0
  sp = a.spearman[a.spearman["distance"] == KIND].set_index("size")
  assert sp.loc["small", "ci_high"] < 0 and sp.loc["small", "p_perm"] < 0.05
  eff = a.size_effects.set_index("distance").loc[KIND]
  assert eff["delta"] > 0
  (m,) = a.mixed
  assert m.method == "MixedLM (REML)", m.notes
  coef = m.coefficients.set_index("term")
  # slope at the mean log size, and its change per decade of parameters: (10 - 3) / 1.632
  assert coef.loc["distance", "coef"] < 0
  lo, hi = coef.loc["distance:log10_params_c", ["ci_low", "ci_high"]]
  assert lo <= 7.0 / np.log10(12.9e9 / 3e8) <= hi
  assert coef.loc["distance:log10_params_c", "coef"] > 0


@pytest.mark.slow
def test_coverage_and_false_positive_rate_over_100_grids(table):
  n = 100
  covered = {s: 0 for s in B}
  false_pos = {s: 0 for s in B}
  diff_covered = diff_false_pos = 0
  true_diff = B["small"] - B["xxl"]  # slope(xxl) - slope(small) = -3 - (-10)
  for i in range(n):
    planted = sim.simulate_results(i, B, dist_table=table)
    sl = _slopes(planted, table)
    for size, b in B.items():
      covered[size] += bool(sl.loc[size, "ci_low"] <= -b <= sl.loc[size, "ci_high"])
    d = _difference(planted, table)
    diff_covered += bool(d["ci_low"] <= true_diff <= d["ci_high"])
    null = sim.simulate_results(100_000 + i, NULL, dist_table=table)
    sl0 = _slopes(null, table)
    for size in B:
      false_pos[size] += bool(not sl0.loc[size, "ci_low"] <= 0 <= sl0.loc[size, "ci_high"])
    d0 = _difference(null, table)
    diff_false_pos += bool(not d0["ci_low"] <= 0 <= d0["ci_high"])
  for size in B:
    assert 0.89 <= covered[size] / n <= 0.99, (size, covered)
    assert false_pos[size] / n <= 0.10, (size, false_pos)
  # the size difference: the report's answer to "does the dependence shrink with size"
  assert 0.89 <= diff_covered / n <= 0.99, diff_covered
  assert diff_false_pos / n <= 0.10, diff_false_pos
