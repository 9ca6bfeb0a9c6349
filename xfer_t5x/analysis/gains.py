"""Transfer gains from the results table (CONTRACTS.md, "Results").

- Task score of a run in a language: the mean of its `task_score` metrics (QA: EM and F1).
- Gain: the task score with an intermediate task minus the task score with `intermediate =
  none`, matched on (experiment, size, target_task, split, language, seed); then averaged over
  seeds, keeping the per-seed spread (sd, min, max, number of seeds).
- Size enters as log10(n_params).

Nothing is dropped silently: runs without a matching `none` run, and keys recorded by more than
one run (averaged), are listed in `Gains.unmatched` and `Gains.notes`.
"""
import dataclasses

import numpy as np
import pandas as pd

from xfer_t5x.results import COLUMNS

BASELINE = "none"
MATCH_KEYS = ("experiment", "size", "target_task", "split", "language", "seed")
LANGUAGE_KEYS = ("experiment", "size", "n_params", "log10_params", "intermediate", "target_task",
                 "split", "language")


@dataclasses.dataclass
class Gains:
  """per_seed: one row per matched (intermediate run, seed); by_language: averaged over seeds."""
  per_seed: pd.DataFrame
  by_language: pd.DataFrame
  unmatched: pd.DataFrame
  notes: list


def task_scores(results):
  """One row per (run, language): `score` = mean value of the task_score metrics."""
  missing = [c for c in COLUMNS if c not in results.columns]
  if missing:
    raise ValueError(f"results lack column(s) {missing}; load them with xfer_t5x.results.load_results")
  ts = results[results["task_score"].astype(bool) & results["value"].notna()]
  keys = ["run_id", "experiment", "size", "n_params", "intermediate", "target_task", "split",
          "language", "seed"]
  out = ts.groupby(keys, as_index=False, sort=True).agg(score=("value", "mean"),
                                                       n_metrics=("value", "size"))
  return out


def _collapse_duplicates(scores, keys, notes, what):
  """Averages scores recorded by more than one run for the same key (and says so)."""
  counts = scores.groupby(keys).size()
  dup = counts[counts > 1]
  if len(dup):
    notes.append(f"{len(dup)} {what} key(s) were recorded by more than one run and are averaged "
                 f"(first: {dict(zip(keys, dup.index[0]))})")
  return scores.groupby(keys, as_index=False).agg(score=("score", "mean"), n_params=("n_params", "first"))


def compute_gains(results):
  """Gains from a results DataFrame (as `load_results` returns it)."""
  notes = []
  scores = task_scores(results)
  keys = list(MATCH_KEYS)
  size_params = scores.groupby("size")["n_params"].nunique()
  if (size_params > 1).any():
    bad = size_params[size_params > 1].index[0]
    raise ValueError(f"results give size {bad!r} more than one n_params "
                     f"({sorted(scores.loc[scores['size'] == bad, 'n_params'].unique())}); one "
                     "size name must mean one parameter count")
  base = _collapse_duplicates(scores[scores["intermediate"] == BASELINE], keys, notes, "baseline")
  treated = _collapse_duplicates(scores[scores["intermediate"] != BASELINE],
                                 ["intermediate"] + keys, notes, "intermediate")
  merged = treated.merge(base.drop(columns="n_params").rename(columns={"score": "baseline_score"}),
                         on=keys, how="left")
  unmatched = merged[merged["baseline_score"].isna()][["intermediate"] + keys].reset_index(drop=True)
  if len(unmatched):
    notes.append(f"{len(unmatched)} (intermediate, {', '.join(keys)}) score(s) have no matching "
                 f"intermediate='{BASELINE}' run and are left out")
  if base.empty:
    notes.append(f"no intermediate='{BASELINE}' runs: no gains can be computed")
  per_seed = merged[merged["baseline_score"].notna()].copy()
  per_seed["gain"] = per_seed["score"] - per_seed["baseline_score"]
  per_seed["log10_params"] = np.log10(per_seed["n_params"].astype(np.float64))
  per_seed = per_seed[["experiment", "size", "n_params", "log10_params", "intermediate",
                       "target_task", "split", "language", "seed", "score", "baseline_score",
                       "gain"]].reset_index(drop=True)
  return Gains(per_seed=per_seed, by_language=average_over_seeds(per_seed), unmatched=unmatched,
               notes=notes)


def average_over_seeds(per_seed):
  """Mean gain over seeds per (experiment, size, intermediate, target_task, split, language).

  Keeps the spread: gain_sd (sample sd; NaN with one seed), gain_min, gain_max, n_seeds; and the
  mean score and baseline score.
  """
  keys = list(LANGUAGE_KEYS)
  if per_seed.empty:
    return pd.DataFrame(columns=keys + ["gain", "gain_sd", "gain_min", "gain_max", "n_seeds",
                                        "score", "baseline_score"])
  g = per_seed.groupby(keys, as_index=False, sort=True)
  return g.agg(gain=("gain", "mean"), gain_sd=("gain", "std"), gain_min=("gain", "min"),
               gain_max=("gain", "max"), n_seeds=("gain", "size"), score=("score", "mean"),
               baseline_score=("baseline_score", "mean"))
