"""Postprocessors and metrics wired into the tasks work through seqio's own Evaluator:
predicting the targets scores 100, a constant prediction scores what a hand count says."""
import numpy as np
import pytest
import seqio

from tests.conftest import SHARED_DATA, shared_path
from xfer_t5x.tasks import study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registered(local_vocab, demo_dir):
  shared_path("xcopa")
  excerpts = SHARED_DATA / "original_format_excerpts"
  study.register_tasks(
      local_vocab, str(demo_dir),
      data_dirs={"xcopa": str(SHARED_DATA / "xcopa"),
                 "mlqa": str(excerpts / "mlqa" / "mlqa.en.en" / "dummy_data")},
      languages={"xnli": ["de"], "panx": ["de"], "xcopa": ["et"], "mlqa": ["en"]})
  return local_vocab


def _evaluator(name, split):
  return seqio.Evaluator(name, seqio.EncDecFeatureConverter(pack=False), eval_split=split,
                         sequence_length={"inputs": 128, "targets": 64},
                         async_compute_metrics=False)


def _echo_targets(ds, model_feature_shapes=None):
  """A 'model' that decodes each example's targets, padded to a fixed length as T5X returns."""
  del model_feature_shapes
  return [(i, ex["decoder_target_tokens"].tolist()) for i, ex in ds.as_numpy_iterator()]


def _metrics(evaluator, **fns):
  results, _ = evaluator.evaluate(compute_metrics=True, **fns)
  (task_metrics,) = results.result().values()
  return task_metrics


@pytest.mark.parametrize("name,split,expected", [
    ("xnli.de", "test", {"accuracy": 100.0}),
    ("panx.de", "test", {"f1": 100.0, "precision": 100.0, "recall": 100.0}),
    ("mlqa.en", "test", {"em": 100.0, "f1": 100.0}),
])
def test_predicting_the_targets_scores_100(registered, name, split, expected):
  metrics = _metrics(_evaluator(name, split), predict_fn=_echo_targets)
  assert {k: metrics[k] for k in expected} == pytest.approx(expected, rel=1e-5)


def test_constant_prediction_scores_the_hand_count(registered):
  vocab = registered
  neutral = (vocab.encode("neutral") + [1] + [0] * 64)[:64]
  task = seqio.get_mixture_or_task("xnli.de")
  labels = [ex["targets_pretokenized"].numpy().decode()
            for ex in task.get_dataset(None, split="test", shuffle=False)]
  expected = 100.0 * labels.count("neutral") / len(labels)
  predict = lambda ds, model_feature_shapes=None: [(i, neutral) for i, _ in
                                                   ds.as_numpy_iterator()]
  metrics = _metrics(_evaluator("xnli.de", "test"), predict_fn=predict)
  assert metrics["accuracy"] == pytest.approx(expected, rel=1e-5)
  assert 0 < expected < 100


def test_rank_classification_through_score_fn(registered):
  task = seqio.get_mixture_or_task("xcopa_rank.et")
  examples = list(task.get_dataset(None, split="validation", shuffle=False))
  correct = np.array([bool(ex["is_correct"]) for ex in examples])
  assert len(examples) == 200 and correct.sum() == 100

  def score(ds, model_feature_shapes=None):
    del model_feature_shapes
    return [(i, 0.0 if correct[i] else -1.0) for i, _ in ds.as_numpy_iterator()]

  def wrong(ds, model_feature_shapes=None):
    del model_feature_shapes
    return [(i, -1.0 if correct[i] else 0.0) for i, _ in ds.as_numpy_iterator()]

  evaluator = _evaluator("xcopa_rank.et", "validation")
  assert _metrics(evaluator, score_fn=score)["accuracy"] == pytest.approx(100.0)
  assert _metrics(evaluator, score_fn=wrong)["accuracy"] == pytest.approx(0.0)
