"""Retrieval metrics of XTREME-R: LAReQA mAP@20, Mewsli-X "mAP@20" (= MRR@20), Tatoeba accuracy.

Every function takes seqio's (targets, predictions) order: `targets` says what is relevant per
query, `predictions` is per query the candidate ids ranked best first (ids are any hashable
values: strings, ints). All scores are in percent.

- LAReQA (`mean_average_precision_at_k`): xtreme's `average_precision_at_k` per question, with
  the ranking truncated to k, each relevant candidate counted at its first rank only, and the
  sum of precisions at the hits divided by min(number relevant, k); mean over the questions.
  XTREME-R reports it per question language over the candidates pooled from all 11 languages:
  one call per `lareqa.<lang>` eval task, each ranking the whole pool
  (`mean_average_precision_by_group` does the grouping when the questions arrive together).
- Mewsli-X (`mrr_at_k`): one gold entity per mention; the reciprocal rank of the first hit
  within the top k, 0 without one; mean over mentions. The scorer names it "map@20".
- Tatoeba (`retrieval_accuracy`): top-1 nearest neighbour equals the gold translation.
"""
from typing import Dict, Hashable, Iterable, List, Sequence

import numpy as np

MAP_AT_20 = "map@20"


def _check_lengths(targets, predictions, what):
  if len(targets) != len(predictions):
    raise ValueError(f"{what}: {len(targets)} targets but {len(predictions)} predictions; give "
                     "one entry per query in both")
  if not targets:
    raise ValueError(f"{what}: no queries to score")


def _ranked(prediction, i) -> List[Hashable]:
  if isinstance(prediction, (str, bytes)):
    raise TypeError(f"predictions[{i}] is a single string; give the ranked list of candidate ids "
                    "(best first)")
  return list(prediction)


def average_precision_at_k(relevant: Iterable[Hashable], ranked: Sequence[Hashable],
                           k: int = 20) -> float:
  """xtreme's AP@k of one query, in [0, 1].

  Args:
    relevant: the ids of the query's correct candidates (at least one).
    ranked: candidate ids, best first.
    k: cut-off (None or 0: no cut-off, divide by the number relevant).

  Returns:
    sum over hits at rank r (1-based, first occurrence of each id) of hits_so_far / r, divided
    by min(len(relevant), k).
  """
  relevant = set(relevant)
  if not relevant:
    raise ValueError("average precision needs at least one relevant candidate per query")
  ranked = list(ranked)[:k] if k else list(ranked)
  seen = set()
  hits, total = 0.0, 0.0
  for rank, candidate in enumerate(ranked, start=1):
    if candidate in relevant and candidate not in seen:
      hits += 1.0
      total += hits / rank
    seen.add(candidate)
  return total / (min(len(relevant), k) if k else len(relevant))


def mean_average_precision_at_k(targets, predictions, k: int = 20) -> Dict[str, float]:
  """LAReQA's mAP@k in percent over the given questions.

  Args:
    targets: per question, the collection of relevant candidate ids (for LAReQA the answer
      sentence in every language, i.e. all candidates sharing the question's xling id).
    predictions: per question, candidate ids from the pooled set ranked best first (at least
      the top k).
    k: cut-off, 20 in XTREME-R.

  Returns:
    {"map@<k>": mean AP@k * 100}.
  """
  targets, predictions = list(targets), list(predictions)
  _check_lengths(targets, predictions, "mean_average_precision_at_k")
  scores = []
  for i, (relevant, ranked) in enumerate(zip(targets, predictions)):
    if isinstance(relevant, (str, bytes)):
      relevant = [relevant]
    scores.append(average_precision_at_k(relevant, _ranked(ranked, i), k))
  return {f"map@{k}": float(np.mean(scores)) * 100}


def mean_average_precision_by_group(groups: Sequence[str], targets, predictions,
                                    k: int = 20) -> Dict[str, Dict[str, float]]:
  """mAP@k per group (LAReQA: per question language), e.g. {"de": {"map@20": ...}, ...}."""
  groups, targets, predictions = list(groups), list(targets), list(predictions)
  if len(groups) != len(targets):
    raise ValueError(f"{len(groups)} group labels for {len(targets)} questions")
  out = {}
  for group in sorted(set(groups)):
    index = [i for i, g in enumerate(groups) if g == group]
    out[group] = mean_average_precision_at_k(
        [targets[i] for i in index], [predictions[i] for i in index], k)
  return out


def _single_gold(target, i):
  """Mewsli-X's gold: a single id, or the first of a singleton list (as its files store it)."""
  if isinstance(target, bytes):
    target = target.decode("utf-8")
  if isinstance(target, (list, tuple)):
    if not target:
      raise ValueError(f"targets[{i}] is an empty list; Mewsli-X has one gold entity per mention")
    target = target[0]
  return target.strip() if isinstance(target, str) else target


def mrr_at_k(targets, predictions, k: int = 20) -> Dict[str, float]:
  """Mewsli-X's score: mean reciprocal rank of the single gold entity within the top k, percent.

  Args:
    targets: per mention, its gold entity id (or a one-element list holding it; strings are
      stripped as the scorer does).
    predictions: per mention, entity ids ranked best first ([] for a mention not predicted).
    k: cut-off, 20 in XTREME-R.

  Returns:
    {"map@<k>": MRR@k * 100}, under the name the official scorer gives it.
  """
  targets, predictions = list(targets), list(predictions)
  _check_lengths(targets, predictions, "mrr_at_k")
  total = 0.0
  for i, (target, ranked) in enumerate(zip(targets, predictions)):
    gold = _single_gold(target, i)
    for rank, candidate in enumerate(_ranked(ranked, i)[:k], start=1):
      if candidate == gold:
        total += 1.0 / rank
        break
  return {f"map@{k}": total / len(targets) * 100}


def retrieval_accuracy(targets, predictions) -> Dict[str, float]:
  """Tatoeba's top-1 accuracy in percent.

  Args:
    targets: per source sentence, the id (e.g. index) of its gold translation.
    predictions: per source sentence, the id of the nearest neighbour, or a ranked list of ids
      whose first element is taken (an empty list counts as wrong).

  Returns:
    {"accuracy"}.
  """
  targets, predictions = list(targets), list(predictions)
  _check_lengths(targets, predictions, "retrieval_accuracy")
  correct = 0
  for target, prediction in zip(targets, predictions):
    if not isinstance(prediction, (str, bytes)) and hasattr(prediction, "__len__"):
      if not len(prediction):
        continue
      prediction = prediction[0]
    correct += int(prediction == target)
  return {"accuracy": float(correct) / len(targets) * 100}


__all__ = ["MAP_AT_20", "average_precision_at_k", "mean_average_precision_at_k",
           "mean_average_precision_by_group", "mrr_at_k", "retrieval_accuracy"]
