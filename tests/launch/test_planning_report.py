"""The planning report: the study's bill from compiled step times, the cache that makes the
report regenerate without compiling, and the committed report reproduced from the committed
cache."""
import dataclasses
import json
import os
import pathlib
import shutil
import time

import pytest

from xfer_t5x.experiments import experiment as exp_lib
from xfer_t5x.launch import plan_search, planning_report, planning_report_cmd, study_bill
from xfer_t5x.launch.plan import CompileReport, StepReport
from xfer_t5x.model.config import T5Config
from xfer_t5x.runtime import flops as flops_lib

LAUNCH = pathlib.Path(planning_report_cmd.LAUNCH_DIR)


def _plan(tmp_path, **kw):
  exp = exp_lib.experiment(
      name="bill", sizes={"base": "models/mt5_base.gin", "xl": "models/mt5_xl.gin"},
      targets={"xnli": ["xnli_train"], "xquad": ["xquad_train"]},
      intermediates=["none", "mnli"], seeds=[0, 1], intermediate_steps=300, target_steps=100,
      feature_lengths={"default": {"inputs": 1024, "targets": 128},
                       "xquad": {"inputs": 1024, "targets": 512}},
      size_gin_files={"base": ["plans/mt5_base_v5p8.gin"]}, **kw)
  return exp_lib.expand(exp, root_dir=str(tmp_path))


def _entry(name, lengths, step, chips=4, lower_bound=False):
  model = dataclasses.asdict(T5Config(emb_dim=768, num_heads=12, head_dim=64, mlp_dim=2048,
                        num_encoder_layers=12, num_decoder_layers=12, vocab_size=250112))
  return {"name": name, "gin_files": ["models/mt5_base.gin", "runs/finetune.gin",
                                      "plans/mt5_base_v5p8.gin"],
          "accelerator": "v5p-8", "chips": chips, "status": "fits", "batch_size": 128,
          "inputs_length": lengths[0], "targets_length": lengths[1], "step_seconds": step,
          "step_seconds_is_lower_bound": lower_bound, "shape": {"model": model},
          "analytic_train_flops": flops_lib.train_step_flops(T5Config(**model), 128, *lengths)}


def test_bill_prices_each_phase_shape_on_its_sizes_slice(tmp_path):
  plan = _plan(tmp_path)
  # base: 2 seeds x (mnli intermediate 300 steps at 1024/128; 2 intermediates x (xnli 100 steps
  # at 1024/128, xquad 100 steps at 1024/512)).
  b = study_bill.bill(plan, [_entry("base_cls", (1024, 128), 2.0)])
  base, xl = b["sizes"]
  assert base["training_phases"] == 2 * (1 + 2 * 2) and base["steps"] == 2 * (300 + 4 * 100)
  shapes = {(s["inputs_length"], s["targets_length"]): s for s in base["phases_by_shape"]}
  cls, qa = shapes[(1024, 128)], shapes[(1024, 512)]
  assert cls["steps"] == 2 * (300 + 200) and cls["step_seconds"] == 2.0
  assert cls["step_from"] == "compiled (base_cls)"
  config = T5Config(**_entry("x", (1, 1), 1)["shape"]["model"])
  ratio = (flops_lib.train_step_flops(config, 128, 1024, 512)
           / flops_lib.train_step_flops(config, 128, 1024, 128))
  assert ratio > 1.1 and qa["step_seconds"] == pytest.approx(2.0 * ratio)
  seconds = 1000 * 2.0 + 400 * 2.0 * ratio
  assert base["chip_hours"] == pytest.approx(seconds * 4 / 3600)
  assert base["days"] == pytest.approx(seconds / 86400)
  assert "no plan file" in xl["why_not"] and "chip_hours" not in xl
  assert b["chip_hours"] == pytest.approx(base["chip_hours"]) and b["priced_sizes"] == ["base"]

  # With the QA lengths compiled too, those phases take that compile's own step time.
  b2 = study_bill.bill(plan, [_entry("base_cls", (1024, 128), 2.0),
                              _entry("base_qa", (1024, 512), 5.0, lower_bound=True)])
  qa2 = {(s["inputs_length"], s["targets_length"]): s
         for s in b2["sizes"][0]["phases_by_shape"]}[(1024, 512)]
  assert qa2["step_seconds"] == 5.0 and qa2["step_from"] == "compiled (base_qa)"
  assert b2["sizes"][0]["lower_bound"]
  # A size whose configuration did not fit is not priced, and says why.
  bad = dict(_entry("base_cls", (1024, 128), None), status="does not fit")
  assert study_bill.bill(plan, [bad])["sizes"][0]["why_not"].endswith("does not fit")


