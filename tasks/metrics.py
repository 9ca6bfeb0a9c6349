"""Metrics of the study, equal to XTREME-R's official scorer, and the XTREME-R aggregation.

Every metric is a seqio metric fn: (targets, predictions) -> {name: float}, scores in percent
(0-100) as XTREME reports them. The definitions follow google-research/xtreme `evaluate.py`
(`--xtreme_version xtreme-r`), quirks included; the modules hold the details:

- classification here: `accuracy` (XNLI, XCOPA, intermediate tasks), `accuracy_and_f1` (QQP);
- `metrics_qa`: `squad_em_f1` (XQuAD, TyDiQA-GoldP), `mlqa_em_f1(lang)`, `squad_v2_em_f1`;
- `metrics_tagging`: `span_f1` (PAN-X), `pos_f1` (UD-POS: seqeval's F1 over POS tags);
- `metrics_retrieval`: `mean_average_precision_at_k` (LAReQA), `mrr_at_k` (Mewsli-X),
  `retrieval_accuracy` (Tatoeba).

`TASK_SCORE_METRICS` names, per target, the metrics entering the XTREME-R average, and
`xtreme_r_aggregate` computes task scores, per-language scores and the overall score.
"""
from typing import Dict, Mapping, Sequence

from xfer_t5x.tasks.metrics_qa import (MLQA_LANGUAGES, mlqa_em_f1, normalize_mlqa,  # noqa: F401
                                       normalize_squad, qa_metric_for, squad_em_f1,
                                       squad_v2_em_f1)
from xfer_t5x.tasks.metrics_retrieval import (MAP_AT_20, average_precision_at_k,  # noqa: F401
                                              mean_average_precision_at_k,
                                              mean_average_precision_by_group, mrr_at_k,
                                              retrieval_accuracy)
from xfer_t5x.tasks.metrics_tagging import bio_spans, chunks_of, pos_f1, span_f1  # noqa: F401


def _as_label(value):
  return value.decode("utf-8") if isinstance(value, bytes) else value


def accuracy(targets, predictions) -> Dict[str, float]:
  """Share of predictions equal to their target, in percent (labels compared as given).

  Args:
    targets: gold labels (label words, choice texts or class ids).
    predictions: predicted labels, one per target.

  Returns:
    {"accuracy"}.
  """
  targets, predictions = list(targets), list(predictions)
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions; accuracy needs "
                     "one prediction per example")
  if not predictions:
    raise ValueError("accuracy of zero examples is undefined: nothing was predicted")
  correct = sum(int(_as_label(p) == _as_label(t)) for p, t in zip(predictions, targets))
  return {"accuracy": float(correct) / len(predictions) * 100}


def accuracy_and_f1(targets, predictions, positive="duplicate") -> Dict[str, float]:
  """Accuracy and the positive class's F1 in percent (QQP; GLUE reports both).

  A prediction that is neither `positive` nor any label seen among the targets (e.g. generated
  garbage) counts as wrong, as T5's `f1_score_with_invalid` does: a false negative when the
  target is positive, a false positive otherwise.

  Args:
    targets: gold labels.
    predictions: predicted labels.
    positive: the positive label ("duplicate" for QQP's label words, or 1 for class ids).

  Returns:
    {"accuracy", "f1"}; F1 is 0 when there is no true positive.
  """
  targets = [_as_label(t) for t in targets]
  predictions = [_as_label(p) for p in predictions]
  scores = accuracy(targets, predictions)
  valid = set(targets) | {positive}
  tp = fp = fn = 0
  for target, prediction in zip(targets, predictions):
    gold_positive = target == positive
    if prediction not in valid:
      predicted_positive = not gold_positive
    else:
      predicted_positive = prediction == positive
    tp += int(gold_positive and predicted_positive)
    fp += int(predicted_positive and not gold_positive)
    fn += int(gold_positive and not predicted_positive)
  precision = tp / (tp + fp) if tp + fp else 0.0
  recall = tp / (tp + fn) if tp + fn else 0.0
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  scores["f1"] = f1 * 100
  return scores


