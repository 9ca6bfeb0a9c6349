"""`xfer-t5x demo`, reduced (one size, fewer steps and languages): its outputs exist and parse,
it says its numbers come from untrained tiny models, and a second run does nothing new.

The full demo runs in CI through the README's command (`make demo`)."""
import os
import subprocess
import sys

import pytest

from xfer_t5x import results as results_lib

pytestmark = pytest.mark.slow

LANGS = ["en", "de", "es"]
TATOEBA = ["de", "es"]  # each -> English


def _env():
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("XLA_FLAGS", None)
  return env


def test_reduced_demo_outputs_exist_and_parse(tmp_path):
  out = tmp_path / "demo"
  cmd = [sys.executable, "-m", "xfer_t5x", "demo", "--out", str(out), "--bootstrap", "20",
         "--gin.experiment.sizes={'tiny': 'models/mt5_tiny.gin'}",
         "--gin.experiment.intermediates=['none', 'sst2']",
         f"--gin.experiment.languages={{'xnli': {LANGS}, 'panx': {LANGS}, 'xquad': {LANGS}, "
         f"'lareqa': {LANGS}, 'tatoeba': {TATOEBA}}}",
         "--gin.experiment.intermediate_steps=6", "--gin.experiment.target_steps=6"]
  first = subprocess.run(cmd, env=_env(), cwd=tmp_path, capture_output=True, text=True,
                         timeout=900)
  assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
  assert "untrained tiny models" in first.stdout
  assert "ran 9 phases" in first.stdout  # the sst2 intermediate, 2 x 2 target stages, 4 evals
  # The retrieval part: its sst2 intermediate, (xquad, lareqa) x 2 stages, 4 x 2 evaluations
  assert "grid demo_retrieval: ran 13 phases" in first.stdout
  for name in ("data/xnli/xnli.test.tsv", "spm.model", "grid/results.sqlite", "grid/state.sqlite",
               "results.csv", "report/report.md", "report/report.html"):
    assert (out / name).exists(), name

  frame = results_lib.load_results(str(out / "results.csv"))
  assert list(frame.columns) == list(results_lib.COLUMNS)
  assert set(frame["target_task"]) == {"xnli", "panx", "xquad", "lareqa", "tatoeba"}
  assert set(frame["intermediate"]) == {"none", "sst2"}
  assert set(frame["language"]) == set(LANGS)
  assert frame["run_id"].nunique() == 4 + 8
  assert frame["task_score"].any() and frame["value"].between(0, 100).all()
  # LAReQA's dual encoder: mAP@20 per language; Tatoeba's score with it sits beside its own
  lareqa = frame[frame["target_task"] == "lareqa"]
  assert set(lareqa["metric"]) == {"map@20"} and lareqa["task_score"].all()
  tatoeba = frame[frame["target_task"] == "tatoeba"]
  assert set(tatoeba["stage"]) == {"evaluate", "evaluate:lareqa_dual_encoder"}
  assert not tatoeba[tatoeba["stage"] != "evaluate"]["task_score"].any()
  assert tatoeba[tatoeba["stage"] == "evaluate"]["task_score"].all()
  assert frame.groupby("size")["n_params"].nunique().max() == 1  # the size's, dual encoder too
  from xfer_t5x.analysis import gains  # pylint: disable=g-import-not-at-top
  computed = gains.compute_gains(frame).by_language
  assert {"xnli", "panx", "xquad", "lareqa", "tatoeba"} <= set(computed["target_task"])
  db = results_lib.load_results(str(out / "grid" / "results.sqlite"))
  assert len(db) == len(frame)
  for name in ("report.md", "report.html"):
    text = (out / "report" / name).read_text(encoding="utf-8")
    assert "untrained tiny models" in text, name
  assert "# Transfer gain vs. linguistic distance" in (out / "report" / "report.md").read_text()

  csv_mtime = (out / "results.csv").stat().st_mtime_ns
  again = subprocess.run(cmd, env=_env(), cwd=tmp_path, capture_output=True, text=True,
                         timeout=900)
  assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
  assert "already done" in again.stdout and "Nothing new" in again.stdout
  assert (out / "results.csv").stat().st_mtime_ns == csv_mtime
