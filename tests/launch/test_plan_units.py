"""Tier 1 for `plan`: the chip table, accelerator names, run shapes read from gin and written back
as flags, compiler messages, and the figures a plan must never report."""
import dataclasses

import gin
import pytest

from xfer_t5x.launch import plan, plan_search
from xfer_t5x.runtime import chips, gin_utils
import xfer_t5x.runtime.trainer  # noqa: F401  (gin names the run files bind)


@pytest.mark.parametrize("name,topology,n_chips,accelerator", [
    ("v5p-8", "v5p:2x2x1", 4, "v5p-8"), ("v5p-64", "v5p:2x4x4", 32, "v5p-64"),
    ("v4-128", "v4:4x4x4", 64, "v4-128"), ("v5litepod-256", "v5e:16x16", 256, "v5e-256"),
    ("v6e-64", "v6e:8x8", 64, "v6e-64"), ("v5e-4", "v5e:2x2", 4, "v5e-4"),
    ("v5p:2x4x4", "v5p:2x4x4", 32, "v5p-64"), ("v4:4x4x4", "v4:4x4x4", 64, "v4-128"),
])
def test_accelerator_names(name, topology, n_chips, accelerator):
  """Accelerator types count TensorCores on v4/v5p and chips on v5e/v6e (RESEARCH.md)."""
  chip, topo, n = chips.parse_accelerator(name)
  assert (topo, n) == (topology, n_chips)
  assert chips.accelerator_name(chip, n) == accelerator


@pytest.mark.parametrize("bad", ["v5p-12", "v7-8", "v5p:2x2", "tpu"])
def test_bad_accelerator_names_say_what_is_expected(bad):
  with pytest.raises(ValueError, match="accelerator|topology"):
    chips.parse_accelerator(bad)


@dataclasses.dataclass
class FakeDevice:
  device_kind: str
  num_cores: int
  platform: str = "tpu"


def test_chip_figures_per_device_count_chips_not_devices():
  # v5p reports 'TPU v5' (no 'p'): one megacore device is the whole chip.
  hbm, peak, bandwidth = chips.per_device(FakeDevice("TPU v5", 2))
  assert (hbm, peak, bandwidth) == (95 * chips.GIB, 459e12, 2765e9)
  # A v4 topology without megacore: one device per TensorCore, half a chip each.
  hbm, peak, bandwidth = chips.per_device(FakeDevice("TPU v4", 1))
  assert (hbm, peak, bandwidth) == (16 * chips.GIB, 275e12 / 2, 1228e9 / 2)
  assert chips.devices_per_chip(FakeDevice("TPU v4", 1)) == 2
  assert chips.per_device(FakeDevice("TPU v5 lite", 1))[1] == 197e12
  # v3 (two devices per chip), as runtime/peak.py's table had it before the chip table.
  assert chips.per_device(FakeDevice("TPU v3", 1))[1] == 123e12 / 2
  assert chips.per_device(FakeDevice("TPU v6 lite", 1))[0] == 32 * chips.GIB
  assert chips.per_device(FakeDevice("cpu", 1, platform="cpu")) is None
  for chip in chips.CHIPS.values():
    assert chip.source.startswith("cloud.google.com/tpu/docs/")


def test_out_of_memory_messages_are_read():
  msg = ("RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out of memory in memory space "
         "hbm. Used 154.82G of 95.74G hbm. Exceeded hbm capacity by 59.08G.")
  assert plan.is_oom(msg)
  needed, available = plan.parse_oom(msg)
  assert needed == int(154.82 * 2 ** 30) and available == int(95.74 * 2 ** 30)
  msg = ("RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO "
         "temporaries (17.64G) exceeds available HBM (15.75G).")
  assert plan.is_oom(msg)
  assert plan.parse_oom(msg) == (int(17.64 * 2 ** 30), int(15.75 * 2 ** 30))
  assert not plan.is_oom("INTERNAL: something else")


@pytest.fixture
def parsed_gin():
  yield
  gin.clear_config()


def _shape_of(files, bindings):
  gin.clear_config()
  gin_utils.setup_gin(files, bindings, finalize=False)
  try:
    return plan.run_shape_from_gin()
  finally:
    gin.clear_config()


def test_run_shape_read_from_gin_and_flags_round_trip(parsed_gin):
  files = ["models/mt5_base.gin", "runs/finetune.gin", "partitioning/2d.gin"]
  shape = _shape_of(files, ["MODEL_PARALLEL=4", "BATCH_SIZE=64"])
  assert shape.model["emb_dim"] == 768 and shape.model["vocab_size"] == 250112
  assert (shape.batch_size, shape.inputs_length, shape.targets_length) == (64, 1024, 128)
  assert (shape.model_parallel, shape.parameter_partitioning_dims) == (4, 2)
  changed = shape.replace(model={"remat_policy": "dots_saveable", "scan_layers": True},
                          num_microbatches=4, model_parallel=8, batch_size=256,
                          inputs_length=512)
  _, flags = gin_utils.extract_gin_bindings(changed.gin_flags())
  assert _shape_of(files, ["MODEL_PARALLEL=4"] + flags) == changed


