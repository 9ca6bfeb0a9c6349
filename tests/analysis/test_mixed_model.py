"""The mixed model: terms the data cannot identify are dropped and named; failures fall back."""
import numpy as np

from xfer_t5x.analysis import distances as D
from xfer_t5x.analysis import gains as G
from xfer_t5x.analysis import mixed_model as M
from xfer_t5x.analysis import simulate as sim
from xfer_t5x.analysis import stats as S


def _frame(sizes, slopes, seed=3):
  table = D.distance_table()
  r = sim.simulate_results(seed, slopes, sizes=sizes, tasks=("xnli", "panx"), n_seeds=1, dist_table=table)
  return S.analysis_frame(G.compute_gains(r).by_language, table, ["featural"])


def test_one_size_drops_size_terms_and_says_so():
  m = M.mixed_model(_frame({"base": 582_000_000}, {"base": 8.0}, seed=4), "featural")
  assert m.method == "MixedLM (REML)"
  assert list(m.coefficients["term"]) == ["Intercept", "distance", "latin"]
  assert any("one model size only" in n for n in m.notes)
  assert m.coefficients.set_index("term").loc["distance", "coef"] < 0
  assert {"language", "task", "residual"} <= set(m.variance_components)
  # here the family variance sits on the boundary and the full fit does not converge: said so
  assert "family" in m.variance_components or any("without the family" in n for n in m.notes)


def test_failed_fits_fall_back_with_reasons(monkeypatch):
  frame = _frame({"small": 300_000_000, "xxl": 12_900_000_000}, {"small": 8.0, "xxl": 2.0})

  def boom(df, formula, groups):
    raise np.linalg.LinAlgError("Singular matrix")

  monkeypatch.setattr(M, "_fit_mixed", boom)
  m = M.mixed_model(frame, "featural")
  assert m.method == "OLS, language-clustered SEs"
  assert "distance:log10_params_c" in list(m.coefficients["term"])
  assert sum("failed (Singular matrix; details under Diagnostics)" in n for n in m.notes) == 2
  assert sum("failed: Singular matrix" in n for n in m.diagnostics) == 2  # full, then no family
  assert any("fell back to OLS" in n for n in m.notes)
  est = m.coefficients.set_index("term").loc["distance:log10_params_c"]
  assert est["ci_low"] < est["coef"] < est["ci_high"]
