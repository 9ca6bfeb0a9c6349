"""Classification metrics and the XTREME-R aggregation, hand-computed."""
import inspect

import numpy as np
import pytest

from xfer_t5x.tasks import metrics

approx = lambda v: pytest.approx(v, rel=1e-9, abs=1e-9)  # noqa: E731


def test_accuracy():
  targets = ["entailment", "neutral", "contradiction", "neutral"]
  predictions = ["entailment", "neutral", "neutral", "garbage"]
  assert metrics.accuracy(targets, predictions) == {"accuracy": 50.0}  # 2 of 4
  assert metrics.accuracy(np.array([0, 1, 1]), [0, 1, 0]) == {"accuracy": approx(200 / 3)}
  assert metrics.accuracy([b"yes"], ["yes"]) == {"accuracy": 100.0}


def test_accuracy_input_errors():
  with pytest.raises(ValueError, match="2 targets but 1 predictions"):
    metrics.accuracy(["a", "b"], ["a"])
  with pytest.raises(ValueError, match="zero examples"):
    metrics.accuracy([], [])


def test_accuracy_and_f1_counts_invalid_predictions_as_wrong():
  targets = ["duplicate", "duplicate", "not_duplicate", "not_duplicate", "duplicate"]
  predictions = ["duplicate", "not_duplicate", "duplicate", "not_duplicate", "xyz"]
  # TP (1), FN (2), FP (3), TN (4), invalid with a positive gold -> FN (5).
  # TP 1, FP 1, FN 2: P 1/2, R 1/3, F1 = 2 * (1/6) / (5/6) = 0.4; accuracy 2/5.
  assert metrics.accuracy_and_f1(targets, predictions) == {"accuracy": approx(40.0),
                                                           "f1": approx(40.0)}
  # An invalid prediction for a negative gold is a false positive: TP 1, FP 2, FN 2 ->
  # P = R = F1 = 1/3; accuracy 2/6.
  assert metrics.accuracy_and_f1(targets + ["not_duplicate"], predictions + ["maybe"]) == {
      "accuracy": approx(100 / 3), "f1": approx(100 / 3)}
  assert metrics.accuracy_and_f1([1, 0], [0, 0], positive=1) == {"accuracy": 50.0, "f1": 0.0}


def test_task_score_metrics_cover_the_ten_targets():
  assert set(metrics.TASK_SCORE_METRICS) == {
      "xnli", "xcopa", "udpos", "panx", "xquad", "mlqa", "tydiqa", "mewslix", "lareqa", "tatoeba"}
  assert metrics.TASK_SCORE_METRICS["mlqa"] == ("em", "f1")
  assert metrics.is_task_score_metric("udpos", "f1")
  assert not metrics.is_task_score_metric("udpos", "token_accuracy")
  assert not metrics.is_task_score_metric("mnli", "accuracy")
  # The names the metric functions produce are the names the table expects.
  assert "map@20" in metrics.mrr_at_k(["a"], [["a"]])
  assert set(metrics.squad_em_f1([["a"]], ["a"])) == {"em", "f1"}


def test_xtreme_r_aggregate():
  scores = {
      "xnli": {"en": {"accuracy": 80.0}, "de": {"accuracy": 70.0}},
      "xquad": {"en": {"em": 60.0, "f1": 80.0}, "zh": {"em": 40.0, "f1": 50.0, "extra": 999.0}},
      "udpos": {"en": {"f1": 90.0, "token_accuracy": 95.0, "precision": 1.0}},
  }
  out = metrics.xtreme_r_aggregate(scores)
  # xnli: (80 + 70) / 2 = 75.
  # xquad: en (60 + 80) / 2 = 70, zh (40 + 50) / 2 = 45 -> 57.5, equal to the scorer's
  #   (avg EM + avg F1) / 2 = (50 + 65) / 2. Other metrics do not enter.
  # udpos: f1 only -> 90.  overall = (75 + 57.5 + 90) / 3 = 74.1667.
  assert out["tasks"] == {"xnli": approx(75.0), "udpos": approx(90.0), "xquad": approx(57.5)}
  assert out["per_language"]["xquad"] == {"en": approx(70.0), "zh": approx(45.0)}
  assert out["overall"] == approx(222.5 / 3)
  assert out["complete"] is False
  assert list(out["tasks"]) == ["xnli", "udpos", "xquad"]  # XTREME-R's task order


def test_xtreme_r_aggregate_complete_and_errors():
  full = {t: {"en": {m: 50.0 for m in ms}} for t, ms in metrics.TASK_SCORE_METRICS.items()}
  out = metrics.xtreme_r_aggregate(full)
  assert out["complete"] is True and out["overall"] == approx(50.0)
  with pytest.raises(ValueError, match="lack \\['em'\\]"):
    metrics.xtreme_r_aggregate({"mlqa": {"de": {"f1": 1.0}}})
  with pytest.raises(ValueError, match="not XTREME-R targets: \\['mnli'\\]"):
    metrics.xtreme_r_aggregate({"mnli": {"en": {"accuracy": 1.0}}})
  with pytest.raises(ValueError, match="no languages"):
    metrics.xtreme_r_aggregate({"xnli": {}})


def _required_positional(fn):
  return tuple(name for name, p in inspect.signature(fn).parameters.items()
               if p.default is inspect.Parameter.empty
               and p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD)


@pytest.mark.parametrize("fn", [
    metrics.accuracy, metrics.accuracy_and_f1, metrics.squad_em_f1, metrics.squad_v2_em_f1,
    metrics.mlqa_em_f1("zh"), metrics.span_f1, metrics.pos_f1,
    metrics.mean_average_precision_at_k, metrics.mrr_at_k, metrics.retrieval_accuracy])
def test_metric_fns_have_the_signature_seqio_accepts(fn):
  # seqio.Task sorts metric fns by their required positional arguments; ("targets",
  # "predictions") makes a prediction metric.
  assert _required_positional(fn) == ("targets", "predictions")