# Target -> metrics whose per-language mean is the language's task score (XTREME-R's avg_metric).
TASK_SCORE_METRICS: Mapping[str, Sequence[str]] = {
    "xnli": ("accuracy",),
    "xcopa": ("accuracy",),
    "udpos": ("f1",),
    "panx": ("f1",),
    "xquad": ("em", "f1"),
    "mlqa": ("em", "f1"),
    "tydiqa": ("em", "f1"),
    "mewslix": (MAP_AT_20,),
    "lareqa": (MAP_AT_20,),
    "tatoeba": ("accuracy",),
}
XTREME_R_TARGETS = tuple(TASK_SCORE_METRICS)


def is_task_score_metric(target: str, metric: str) -> bool:
  """Whether `metric` of `target` enters the XTREME-R average (the results table's task_score)."""
  return metric in TASK_SCORE_METRICS.get(target, ())


def language_task_score(target: str, metrics: Mapping[str, float]) -> float:
  """One language's task score: the mean of the target's task-score metrics (QA: (EM + F1) / 2)."""
  if target not in TASK_SCORE_METRICS:
    raise ValueError(f"{target!r} is not an XTREME-R target; known: {', '.join(XTREME_R_TARGETS)}")
  names = TASK_SCORE_METRICS[target]
  missing = [n for n in names if n not in metrics]
  if missing:
    raise ValueError(f"scores of {target} lack {missing} (have {sorted(metrics)}); its task score "
                     f"is the mean of {list(names)}")
  return sum(float(metrics[n]) for n in names) / len(names)


def xtreme_r_aggregate(scores: Mapping[str, Mapping[str, Mapping[str, float]]]) -> Dict:
  """XTREME-R's summary of per-language scores.

  Args:
    scores: {target: {language: {metric: value}}}, values in percent, for any subset of the ten
      targets (each with at least one language).

  Returns:
    {"tasks": {target: task score}, "per_language": {target: {language: score}},
     "overall": mean of the task scores present (NaN for none),
     "complete": whether all ten targets are present (the official scorer prints an overall
     score only then)}. A target's task score is the mean over its languages of the
    language's task score, equal to the official avg_metric (QA: (avg EM + avg F1) / 2).
  """
  unknown = sorted(set(scores) - set(TASK_SCORE_METRICS))
  if unknown:
    raise ValueError(f"not XTREME-R targets: {unknown}; pass only {', '.join(XTREME_R_TARGETS)} "
                     "(intermediate-task metrics are not part of the XTREME-R score)")
  per_language, tasks = {}, {}
  for target in sorted(scores, key=XTREME_R_TARGETS.index):
    by_lang = scores[target]
    if not by_lang:
      raise ValueError(f"target {target} has no languages in the scores")
    per_language[target] = {lang: language_task_score(target, m) for lang, m in by_lang.items()}
    tasks[target] = sum(per_language[target].values()) / len(per_language[target])
  overall = sum(tasks.values()) / len(tasks) if tasks else float("nan")
  return {"tasks": tasks, "per_language": per_language, "overall": overall,
          "complete": set(tasks) == set(XTREME_R_TARGETS)}


__all__ = [
    "accuracy", "accuracy_and_f1", "TASK_SCORE_METRICS", "XTREME_R_TARGETS",
    "is_task_score_metric", "language_task_score", "xtreme_r_aggregate",
    # QA (metrics_qa)
    "MLQA_LANGUAGES", "normalize_squad", "normalize_mlqa", "squad_em_f1", "mlqa_em_f1",
    "squad_v2_em_f1", "qa_metric_for",
    # tagging (metrics_tagging)
    "span_f1", "pos_f1", "bio_spans", "chunks_of",
    # retrieval (metrics_retrieval)
    "MAP_AT_20", "average_precision_at_k", "mean_average_precision_at_k",
    "mean_average_precision_by_group", "mrr_at_k", "retrieval_accuracy",
]
