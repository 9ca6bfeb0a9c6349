"""`xfer-t5x plan` as a user runs it: real compiles, for a TPU topology (libtpu's compile-only
devices; RESEARCH.md) and for fake CPU devices.

The TPU tests need libtpu (the `[tpu]` extra, which `make env` and CI install); they take about
2 minutes each here.
"""
import json
import math
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

GIB = 2 ** 30


def _plan(tmp_path, *args, timeout=1500):
  out = tmp_path / "plan.json"
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  proc = subprocess.run([sys.executable, "-m", "xfer_t5x.cli", "plan", *args, "--out", str(out)],
                        capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp_path)
  doc = json.loads(out.read_text()) if out.exists() else None
  return proc, doc


def _needs_libtpu():
  from xfer_t5x.launch import plan_search  # pylint: disable=g-import-not-at-top
  if not plan_search.libtpu_available():
    pytest.skip("libtpu is not installed: pip install -c constraints.txt -e '.[tpu]' "
                "(make env installs it)")


def _hand_count_state_bytes(files, bindings, model_parallel):
  """Parameter and Adafactor-state bytes per device, counted from the logical partition specs
  by hand: on a 1-D mesh 'vocab', 'mlp', 'heads' and 'joined_kv' split over 'model' where they
  divide; everything else is replicated."""
  import gin  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from xfer_t5x.launch import plan  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime import gin_utils, train_state  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime.optimizer import Adafactor  # pylint: disable=g-import-not-at-top
  import xfer_t5x.runtime.trainer  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  gin.clear_config()
  gin_utils.setup_gin(files, bindings, finalize=False)
  try:
    shape = plan.run_shape_from_gin()
    from xfer_t5x.model.api import EncoderDecoderModel  # pylint: disable=g-import-not-at-top
    model = EncoderDecoderModel(shape.config())
    optimizer = Adafactor(model.logical_axes())
    shapes = train_state.state_shapes(model, optimizer)
    axes = train_state.state_logical_axes(model, optimizer)
  finally:
    gin.clear_config()
  split = {"vocab", "mlp", "heads", "joined_kv"}
  total = 0
  for spec, leaf in zip(jax.tree_util.tree_leaves(axes, is_leaf=lambda x: isinstance(x, P)),
                        jax.tree_util.tree_leaves(shapes)):
    dims = list(leaf.shape)
    for i, name in enumerate(tuple(spec)):
      if name in split and dims[i] % model_parallel == 0:
        dims[i] //= model_parallel
    total += math.prod(dims) * leaf.dtype.itemsize
  return total


def test_mt5_small_finetune_compiles_for_v5p_and_state_matches_the_partition_specs(tmp_path):
  _needs_libtpu()
  # mT5-small's width and vocabulary with 2+2 layers (the embeddings, most of its state, are
  # all there; fewer layers keep the compile within the suite's budget).
  files = ["models/mt5_small.gin", "runs/finetune.gin", "partitioning/1d.gin"]
  layers = ["T5Config.num_encoder_layers=2", "T5Config.num_decoder_layers=2"]
  args = [a for f in files for a in ("--gin_file", f)] + [f"--gin.{b}" for b in layers]
  proc, doc = _plan(tmp_path, *args, "--gin.MODEL_PARALLEL=2", "--topology", "v5p:2x2x1",
                    "--no_search")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert doc["target"]["platform"] == "tpu" and len(doc["attempts"]) == 1
  rep, x = doc["attempts"][0]["report"], doc["attempts"][0]["derived"]
  assert rep["device_kind"] == "TPU v5" and rep["num_devices"] == 4
  assert rep["mesh"] == {"data": 2, "model": 2}
  assert rep["hbm_per_device"] == 95 * GIB and x["chips"] == 4
  assert x["fits"] and 0 < x["total_bytes_per_device"] < rep["hbm_per_device"]
  # Parameters and factored Adafactor statistics per device: what the compiled step takes
  # (arguments less the batch) against a count from the partition specs.
  hand = _hand_count_state_bytes(files, ["MODEL_PARALLEL=2"] + layers, 2)
  assert x["analytic_state_bytes_per_device"] == pytest.approx(hand, rel=1e-6)
  assert x["compiled_state_bytes_per_device"] == pytest.approx(hand, rel=0.01)
  # Its two 250112 x 512 embeddings are ~0.95 GiB in float32; split two ways about half that.
  assert 0.4 * GIB < hand < 0.8 * GIB
  # FLOPs: XLA's count (no loops here) within a few percent of the analytic count.
  assert 0.95 < x["xla_train_flops"] / x["analytic_train_flops"] < 1.25
  assert x["step_seconds"] > 0 and "XLA" in x["step_seconds_source"]
  assert 0 < x["mfu"] < 1 and x["tokens_per_second_per_chip"] > 0
  assert rep["decode"]["ok"] and rep["decode"]["temp_bytes"] > 0
  for label in ("temporaries", "generated code", "MFU", "tokens/s per chip", "TPU v5"):
    assert label in proc.stdout


