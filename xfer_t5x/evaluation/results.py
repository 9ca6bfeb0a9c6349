"""One task's evaluation outcome and the SeqIO metric calls that produce it.

A task's metric functions follow SeqIO's contract: `(targets, predictions)` functions get the
postprocessed targets and predictions, `(targets, scores)` functions the postprocessed targets
and the model's scores; each returns {metric name: value}. The values are floats in the units
the task's metrics use (percent for the study's metrics).
"""
import dataclasses
import math
from typing import Any, Dict, List, Optional, Sequence

import seqio

from xfer_t5x.tasks import registry


@dataclasses.dataclass
class TaskResult:
  """Metrics and per-example records of one task at one step."""
  task: str
  info: registry.TaskInfo
  split: str
  metrics: Dict[str, float]
  records: List[Dict[str, Any]]  # one per example: inputs, target, prediction, score, ...

  @property
  def num_examples(self) -> int:
    return len(self.records)


def _as_float(name: str, task: str, value) -> float:
  try:
    value = float(value)
  except (TypeError, ValueError) as e:
    raise ValueError(f"metric {name!r} of task {task} returned {value!r}, not a number") from e
  return value


def compute_metrics(task: seqio.Task, targets: Sequence, predictions: Optional[Sequence] = None,
                    scores: Optional[Sequence] = None) -> Dict[str, float]:
  """Runs the task's metric functions: predict ones with `predictions`, score ones with `scores`.

  A kind of metric function whose inputs were not given is skipped. Two functions returning the
  same metric name is an error (one would hide the other).
  """
  out: Dict[str, float] = {}

  def add(fn, values):
    for name, value in values.items():
      if hasattr(value, "value"):  # seqio.metrics.Scalar and friends
        value = value.value
      if name in out:
        raise ValueError(f"task {task.name}: two metric functions both return {name!r}")
      out[name] = _as_float(name, task.name, value)

  targets = list(targets)
  if predictions is not None:
    for fn in task.predict_metric_fns:
      add(fn, fn(targets, list(predictions)))
  if scores is not None:
    for fn in task.score_metric_fns:
      add(fn, fn(targets, [float(s) for s in scores]))
  return out


def finite_or_none(value: float):
  """JSON has no NaN: NaN and infinities become None."""
  return value if isinstance(value, (int, float)) and math.isfinite(value) else None
