"""Tier 4: the real `xfer-t5x eval` and `xfer-t5x infer` commands on a tiny checkpoint and the
demo data: a zero-shot mixture evaluates every language of its target, the prediction files
exist and parse, and summary.txt / summary.json agree with the per-language metrics.jsonl lines
across two evaluated steps."""
import json
import math
import os
import re
import shutil
import subprocess
import sys

import pytest

from xfer_t5x.tasks.metrics import xtreme_r_aggregate

pytestmark = pytest.mark.slow

LANGS = ["en", "de", "es", "sw", "zh"]
MAX_EXAMPLES = 6


def _cli(*argv, check=True):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "xfer_t5x.cli", *argv], capture_output=True,
                        text=True, env=env, timeout=600)
  if check:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  return proc


@pytest.fixture(scope="module")
def run(trained_model, tmp_path_factory):
  """A copy of the trained model dir (checkpoints 15 and 30), evaluated by the CLI at both."""
  model_dir = tmp_path_factory.mktemp("eval_cmd") / "model"
  shutil.copytree(trained_model["model_dir"], model_dir)
  spm, root = trained_model["spm"], trained_model["data"]
  # mt5_tiny.gin is the trained architecture (its bfloat16 activations are the CLI's default).
  common = ["--gin_file", "models/mt5_tiny.gin", "--gin_file", "runs/eval.gin",
            f"--gin.MODEL_DIR={model_dir}", f"--gin.default_vocabulary.path={spm}",
            f"--gin.register_tasks.data_dir={root}",
            f"--gin.register_tasks.languages={{'xnli': {LANGS}, 'panx': ['de', 'sw']}}",
            f"--gin.MAX_EXAMPLES={MAX_EXAMPLES}", "--gin.BATCH_SIZE=4"]
  latest = _cli("eval", *common, "--gin.EVAL_TASKS=['xnli_zeroshot']")
  earlier = _cli("eval", *common, "--gin.EVAL_TASKS=['panx_zeroshot', 'xnli.de']",
                 "--gin.CHECKPOINT_STEP=15", "--gin.DECODE_METHOD=beam", "--gin.NUM_BEAMS=2")
  return {"dir": model_dir, "spm": spm, "root": root, "stdout": [latest.stdout, earlier.stdout]}


def _lines(run):
  return [json.loads(x) for x in
          (run["dir"] / "inference_eval" / "metrics.jsonl").read_text().splitlines()]


def test_zeroshot_mixture_evaluates_every_language(run):
  at2 = [x for x in _lines(run) if x["step"] == 30]
  assert sorted(x["task"] for x in at2) == sorted(f"xnli.{lang}" for lang in LANGS)
  assert {x["language"] for x in at2} == set(LANGS)
  assert all(x["split"] == "test" and x["num_examples"] == MAX_EXAMPLES for x in at2)
  at1 = [x for x in _lines(run) if x["step"] == 15]
  assert sorted(x["task"] for x in at1) == ["panx.de", "panx.sw", "xnli.de"]
  assert "xnli_train" not in {x["task"] for x in _lines(run)}


def test_prediction_files_exist_and_parse(run):
  expected = [f"xnli.{lang}-30.jsonl" for lang in LANGS] + [
      "panx.de-15.jsonl", "panx.sw-15.jsonl", "xnli.de-15.jsonl"]
  for name in expected:
    rows = [json.loads(line) for line in
            (run["dir"] / "inference_eval" / name).read_text().splitlines()]
    assert len(rows) == MAX_EXAMPLES, name
    for row in rows:
      assert {"inputs", "target", "prediction", "score"} <= set(row)
      assert isinstance(row["prediction"], str) and isinstance(row["score"], float)
    assert rows[0]["inputs"].startswith("tag: " if "panx" in name else "xnli premise: ")


