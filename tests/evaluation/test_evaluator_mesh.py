"""Tier 2: evaluation under meshes (1,1) and (4,2) gives identical predictions and metrics.

The test runs this file as a script in a subprocess with 8 fake CPU devices. The script copies
the checkpoint of conftest's briefly trained tiny model (its decoding has clear margins,
CONTRACTS.md "Numbers in tests") into two model dirs and evaluates `xnli_zeroshot` from each
under one mesh; it also reports the smallest top-1/top-2 logit margin over every decoded
position, so a near-tie cannot make the comparison meaningless.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

if __name__ == "__main__":
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

LANGS = ["en", "de", "es", "sw", "zh"]
MESHES = {"a": (1, 1), "b": (4, 2)}
STEP = 30  # the trained model's latest checkpoint (conftest.STEPS)
# conftest.TINY: mt5_tiny's architecture, float32 activations.
TINY = dict(emb_dim=64, num_heads=4, head_dim=16, mlp_dim=128, num_encoder_layers=2,
            num_decoder_layers=2, dtype="float32", dropout_rate=0.0)
RTOL, ATOL = 1e-5, 1e-6


# ------------------------------------------------------------------------- the subprocess
def _worker(out_dir: str, trained_dir: str, spm: str, data: str) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  from xfer_t5x.evaluation import batching, decode, examples as examples_lib
  from xfer_t5x.evaluation.evaluator import evaluate
  from xfer_t5x.evaluation.restore import restore_params
  from xfer_t5x.evaluation.runner import MeshRunner
  from xfer_t5x.model.api import EncoderDecoderModel
  from xfer_t5x.model.config import T5Config
  from xfer_t5x.runtime.partitioning import Partitioner, make_mesh
  from xfer_t5x.tasks import study, vocab

  out = pathlib.Path(out_dir)
  voc = vocab.build_local_vocabulary([], spm)  # exists: reused as is
  study.register_tasks(voc, data_dir=data, languages={"xnli": LANGS, "panx": LANGS})
  model = EncoderDecoderModel(T5Config(**TINY).with_vocab(voc.vocab_size))
  devices = jax.devices()
  report = {"metrics": {}, "min_margin": None}
  for key, (d, m) in MESHES.items():
    part = Partitioner(make_mesh(d, m, devices=devices[:d * m]))
    shutil.copytree(trained_dir, out / f"model_{key}")
    report["metrics"][key] = evaluate(str(out / f"model_{key}"), ["xnli_zeroshot"], model=model,
                                      partitioner=part, batch_size=8)
  # Margins of every decoded position (EOS included), (1,1) mesh.
  part = Partitioner(make_mesh(1, 1, devices=devices[:1]))
  params, _ = restore_params(out / "model_a", None, model, part)
  runner = MeshRunner(model, params, part, batch_size=8)
  margins = []
  for lang in LANGS:
    exs = examples_lib.load_examples(f"xnli.{lang}", "test")
    in_len, tgt_len = decode.lengths_for(exs)
    inputs = batching.pad_tokens([e["inputs"] for e in exs], in_len)
    tokens, _ = runner.decode(inputs, tgt_len)
    logits = runner.logits(inputs, tokens)
    top2 = np.sort(logits, axis=-1)[..., -2:]
    for row, seq in enumerate(tokens):
      eos = np.flatnonzero(seq == 1)
      last = int(eos[0]) if eos.size else len(seq) - 1
      margins.append(float(np.min(top2[row, :last + 1, 1] - top2[row, :last + 1, 0])))
  report["min_margin"] = min(margins)
  (out / "report.json").write_text(json.dumps(report))


# ------------------------------------------------------------------------- the test
@pytest.mark.slow
def test_meshes_1x1_and_4x2_give_identical_predictions_and_metrics(tmp_path, trained_model):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  args = [str(tmp_path), str(trained_model["model_dir"]), trained_model["spm"],
          trained_model["data"]]
  proc = subprocess.run([sys.executable, __file__, *args], capture_output=True,
                        text=True, env=env, timeout=900)
  assert proc.returncode == 0, proc.stderr[-6000:]
  report = json.loads((tmp_path / "report.json").read_text())
  assert report["min_margin"] > 1e-3, report["min_margin"]
  a, b = report["metrics"]["a"], report["metrics"]["b"]
  assert sorted(a) == [f"xnli.{lang}" for lang in sorted(LANGS)]
  assert a == b
  for lang in LANGS:
    rows = {}
    for key in MESHES:
      path = tmp_path / f"model_{key}" / "inference_eval" / f"xnli.{lang}-{STEP}.jsonl"
      rows[key] = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows["a"]) == len(rows["b"]) == 8
    for ra, rb in zip(rows["a"], rows["b"]):
      assert (ra["inputs"], ra["target"], ra["prediction"]) == (
          rb["inputs"], rb["target"], rb["prediction"])
      np.testing.assert_allclose(rb["score"], ra["score"], rtol=RTOL, atol=ATOL)
  # The trained model says label words: the comparison is about real predictions.
  preds = {json.loads(line)["prediction"] for line in (
      tmp_path / "model_a" / "inference_eval" / f"xnli.en-{STEP}.jsonl").read_text(
          ).splitlines()}
  assert preds & {"entailment", "neutral", "contradiction"}


if __name__ == "__main__":
  _worker(*sys.argv[1:5])