def test_run_without_lengths_is_refused_with_the_fix(parsed_gin):
  gin_utils.setup_gin(["models/mt5_small.gin"], [], finalize=False)
  with pytest.raises(ValueError, match="runs/finetune.gin"):
    plan.run_shape_from_gin()


def _report(**kw):
  shape = plan.RunShape(model=dict(emb_dim=512, num_encoder_layers=8, num_decoder_layers=8,
                                   scan_layers=kw.pop("scan", False)),
                        batch_size=128, inputs_length=1024, targets_length=128,
                        num_microbatches=kw.pop("micro", 1))
  train = plan.StepReport(True, 1.0, argument_bytes=10, temp_bytes=kw.pop("temp", 100),
                          xla_flops_per_device=1e12, xla_bytes_accessed_per_device=4e9,
                          optimal_seconds=kw.pop("xla_s", 0.5))
  return plan.CompileReport(
      shape=shape.to_json(), platform="tpu", device_kind="TPU v5", num_devices=4,
      devices_per_chip=1.0, mesh={"data": 4, "model": 1}, hbm_per_device=1000,
      peak_per_device=500e12, bandwidth_per_device=2e12, analytic_state_bytes=8,
      analytic_param_bytes=4, analytic_batch_bytes=2, analytic_train_flops=4e12, train=train,
      **kw)


def test_step_time_is_xla_where_usable_else_a_stated_bound_never_a_negative_figure():
  plain = _report()
  assert plain.step_seconds == 0.5 and not plain.step_is_bound
  assert plain.mfu == pytest.approx(4e12 / 0.5 / (4 * 500e12))
  # XLA's estimate negative (v4, v5e, v6e here) on a loop-free step: the roofline bound,
  # the longer of FLOPs at peak (2 ms) and bytes at HBM bandwidth (2 ms + a little).
  neg = _report(xla_s=-33.97)
  assert neg.xla_seconds is None and neg.step_is_bound
  assert neg.step_seconds == pytest.approx(max(1e12 / 500e12, 4e9 / 2e12))
  assert "roofline lower bound" in neg.step_source
  # Under a loop XLA counts one body: neither its estimate nor a roofline of one body is used.
  for looped in (_report(micro=4, xla_s=-1624.0), _report(scan=True, xla_s=0.01)):
    assert looped.xla_seconds is None and looped.roofline_seconds is None
    assert looped.step_seconds is None and looped.mfu is None
  est = _report(micro=2, xla_s=-97.0, step_estimate=2.0, step_estimate_source="companions",
                step_estimate_is_bound=True)
  assert est.step_seconds == 2.0 and est.step_source == "companions" and est.step_is_bound
  assert plain.fits and not _report(temp=2000).fits


def test_companion_times_are_all_of_one_kind():
  xla = [_report(xla_s=0.1), _report(xla_s=0.2)]
  assert plan_search._companion_seconds(xla) == ([0.1, 0.2], False)  # pylint: disable=protected-access
  mixed = [_report(xla_s=0.1), _report(xla_s=-5.0)]
  seconds, bound = plan_search._companion_seconds(mixed)  # pylint: disable=protected-access
  assert bound and seconds == [r.roofline_seconds for r in mixed]


def test_two_d_sharding_is_skipped_when_it_cannot_close_the_gap():
  shape = plan.RunShape.from_json(_report().shape)
  over = _report(temp=1050)  # 1060 bytes per device of 1000: 60 over
  assert "saves at most" in plan_search._cannot_close_gap(  # pylint: disable=protected-access
      "2-D parameter sharding", shape, over)
  big_state = dataclasses.replace(over, analytic_state_bytes=400)  # saves 300 > 60
  assert plan_search._cannot_close_gap(  # pylint: disable=protected-access
      "2-D parameter sharding", shape, big_state) is None
  assert plan_search._cannot_close_gap(  # pylint: disable=protected-access
      "remat full", shape, over) is None


def test_suggested_flags_survive_the_shell():
  import shlex  # pylint: disable=g-import-not-at-top
  from xfer_t5x.launch import plan_report  # pylint: disable=g-import-not-at-top
  shape = plan.RunShape(model={"remat_policy": "full", "scan_layers": True}, batch_size=256,
                        inputs_length=1024, targets_length=128, num_microbatches=4)
  flags = shape.gin_flags()
  line = " ".join(plan_report.shell_word(f) for f in flags)
  assert shlex.split(line) == flags
  assert "\"--gin.TASK_FEATURE_LENGTHS={'inputs': 1024, 'targets': 128}\"" in line


