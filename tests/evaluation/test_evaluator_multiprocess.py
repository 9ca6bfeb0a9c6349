"""Tier 3: evaluation across two processes joined by jax.distributed (4 fake CPU devices each,
one (4, 2) mesh over both) gives the predictions and metrics of one 8-device process (decoding,
and retrieval with the pool split over both processes' devices); every
process computes the metrics, only process 0 writes files.

The test runs this file as a script: `num_processes process_id port model_dir spm data out`.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

LANGS = ["en", "de", "es", "sw", "zh"]
# Retrieval too: each pool embedded straight onto the (4, 2) mesh that spans both processes.
RETRIEVAL = ["tatoeba.de", "tatoeba.zh"]
STEP = 30  # the trained model's latest checkpoint (conftest.STEPS)
TINY = dict(emb_dim=64, num_heads=4, head_dim=16, mlp_dim=128, num_encoder_layers=2,
            num_decoder_layers=2, dtype="float32", dropout_rate=0.0)


def _worker(num_processes, process_id, port, model_dir, spm, data, out):
  num_processes, process_id = int(num_processes), int(process_id)
  os.environ["JAX_PLATFORMS"] = "cpu"
  os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={8 // num_processes}"
  from xfer_t5x.runtime import distributed  # pylint: disable=g-import-not-at-top
  if num_processes > 1:
    distributed.initialize(f"localhost:{port}", num_processes, process_id,
                           local_device_count=8 // num_processes)
  import jax  # pylint: disable=g-import-not-at-top
  from xfer_t5x.evaluation.evaluator import evaluate  # pylint: disable=g-import-not-at-top
  from xfer_t5x.model.api import EncoderDecoderModel  # pylint: disable=g-import-not-at-top
  from xfer_t5x.model.config import T5Config  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime.partitioning import Partitioner, make_mesh  # pylint: disable=g-import-not-at-top
  from xfer_t5x.tasks import study, vocab  # pylint: disable=g-import-not-at-top
  assert jax.device_count() == 8 and jax.process_count() == num_processes
  voc = vocab.build_local_vocabulary([], spm)  # exists: reused as is
  study.register_tasks(voc, data_dir=data, languages={"xnli": LANGS, "panx": LANGS})
  model = EncoderDecoderModel(T5Config(**TINY).with_vocab(voc.vocab_size))
  metrics = evaluate(model_dir, ["xnli_zeroshot"] + RETRIEVAL, model=model,
                     partitioner=Partitioner(make_mesh(4, 2)), batch_size=8)
  with open(os.path.join(out, f"metrics_{num_processes}_{process_id}.json"), "w") as f:
    json.dump(metrics, f)


def _start(args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  return subprocess.Popen([sys.executable, __file__, *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env)


@pytest.mark.slow
def test_two_processes_evaluate_like_one(tmp_path, trained_model):
  dirs = {n: tmp_path / f"model_{n}proc" for n in (1, 2)}
  for d in dirs.values():
    shutil.copytree(trained_model["model_dir"], d)
  from tests.conftest import free_port  # pylint: disable=g-import-not-at-top  (this file is also a script)
  common = (trained_model["spm"], trained_model["data"], tmp_path)
  port = free_port()
  procs = [_start((2, i, port, dirs[2], *common)) for i in range(2)]
  procs.append(_start((1, 0, 0, dirs[1], *common)))
  for p in procs:
    out = p.communicate(timeout=900)[0]
    assert p.returncode == 0, out[-5000:]
  read = lambda name: json.loads((tmp_path / name).read_text())
  single, p0, p1 = read("metrics_1_0.json"), read("metrics_2_0.json"), read("metrics_2_1.json")
  assert sorted(single) == sorted([f"xnli.{lang}" for lang in LANGS] + RETRIEVAL)
  assert p0 == p1 == single
  for name in RETRIEVAL:
    lines = {n: (d / "inference_eval" / f"{name}-{STEP}.jsonl").read_text().splitlines()
             for n, d in dirs.items()}
    got = [json.loads(x) for x in lines[2]]
    want = [json.loads(x) for x in lines[1]]
    assert len(want) == 8 and [r["prediction"] for r in got] == [r["prediction"] for r in want]
  for lang in LANGS:
    name = f"xnli.{lang}-{STEP}.jsonl"
    lines = {n: (d / "inference_eval" / name).read_text().splitlines() for n, d in dirs.items()}
    assert len(lines[1]) == 8
    got = [json.loads(x) for x in lines[2]]
    want = [json.loads(x) for x in lines[1]]
    assert [(r["inputs"], r["prediction"]) for r in got] == [
        (r["inputs"], r["prediction"]) for r in want]
  # Only process 0 wrote: one metrics line per language and step, not two.
  metric_lines = (dirs[2] / "inference_eval" / "metrics.jsonl").read_text().splitlines()
  assert len(metric_lines) == len((dirs[1] / "inference_eval" / "metrics.jsonl").read_text(
      ).splitlines())


if __name__ == "__main__":
  _worker(*sys.argv[1:8])