def test_too_big_run_is_reported_with_a_configuration_that_fits(tmp_path):
  """A 1+1-layer mT5-small at batch 512, 1024/128 on v5e-4 (16 GiB chips) does not fit (the
  output layer's logits alone are over); the search finds an option that does, and its flags
  reproduce that configuration. One layer per stack keeps each of the search's compiles short."""
  _needs_libtpu()
  files = ["models/mt5_small.gin", "runs/finetune.gin", "partitioning/1d.gin"]
  bindings = ["--gin.T5Config.num_encoder_layers=1", "--gin.T5Config.num_decoder_layers=1",
              "--gin.BATCH_SIZE=512"]
  args = [a for f in files for a in ("--gin_file", f)]
  # The fit is looped (microbatches); its step-time estimate (two more compiles, ~4 min here) is
  # left out to keep the suite short: the estimator's arithmetic is tested in
  # test_plan_units.py, and a real run of it is in the README's notes.
  proc, doc = _plan(tmp_path, *args, *bindings, "--topology", "v5e-4", "--no_decode",
                    "--no_step_estimate")
  assert proc.returncode == 1, proc.stderr[-3000:]  # the run as configured does not fit
  first = doc["attempts"][0]
  assert not first["derived"]["fits"]
  assert "over" in first["derived"]["verdict"]  # says by how much
  chosen = doc["attempts"][doc["chosen"]]
  assert doc["fits"] and doc["chosen"] > 0 and chosen["derived"]["fits"]
  assert chosen["derived"]["total_bytes_per_device"] <= chosen["report"]["hbm_per_device"]
  assert "does not fit" in proc.stdout and "run it with these flags added" in proc.stdout

  import gin  # pylint: disable=g-import-not-at-top
  from xfer_t5x.launch import plan  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime import gin_utils  # pylint: disable=g-import-not-at-top
  import xfer_t5x.runtime.trainer  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  _, flags = gin_utils.extract_gin_bindings(bindings + doc["suggested_gin_flags"])
  gin.clear_config()
  gin_utils.setup_gin(files, flags, finalize=False)
  try:
    assert plan.run_shape_from_gin().to_json() == chosen["report"]["shape"]
  finally:
    gin.clear_config()


def test_without_a_tpu_topology_the_run_compiles_for_cpu_devices_and_says_so(tmp_path):
  proc, doc = _plan(tmp_path, "--gin_file", "models/mt5_tiny.gin", "--gin_file",
                    "runs/train.gin", "--gin_file", "partitioning/1d.gin",
                    "--gin.MODEL_PARALLEL=2", "--gin.BATCH_SIZE=16",
                    "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 16}",
                    "--vocab_size", "512", "--topology", "cpu:8")
  assert proc.returncode == 0, proc.stderr[-3000:]
  rep, x = doc["attempts"][0]["report"], doc["attempts"][0]["derived"]
  assert rep["platform"] == "cpu" and rep["mesh"] == {"data": 4, "model": 2}
  assert rep["hbm_per_device"] is None and x["mfu"] is None
  assert x["compiled_state_bytes_per_device"] == pytest.approx(
      x["analytic_state_bytes_per_device"], rel=0.01)
  assert "CPU figures, not a TPU's" in proc.stdout
