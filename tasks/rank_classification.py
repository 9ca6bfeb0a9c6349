"""Rank classification of multiple-choice tasks: score every choice, pick the likeliest.

A `<task>_rank` task (made by formatting.rank_classification) has one example per (row, choice)
with `idx` = [row, choice] and `is_correct`. An evaluator scores each example's targets (the
choice) given its inputs (log-likelihood, T5X `score_batch`) and hands seqio the scores; the
postprocessor turns each target into (row, choice, is_correct) and `rank_accuracy` takes, per
row, the choice with the highest score.
"""
import collections
from typing import Dict


def rank_postprocess(output, example=None, is_target=False):
  """seqio postprocess_fn: for targets, (row, choice, is_correct) from the example."""
  if not is_target:
    return output
  if example is None:
    raise ValueError("rank classification needs the example's idx and is_correct features")
  idx = example["idx"]
  return int(idx[0]), int(idx[1]), bool(example["is_correct"])


def rank_accuracy(targets, scores) -> Dict[str, float]:
  """Share of rows whose highest-scoring choice is a correct one, in percent.

  Args:
    targets: (row, choice, is_correct) per scored example (rank_postprocess).
    scores: the log-likelihood of each example's target, same order.
  """
  targets, scores = list(targets), list(scores)
  if len(targets) != len(scores):
    raise ValueError(f"{len(targets)} targets but {len(scores)} scores")
  if not targets:
    raise ValueError("rank_accuracy of zero examples is undefined")
  best = collections.OrderedDict()
  for (row, _, correct), score in zip(targets, scores):
    score = float(score)
    if row not in best or score > best[row][0]:
      best[row] = (score, correct)
  return {"accuracy": 100.0 * sum(c for _, c in best.values()) / len(best)}
