"""Simulated results tables with a planted gain-vs-distance effect (for calibration and demos).

The simulated grid has the real XTREME-R language sets of a few targets, the real distances to
English, two or more sizes, `none` plus intermediate tasks, and several seeds. Per (size, task,
language) a baseline score is drawn; each run's score in a language is

    baseline + [intermediate != none] * (a + task_shift - b[size] * distance + u_language) + e

where the baseline is N(60, baseline_sd) - baseline_slope * distance (real baselines fall with
distance),
u_language ~ N(0, language_sd) (shared by tasks: the reason SEs are clustered by language)
and e ~ N(0, seed_sd) per run and language. So the true per-size slope of gain on distance is
-b[size]. QA targets record EM and F1 (both task scores); UD-POS also records a token accuracy
that is not a task score, so the analysis must filter on `task_score`.
"""
import numpy as np
import pandas as pd

from xfer_t5x.analysis import distances as D
from xfer_t5x.analysis import languages as L
from xfer_t5x.results import COLUMNS

DEFAULT_SIZES = {"small": 300_000_000, "xxl": 12_900_000_000}
DEFAULT_TASKS = ("xnli", "panx", "udpos", "xquad")
_METRICS = {"xquad": (("em", True), ("f1", True)), "mlqa": (("em", True), ("f1", True)),
            "tydiqa": (("em", True), ("f1", True)),
            "udpos": (("f1", True), ("token_accuracy", False))}


def simulate_results(seed, slopes, sizes=None, distance="featural", tasks=DEFAULT_TASKS,
                     intermediates=("mnli",), n_seeds=3, a=2.0, language_sd=1.0, seed_sd=1.0,
                     task_sd=1.0, dist_table=None, experiment="sim", baseline_sd=10.0,
                     baseline_slope=0.0, intermediate_effects=None):
  """A results DataFrame (COLUMNS) with gain = a - slopes[size] * distance + noise.

  slopes: {size name: b}; sizes: {size name: n_params} (default small and xxl);
  intermediate_effects: {intermediate: (a_i, b_i)}: that task's gain is
  a + a_i + task_shift - (b[size] + b_i) * distance + u_language (rankings that cross).
  """
  effects = dict(intermediate_effects or {})
  rng = np.random.default_rng(seed)
  sizes = dict(sizes or DEFAULT_SIZES)
  if set(slopes) != set(sizes):
    raise ValueError(f"slopes name sizes {sorted(slopes)}, sizes are {sorted(sizes)}")
  table = dist_table if dist_table is not None else D.distance_table()
  langs = [l for l in L.ALL_LANGUAGES]
  u = dict(zip(langs, rng.normal(0, language_sd, len(langs))))
  cols = {c: [] for c in COLUMNS}
  for size, n_params in sizes.items():
    for task in tasks:
      task_langs = L.XTREME_R_LANGUAGES[task]
      dist = table.loc[task_langs, distance].to_numpy(np.float64)
      base = rng.normal(60, baseline_sd, len(task_langs)) - baseline_slope * dist
      shift = {i: rng.normal(0, task_sd) for i in intermediates}
      for inter in ("none",) + tuple(intermediates):
        a_i, b_i = effects.get(inter, (0.0, 0.0))
        true_gain = 0.0 if inter == "none" else (
            a + a_i + shift[inter] - (slopes[size] + b_i) * dist
            + np.array([u[l] for l in task_langs]))
        for s in range(n_seeds):
          score = base + true_gain + rng.normal(0, seed_sd, len(task_langs))
          run_id = f"{experiment}/{size}/{inter}/{task}/seed{s}"
          for metric, is_task in _METRICS.get(task, (("accuracy", True),)):
            n = len(task_langs)
            vals = dict(run_id=run_id, experiment=experiment, size=size, n_params=n_params,
                        intermediate=inter, target_task=task, stage="evaluate", split="test",
                        seed=s, metric=metric, task_score=is_task, checkpoint=f"/sim/{run_id}",
                        step=1000, gin_sha256="0" * 64, data_version="sim", code_version="sim",
                        started_at="2026-01-01T00:00:00", finished_at="2026-01-01T01:00:00")
            for c, v in vals.items():
              cols[c].extend([v] * n)
            cols["language"].extend(task_langs)
            cols["value"].extend(score + (0.0 if is_task else 5.0))
  return pd.DataFrame(cols, columns=list(COLUMNS))