def _fake_report(shape, target):
  return CompileReport(
      shape=shape.to_json(), platform="tpu", device_kind="TPU v5", num_devices=4,
      devices_per_chip=1.0, mesh={"data": 4, "model": 1}, hbm_per_device=95 * 2 ** 30,
      peak_per_device=459e12, bandwidth_per_device=2765e9, analytic_state_bytes=2 ** 30,
      analytic_param_bytes=2 ** 29, analytic_batch_bytes=2 ** 20,
      analytic_train_flops=1e15,
      train=StepReport(True, 12.0, argument_bytes=2 ** 31, temp_bytes=2 ** 34,
                       xla_flops_per_device=3e14, optimal_seconds=1.5))


@pytest.mark.skipif(not plan_search.libtpu_available(), reason="libtpu is not installed "
                    "(pip install 'xfer_t5x[tpu]'): the report is about TPU topologies")
def test_report_compiles_once_then_regenerates_from_the_cache(tmp_path, monkeypatch, capsys):
  compiled = []

  def fake_compile(shape, target, gin_files, gin_bindings, with_decode, timeout):
    compiled.append((shape.model["emb_dim"], target.topology, with_decode))
    return _fake_report(shape, target)

  monkeypatch.setattr(plan_search, "compile_in_child", fake_compile)
  base = planning_report.by_name(["mt5_base_v5p8"])
  cache_path = tmp_path / "cache.jsonl"
  entries = planning_report.compile_configurations(base, plan_search.Cache(str(cache_path)),
                                                   log=lambda m: None)
  assert compiled == [(768, "v5p:2x2x1", False)]
  (e,) = entries
  assert e["status"] == "fits" and e["mesh"] == {"data": 4, "model": 1}
  assert e["step_seconds"] == 1.5 and e["mfu"] == pytest.approx(1e15 / 1.5 / (4 * 459e12))
  assert e["chip_hours_per_10k_steps"] == pytest.approx(4 * 1.5 * 10_000 / 3600)
  assert e["batch_size"] == 128 and (e["inputs_length"], e["targets_length"]) == (1024, 512)
  # A second report (a new process: the cache read from its file) compiles nothing.
  again = planning_report.compile_configurations(base, plan_search.Cache(str(cache_path)),
                                                 compile_missing=False, log=lambda m: None)
  assert len(compiled) == 1 and again == entries

  # The command: --cached_only lists what the cache lacks; PLANS.md and plans.json agree.
  out = tmp_path / "out"
  assert planning_report_cmd_main(["--cached_only", "--cache", str(cache_path),
                                   "--out_dir", str(out)]) == 0
  assert len(compiled) == 1
  doc = json.loads((out / "plans.json").read_text())
  status = {c["name"]: c["status"] for c in doc["configurations"]}
  assert status["mt5_base_v5p8"] == "fits"
  assert set(status.values()) == {"fits", "not compiled"}
  md = (out / "PLANS.md").read_text()
  assert "| mt5_base_v5p8 | v5p-8 (4) | 128, 1024/512 | data 4 x model 1 | 1-D | none | no | 1 " \
         "| 18.0 (95.0) | 1.500 |" in md
  assert "| mt5_xxl_v6e64 | v6e-64 (64) | -, 1024/128 | not compiled yet" in md
  bill = {r["size"]: r for r in doc["bill"]["sizes"]}
  assert bill["base"]["configuration"] == "mt5_base_v5p8" and bill["base"]["chips"] == 4
  assert "chip_hours" not in bill["xxl"]


def planning_report_cmd_main(argv):
  from xfer_t5x import cli  # pylint: disable=g-import-not-at-top
  return cli.main(["plan-report"] + argv)


@pytest.mark.skipif(not plan_search.libtpu_available(), reason="libtpu is not installed "
                    "(pip install 'xfer_t5x[tpu]'): the report is about TPU topologies")
def test_committed_report_regenerates_from_the_committed_cache(tmp_path):
  cache = LAUNCH / "plan_cache.jsonl"
  before = cache.read_bytes()
  shutil.copy(cache, tmp_path / "cache.jsonl")
  t = time.time()
  assert planning_report_cmd_main(["--cached_only", "--cache", str(tmp_path / "cache.jsonl"),
                                   "--out_dir", str(tmp_path)]) == 0
  print(f"regenerated in {time.time() - t:.1f} s")
  assert (tmp_path / "cache.jsonl").read_bytes() == before  # nothing compiled, nothing added
  assert (tmp_path / "plans.json").read_text() == (LAUNCH / "plans.json").read_text()
  assert (tmp_path / "PLANS.md").read_text() == (LAUNCH / "PLANS.md").read_text()
  doc = json.loads((LAUNCH / "plans.json").read_text())
  names = {c["name"] for c in doc["configurations"]}
  assert names == {c.name for c in planning_report.CONFIGURATIONS}