def _fake_compiler(memory_of, crash=()):
  """A stand-in for the child-process compile: bytes per device from the shape, or a crash."""
  calls = []

  def compile_in_child(shape, target, gin_files, gin_bindings, with_decode, timeout):
    del target, gin_files, gin_bindings, with_decode, timeout
    calls.append(shape)
    if shape.short() in crash:
      return plan_search._failed(  # pylint: disable=protected-access
          shape, plan_search.Target("v5p-8", topology="v5p:2x2x1"),
          "the compiler process ended with status -11: Segmentation fault")
    rep = _report(temp=memory_of(shape) - 10, xla_s=0.5)
    rep.shape = shape.to_json()
    rep.train.ok = rep.train.total_bytes <= 1000
    if not rep.train.ok:
      rep.train.oom, rep.train.needed_bytes, rep.train.available_bytes = \
          True, memory_of(shape), 1000
    return rep
  return compile_in_child, calls


def test_search_drops_a_crash_and_an_option_that_hurts_and_stops_at_the_first_fit(monkeypatch):
  def memory(s):
    m = 1500
    if s.model_parallel > 1:
      m += 400  # more model parallelism made it worse
    if s.model.get("remat_policy") == "dots_saveable":
      m -= 300
    if s.num_microbatches > 1:
      m -= 400
    return m
  shape = plan.RunShape(model=dict(emb_dim=512, num_heads=8, num_encoder_layers=8,
                                   num_decoder_layers=8), batch_size=128, inputs_length=1024,
                        targets_length=128)
  fake, calls = _fake_compiler(memory, crash={
      "model=1 1-D remat=full scan=False micro=1"})
  monkeypatch.setattr(plan_search, "compile_in_child", fake)
  monkeypatch.setattr(plan_search, "estimate_looped_step", lambda *a, **k: None)
  target = plan_search.Target("v5p-8", topology="v5p:2x2x1")
  logs = []
  attempts = plan_search.search(shape, target, log=logs.append)
  moves = [a.move for a in attempts]
  # 2-D sharding skipped (8 bytes of state cannot close a 500-byte gap); model parallelism
  # compiled once: the second x2 starts from the same kept shape and is not compiled again.
  assert "2-D parameter sharding" not in moves
  assert moves.count("model parallelism x2") == 1
  assert any("dropped, it did not reduce memory" in line for line in logs)
  assert any("remat full: dropped, the compiler failed" in line for line in logs)
  last = attempts[-1]
  assert last.report.fits and last.move == "microbatches x2"
  # Built on what helped (dots_saveable), not on what hurt (model x2) or crashed (full).
  assert last.shape.model_parallel == 1 and last.shape.model["remat_policy"] == "dots_saveable"
  assert len(calls) == len(attempts)


def test_a_compile_over_its_time_limit_is_reported_as_such(tmp_path):
  shape = plan.RunShape(model=dict(num_encoder_layers=1, num_decoder_layers=1), batch_size=8,
                        inputs_length=8, targets_length=8)
  rep = plan_search.compile_in_child(shape, plan_search.Target("cpu:1", cpu_devices=1),
                                     timeout=0.01)
  assert not rep.train.ok and "timed out" in rep.train.error and not rep.fits


def test_looped_step_is_extrapolated_from_loop_free_compiles(monkeypatch):
  """1+1 layers take 1.0 s and 2+2 layers 1.5 s per microbatch: 8+8 layers take 1.0 + 7 x 0.5
  = 4.5 s, times 2 microbatches. A microbatch too big to compile without loops is halved and
  the time scaled back."""
  seen = []

  def fake(shape, target, gin_files, gin_bindings, with_decode, timeout):
    del target, gin_files, gin_bindings, with_decode, timeout
    seen.append((shape.batch_size, shape.model["num_encoder_layers"]))
    assert shape.num_microbatches == 1 and not shape.model["scan_layers"]
    layers = shape.model["num_encoder_layers"]
    if shape.batch_size > limit[0]:
      return _report(temp=5000)  # does not fit
    return _report(xla_s=(1.0 if layers == 1 else 1.5) * shape.batch_size / 64)

  monkeypatch.setattr(plan_search, "compile_in_child", fake)
  target = plan_search.Target("v5p-8", topology="v5p:2x2x1")
  shape = plan.RunShape(model=dict(num_encoder_layers=8, num_decoder_layers=8, scan_layers=True),
                        batch_size=128, inputs_length=1024, targets_length=128,
                        num_microbatches=2)
  limit = [64]
  seconds, how, bound = plan_search.estimate_looped_step(shape, target, log=lambda m: None)
  assert seconds == pytest.approx(2 * 4.5) and not bound
  assert "x 2 for the batch of 128 in 2 microbatches" in how
  seen.clear()
  limit[0] = 32  # 64 rows do not fit without loops: 32 rows, scaled x 4
  seconds, how, _ = plan_search.estimate_looped_step(shape, target, log=lambda m: None)
  assert seen[0][0] == 64 and seen[-1][0] == 32
  assert seconds == pytest.approx(4 * 4.5 * 32 / 64) and "x 4" in how
