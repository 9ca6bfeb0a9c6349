"""Rank classification (TaskInfo.mode "rank"): score every choice, the likeliest one wins.

A rank task has one example per (row, choice) with `idx = [row, choice]` and `is_correct`
(tasks/rank_classification.py). Each example's choice is scored by its log-likelihood given the
inputs (`score_batch`: the sum over the choice's tokens, as T5X's rank classification does); the
task's `(targets, scores)` metrics get the scores, and the per-row record names the choice with
the highest score.
"""
from typing import Dict, List, Mapping, Optional

import numpy as np
import seqio

from xfer_t5x.evaluation import batching
from xfer_t5x.evaluation import examples as examples_lib
from xfer_t5x.evaluation.decode import lengths_for
from xfer_t5x.evaluation.results import TaskResult, compute_metrics
from xfer_t5x.evaluation.runner import MeshRunner


def keep_rows(examples, max_rows: Optional[int]):
  """The examples of the first `max_rows` rows (every choice of a kept row stays)."""
  if max_rows is None:
    return list(examples)
  return [ex for ex in examples if int(ex["idx"][0]) < int(max_rows)]


def best_choices(rows: List[int], scores) -> Dict[int, int]:
  """{row: index into the examples of that row's highest-scoring choice} (first on ties)."""
  best: Dict[int, int] = {}
  for i, (row, score) in enumerate(zip(rows, scores)):
    if row not in best or float(score) > float(scores[best[row]]):
      best[row] = i
  return best


def evaluate_rank(runner: MeshRunner, name: str, split: str, examples,
                  vocabulary: seqio.Vocabulary,
                  feature_lengths: Optional[Mapping[str, int]] = None) -> TaskResult:
  """Scores every choice of a rank-classification task and applies its score metrics."""
  del vocabulary
  task = seqio.get_mixture_or_task(name)
  for key in ("idx", "is_correct"):
    if key not in examples[0]:
      raise ValueError(f"task {name} is registered with mode 'rank' but its examples have no "
                       f"{key!r} feature; build it with tasks.formatting.rank_classification")
  inputs_len, targets_len = lengths_for(examples, feature_lengths)
  inputs = batching.pad_tokens([ex["inputs"] for ex in examples], inputs_len)
  targets_arr = batching.pad_tokens([ex["targets"] for ex in examples], targets_len)
  scores = np.asarray(runner.score(inputs, targets_arr), np.float64)
  targets = [task.postprocess_fn(examples_lib.text(ex.get("targets_pretokenized", "")),
                                 example=ex, is_target=True) for ex in examples]
  metrics = compute_metrics(task, targets, scores=scores)

  rows = [int(ex["idx"][0]) for ex in examples]
  best = best_choices(rows, scores)
  by_row: Dict[int, List[int]] = {}
  for i, row in enumerate(rows):
    by_row.setdefault(row, []).append(i)
  records = []
  for row in sorted(by_row):
    members = by_row[row]
    first = examples[members[0]]
    choice = lambda i: examples_lib.text(examples[i].get("targets_pretokenized", ""))
    correct = [choice(i) for i in members if bool(examples[i]["is_correct"])]
    record = {
        "inputs": examples_lib.text(first.get("inputs_pretokenized", "")),
        "target": correct[0] if len(correct) == 1 else correct,
        "prediction": choice(best[row]),
        "score": float(scores[best[row]]),
        "choices": [choice(i) for i in members],
        "choice_scores": [float(scores[i]) for i in members],
        "correct": bool(examples[best[row]]["is_correct"]),
    }
    if "id" in first:
      record["id"] = examples_lib.text(first["id"])
    records.append(record)
  return TaskResult(name, examples_lib.info_of(name), split, metrics, records)
