"""Gains from the results table: task scores, matching on the none runs, seed averages."""
import numpy as np
import pandas as pd
import pytest

from xfer_t5x.analysis import gains as G
from xfer_t5x.results import COLUMNS


def _rows(intermediate, seed, scores, task="xquad", size="base", n_params=582_000_000, run=None):
  """scores: {language: {metric: value}}; em/f1/accuracy are task scores, loss is not."""
  run = run or f"{size}-{intermediate}-{task}-{seed}"
  out = []
  for lang, metrics in scores.items():
    for metric, value in metrics.items():
      out.append(dict(run_id=run, experiment="e", size=size, n_params=n_params,
                      intermediate=intermediate, target_task=task, stage="evaluate", language=lang,
                      split="test", seed=seed, metric=metric, value=value,
                      task_score=metric != "loss", checkpoint="c", step=1, gin_sha256="g",
                      data_version="d", code_version="v", started_at="s", finished_at="f"))
  return out


def _frame(*row_lists):
  return pd.DataFrame([r for rows in row_lists for r in rows], columns=list(COLUMNS))


def test_gain_by_hand_two_seeds_qa_mean_and_non_task_metric_ignored():
  df = _frame(
      _rows("none", 0, {"de": {"em": 40, "f1": 50, "loss": 9}, "ja": {"em": 20, "f1": 30, "loss": 9}}),
      _rows("none", 1, {"de": {"em": 42, "f1": 52, "loss": 9}, "ja": {"em": 22, "f1": 28, "loss": 9}}),
      _rows("mnli", 0, {"de": {"em": 44, "f1": 56, "loss": 1}, "ja": {"em": 21, "f1": 29, "loss": 1}}),
      _rows("mnli", 1, {"de": {"em": 43, "f1": 55, "loss": 1}, "ja": {"em": 25, "f1": 33, "loss": 1}}),
  )
  g = G.compute_gains(df)
  ps = g.per_seed.set_index(["language", "seed"])
  # de seed 0: (44+56)/2 - (40+50)/2 = 50 - 45 = 5; seed 1: 49 - 47 = 2
  assert ps.loc[("de", 0), "gain"] == pytest.approx(5.0)
  assert ps.loc[("de", 1), "gain"] == pytest.approx(2.0)
  # ja seed 0: 25 - 25 = 0; seed 1: 29 - 25 = 4
  assert ps.loc[("ja", 1), "gain"] == pytest.approx(4.0)
  bl = g.by_language.set_index("language")
  assert bl.loc["de", "gain"] == pytest.approx(3.5)
  assert bl.loc["de", "gain_sd"] == pytest.approx(np.std([5, 2], ddof=1))
  assert (bl.loc["ja", "gain_min"], bl.loc["ja", "gain_max"]) == (0.0, 4.0)
  assert bl.loc["de", "n_seeds"] == 2
  assert bl.loc["de", "baseline_score"] == pytest.approx((45 + 47) / 2)
  assert bl.loc["de", "log10_params"] == pytest.approx(np.log10(582e6))
  assert g.unmatched.empty and g.notes == []


def test_matching_is_per_seed_size_and_task_and_unmatched_is_reported():
  df = _frame(
      _rows("none", 0, {"de": {"accuracy": 70}}, task="xnli"),
      _rows("none", 0, {"de": {"accuracy": 60}}, task="xnli", size="xxl", n_params=12_900_000_000),
      _rows("mnli", 0, {"de": {"accuracy": 75}}, task="xnli"),
      _rows("mnli", 0, {"de": {"accuracy": 61}}, task="xnli", size="xxl", n_params=12_900_000_000),
      _rows("mnli", 1, {"de": {"accuracy": 99}}, task="xnli"),        # no seed-1 baseline
      _rows("mnli", 0, {"de": {"accuracy": 99}}, task="panx"),        # no panx baseline
  )
  g = G.compute_gains(df)
  got = g.by_language.set_index(["size", "target_task"])["gain"]
  assert got.to_dict() == {("base", "xnli"): 5.0, ("xxl", "xnli"): 1.0}
  assert len(g.unmatched) == 2
  assert set(g.unmatched["target_task"]) == {"xnli", "panx"}
  assert any("no matching intermediate='none'" in n for n in g.notes)


def test_size_with_two_parameter_counts_is_an_error():
  df = _frame(_rows("none", 0, {"de": {"accuracy": 1}}),
              _rows("mnli", 0, {"de": {"accuracy": 2}}, n_params=123))
  with pytest.raises(ValueError, match="size 'base' more than one n_params"):
    G.compute_gains(df)


def test_duplicate_runs_are_averaged_and_noted():
  df = _frame(_rows("none", 0, {"de": {"accuracy": 10}}, run="a"),
              _rows("none", 0, {"de": {"accuracy": 20}}, run="b"),
              _rows("mnli", 0, {"de": {"accuracy": 25}}))
  g = G.compute_gains(df)
  assert g.by_language["gain"].tolist() == [10.0]
  assert any("more than one run" in n for n in g.notes)
