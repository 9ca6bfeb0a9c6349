"""`recommend`: predicted gains for a language the grid did not evaluate, validated by leaving
one language out on a planted grid whose intermediate tasks' lines cross."""
import json

import numpy as np
import pytest
from scipy import stats as sps

from xfer_t5x import cli
from xfer_t5x.analysis import distances as D
from xfer_t5x.analysis import gains as G
from xfer_t5x.analysis import recommend as R
from xfer_t5x.analysis import simulate as sim
from xfer_t5x.analysis import stats as S

KIND = "syntactic"
# (extra intercept, extra slope): mnli best near English, hellaswag best far from it
EFFECTS = {"mnli": (6.0, 20.0), "squad_v2": (3.0, 8.0), "hellaswag": (0.0, 0.0)}
SLOPES = {"small": 4.0, "xxl": 1.0}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
  table = D.distance_table()
  results = sim.simulate_results(5, SLOPES, distance=KIND, tasks=("xnli", "panx", "xquad"),
                                 intermediates=tuple(EFFECTS), intermediate_effects=EFFECTS,
                                 task_sd=0.0, dist_table=table)  # the planted lines exactly
  path = tmp_path_factory.mktemp("rec") / "results.csv"
  results.to_csv(path, index=False)
  frame = S.analysis_frame(G.compute_gains(results).by_language, table, [KIND])
  return frame, path


def _planted_gain(inter, size, x):
  a_i, b_i = EFFECTS[inter]
  return 2.0 + a_i - (SLOPES[size] + b_i) * x  # simulate's a = 2


def test_prediction_interval_is_the_textbook_one():
  x = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
  y = np.array([1.0, 0.7, 0.75, 0.2, 0.1, -0.3])
  fit = R.fit_line(x, y)
  slope, intercept = np.polyfit(x, y, 1)
  assert fit.slope == pytest.approx(slope) and fit.intercept == pytest.approx(intercept)
  resid = y - (intercept + slope * x)
  s = np.sqrt((resid ** 2).sum() / 4)
  half = sps.t.ppf(0.975, 4) * s * np.sqrt(1 + 1 / 6 + (0.9 - x.mean()) ** 2
                                           / ((x - x.mean()) ** 2).sum())
  y0, lo, hi = fit.predict(0.9)
  assert y0 == pytest.approx(intercept + slope * 0.9)
  assert (lo, hi) == pytest.approx((y0 - half, y0 + half))
  assert R.fit_line(x[:3], y[:3]) is None  # too few languages for an interval


def test_leave_one_language_out_recovers_the_planted_ranking(planted):
  frame, _ = planted
  val = R.validate(frame, KIND)
  lolo = val["predictions"]
  for size in SLOPES:
    part = lolo[lolo["size"] == size]
    agree, n = 0, 0
    for lang, rows in part.groupby("language"):
      planted_best = max(EFFECTS, key=lambda i: _planted_gain(i, size, rows["x"].iloc[0]))
      predicted_best = rows.loc[rows["predicted"].idxmax(), "intermediate"]
      agree += planted_best == predicted_best
      n += 1
    assert n >= 40 and agree / n >= 0.9, (size, agree, n)
    # predictions track the planted gains closely over every (language, intermediate)
    truth = [_planted_gain(r.intermediate, size, r.x) for r in part.itertuples()]
    assert sps.spearmanr(part["predicted"], truth)[0] > 0.9
  for v in val["per_size"]:
    # observed gains carry the language's own noise: the 95% intervals cover about 95% of them
    assert 0.88 <= v["coverage"] <= 0.995, v
    assert v["spearman"] > 0.6 and v["top1_agreement"] > 0.6, v


def test_recommend_command_for_a_language_outside_xtreme_r(planted, tmp_path, capsys):
  _, path = planted
  out = tmp_path / "rec.json"
  assert cli.main(["recommend", "--results", str(path), "--language", "slk",
                   "--json", str(out)]) == 0
  text = capsys.readouterr().out
  assert text.startswith("slk: syntactic distance to English")
  doc = json.loads(out.read_text())
  x0 = doc["distance_value"]
  assert 0 < x0 < 0.5  # Slovak: close to English syntactically, as the other Slavic languages
  small = [r for r in doc["recommendations"] if r["size"] == "small"]
  assert [r["rank"] for r in small] == [1, 2, 3]
  planted_order = sorted(EFFECTS, key=lambda i: -_planted_gain(i, "small", x0))
  assert [r["intermediate"] for r in small] == planted_order
  for r in small:
    assert r["pi_low"] < r["predicted_gain"] < r["pi_high"]
  assert {v["size"] for v in doc["validation"]} == set(SLOPES)
  assert "leave-one-language-out validation" in text


def test_recommend_refuses_unknown_language_and_task(planted, capsys):
  _, path = planted
  assert cli.main(["recommend", "--results", str(path), "--language", "qqq"]) == 2
  assert "neither one of the 50 XTREME-R two-letter codes" in capsys.readouterr().err
  assert cli.main(["recommend", "--results", str(path), "--language", "sw",
                   "--target_task", "tydiqa"]) == 2
  assert "no gains for it" in capsys.readouterr().err


def test_a_language_in_the_results_is_left_out_and_shown(planted, capsys):
  _, path = planted
  assert cli.main(["recommend", "--results", str(path), "--language", "sw",
                   "--target_task", "xnli"]) == 0
  out = capsys.readouterr().out
  assert "(observed " in out and "from 13 evaluated languages" in out  # XNLI's 14 but sw