def test_summary_agrees_with_the_metrics_lines(run):
  summary = json.loads((run["dir"] / "summary.json").read_text())
  assert list(summary["steps"]) == ["15", "30"] and summary["latest_step"] == 30
  text = (run["dir"] / "summary.txt").read_text()
  for step in ("15", "30"):
    lines = [x for x in _lines(run) if str(x["step"]) == step]
    by_target = {}
    for x in lines:
      by_target.setdefault(x["target"], {})[x["language"]] = x["metrics"]
      assert summary["steps"][step]["tasks"][x["task"]]["metrics"] == x["metrics"]
    expected = xtreme_r_aggregate(by_target)
    agg = summary["steps"][step]["xtreme_r"]
    assert agg["tasks"] == pytest.approx(expected["tasks"])
    for target, langs in expected["per_language"].items():
      assert agg["per_language"][target] == pytest.approx(langs)
    if not math.isnan(expected["overall"]):
      assert agg["overall"] == pytest.approx(expected["overall"])
    # summary.txt: the step's block lists every language's task score, to 2 decimals.
    block = text.split(f"== step {step}")[1].split("== step")[0]
    for target, langs in expected["per_language"].items():
      row = next(line for line in block.splitlines() if line.startswith(f"{target} "))
      shown = dict(re.findall(r"\b([a-z]{2}) (-?\d+\.\d\d)", row.split(None, 2)[2]))
      assert shown.keys() == langs.keys()
      for lang, value in langs.items():
        assert float(shown[lang]) == pytest.approx(value, abs=0.006)
  assert "overall" in run["stdout"][0] and "xnli.zh" in run["stdout"][0]
  # Real, varied numbers: the trained model gets English right more often than the others.
  xnli = summary["steps"]["30"]["xtreme_r"]["per_language"]["xnli"]
  assert xnli["en"] > min(xnli.values())


def test_infer_decodes_and_scores(run, tmp_path):
  common = ["--gin_file", "models/mt5_tiny.gin", "--gin_file", "runs/infer.gin",
            f"--gin.MODEL_DIR={run['dir']}", f"--gin.default_vocabulary.path={run['spm']}",
            "--gin.MAX_DECODE_LENGTH=6"]
  text = "xnli premise: The farmer reads a book. hypothesis: The farmer never reads a book."
  pairs = tmp_path / "pairs.jsonl"
  pairs.write_text(json.dumps({"inputs": text, "targets": "contradiction"}) + "\n" +
                   json.dumps({"inputs": text, "targets": "entailment"}) + "\n")
  out = tmp_path / "scores.jsonl"
  proc = _cli("infer", *common, "--input", text, "--input", "sst2 sentence: a good film")
  decoded = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
  assert [d["inputs"] for d in decoded] == [text, "sst2 sentence: a good film"]
  assert all(isinstance(d["prediction"], str) and d["score"] <= 0 for d in decoded)
  proc = _cli("infer", *common, "--input_file", str(pairs), "--score", "--output", str(out))
  scored = [json.loads(line) for line in out.read_text().splitlines()]
  assert [s["target"] for s in scored] == ["contradiction", "entailment"]
  assert all(s["score"] < 0 for s in scored) and scored[0]["score"] != scored[1]["score"]
  bad = _cli("infer", *common, "--input", text, "--score", check=False)
  assert bad.returncode == 2 and "needs a target for every input" in bad.stderr


def test_t5x_checkpoint_path_and_eval_output_dir(run, tmp_path):
  """T5X's CHECKPOINT_PATH names the checkpoint and EVAL_OUTPUT_DIR where the results go; the
  model dir is left as it was."""
  before = (run["dir"] / "summary.json").read_bytes()
  out = tmp_path / "eval_out"
  _cli("eval", "--gin_file", "models/mt5_tiny.gin", "--gin_file", "runs/eval.gin",
       f"--gin.CHECKPOINT_PATH={run['dir'] / 'checkpoint_15'}", f"--gin.EVAL_OUTPUT_DIR={out}",
       f"--gin.default_vocabulary.path={run['spm']}", f"--gin.register_tasks.data_dir={run['root']}",
       f"--gin.register_tasks.languages={{'xnli': {LANGS}}}", "--gin.EVAL_TASKS=['xnli.de']",
       "--gin.MAX_EXAMPLES=3", "--gin.BATCH_SIZE=4")
  summary = json.loads((out / "summary.json").read_text())
  assert list(summary["steps"]) == ["15"] and "xnli.de" in summary["steps"]["15"]["tasks"]
  assert (out / "inference_eval" / "xnli.de-15.jsonl").exists()
  assert (run["dir"] / "summary.json").read_bytes() == before
