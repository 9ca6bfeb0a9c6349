"""Ahead-of-time compilation of a run's train and decode steps for a device set, and what the
compiler says about them: memory per device, FLOPs, estimated step time.

`RunShape` is everything that decides a step's memory and speed (architecture, batch, lengths,
mesh, partitioning, remat, scan, microbatches). `compile_run(shape, devices)` builds the run's
mesh from `devices` (a TPU topology's compile-only devices, or CPU devices), lowers the real
jit'd train step of `runtime.train_step` and the real decode of `model.decoding` with abstract
sharded inputs, compiles them, and returns a `CompileReport`. Nothing is allocated: the state is
ShapeDtypeStructs carrying their NamedShardings.

The search over options and the subprocess isolation (a compiler crash must not end a plan)
live in `launch.plan_search`; the command in `launch.plan_cmd`.
"""
import dataclasses
import functools
import math
import re
import time
from typing import Any, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P

from xfer_t5x.model import decoding
from xfer_t5x.model.api import EncoderDecoderModel
from xfer_t5x.model.config import T5Config
from xfer_t5x.runtime import chips
from xfer_t5x.runtime import flops as flops_lib
from xfer_t5x.runtime import train_state as ts
from xfer_t5x.runtime.optimizer import Adafactor
from xfer_t5x.runtime.partitioning import Partitioner, make_mesh, standard_logical_axis_rules
from xfer_t5x.runtime.train_step import make_train_step

MT5_VOCAB_SIZE = 250112  # every mT5 size; padded to a multiple of 128 already

# What seqio's packing EncDecFeatureConverter yields (the trainer's batches).
PACKED_FEATURES = ("encoder_input_tokens", "encoder_segment_ids", "encoder_positions",
                   "decoder_target_tokens", "decoder_input_tokens", "decoder_segment_ids",
                   "decoder_positions", "decoder_loss_weights")


@dataclasses.dataclass(frozen=True)
class RunShape:
  """A run's shape: what `plan` compiles and what its gin flags bind."""
  model: Dict[str, Any]  # T5Config fields (architecture, dtype, remat_policy, scan_layers, ...)
  batch_size: int
  inputs_length: int
  targets_length: int
  model_parallel: int = 1
  parameter_partitioning_dims: int = 1
  num_microbatches: int = 1
  eval_batch_size: Optional[int] = None  # None: batch_size
  data_parallel: Optional[int] = None  # None: every device not on 'model'

  def config(self) -> T5Config:
    return T5Config(**self.model)

  def replace(self, **kw) -> "RunShape":
    model = dict(self.model, **kw.pop("model", {}))
    return dataclasses.replace(self, model=model, **kw)

  def to_json(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, d) -> "RunShape":
    return cls(**d)

  def gin_flags(self) -> List[str]:
    """The `--gin.` flags (argv words, unquoted) that make a run (train.gin/finetune.gin + a
    partitioning file) use this shape."""
    m = self.model
    return [
        f"--gin.BATCH_SIZE={self.batch_size}",
        f"--gin.TASK_FEATURE_LENGTHS={{'inputs': {self.inputs_length}, "
        f"'targets': {self.targets_length}}}",
        f"--gin.make_mesh.model={self.model_parallel}",
        f"--gin.make_mesh.data={self.data_parallel or -1}",
        f"--gin.standard_logical_axis_rules.parameter_partitioning_dims="
        f"{self.parameter_partitioning_dims}",
        f"--gin.T5Config.remat_policy={m.get('remat_policy', 'none')}",
        f"--gin.T5Config.scan_layers={m.get('scan_layers', False)}",
        f"--gin.train.num_microbatches={self.num_microbatches}",
    ]

  def short(self) -> str:
    m = self.model
    return (f"model={self.model_parallel} {self.parameter_partitioning_dims}-D "
            f"remat={m.get('remat_policy', 'none')} scan={bool(m.get('scan_layers'))} "
            f"micro={self.num_microbatches}")


def _bound(name: str, default):
  """The value gin binds to `configurable.param` (macros evaluated), or `default`."""
  import gin  # pylint: disable=g-import-not-at-top
  try:
    value = gin.query_parameter(name)
  except ValueError:
    return default
  while isinstance(value, gin.config.ConfigurableReference) and value.evaluate:
    value = value.scoped_configurable_fn()
  return value


def run_shape_from_gin(vocab_size: int = MT5_VOCAB_SIZE) -> RunShape:
  """The RunShape of the parsed gin config, read the way `trainer.train` reads it: the bound
  T5Config, `train.batch_size`, `train.task_feature_lengths`, `train.num_microbatches`,
  `make_mesh.model` and `standard_logical_axis_rules.parameter_partitioning_dims`."""
  config = T5Config()
  if config.vocab_size is None:
    config = config.with_vocab(vocab_size)
  lengths = _bound("train.task_feature_lengths", None)
  if not lengths or "inputs" not in lengths or "targets" not in lengths:
    raise ValueError("plan: the gin files bind no train.task_feature_lengths with 'inputs' and "
                     "'targets'; add a run file (e.g. --gin_file runs/finetune.gin) or "
                     "--gin.TASK_FEATURE_LENGTHS=\"{'inputs': 1024, 'targets': 128}\"")
  if int(_bound("make_mesh.replica", 1)) > 1:
    raise ValueError("plan: multi-slice meshes (make_mesh.replica > 1) are not planned yet; "
                     "plan one slice (drop partitioning/multislice.gin)")
  data = int(_bound("make_mesh.data", -1))
  return RunShape(
      model=dataclasses.asdict(config),
      batch_size=int(_bound("train.batch_size", 32)),
      inputs_length=int(lengths["inputs"]), targets_length=int(lengths["targets"]),
      model_parallel=int(_bound("make_mesh.model", 1)),
      parameter_partitioning_dims=int(
          _bound("standard_logical_axis_rules.parameter_partitioning_dims", 1)),
      num_microbatches=int(_bound("train.num_microbatches", 1)),
      data_parallel=None if data == -1 else data)


@dataclasses.dataclass
class StepReport:
  """What the compiler said about one step (per device, bytes and FLOPs)."""
  ok: bool
  compile_seconds: float
  argument_bytes: int = 0
  output_bytes: int = 0
  alias_bytes: int = 0
  temp_bytes: int = 0
  code_bytes: int = 0
  xla_flops_per_device: float = 0.0
  xla_bytes_accessed_per_device: float = 0.0
  optimal_seconds: Optional[float] = None
  error: Optional[str] = None  # the compiler's message when not ok
  oom: bool = False  # the error is the compiler running out of device memory
  needed_bytes: Optional[int] = None  # from an out-of-memory message: what it wanted
  available_bytes: Optional[int] = None  # ... and what the device had

  @property
  def total_bytes(self) -> int:
    """Peak bytes per device: arguments + outputs not aliased to them + temporaries + code."""
    return self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes + \
        self.code_bytes


@dataclasses.dataclass
class CompileReport:
  shape: Dict[str, Any]
  platform: str
  device_kind: str
  num_devices: int
  devices_per_chip: float
  mesh: Dict[str, int]
  hbm_per_device: Optional[int]
  peak_per_device: Optional[float]
  bandwidth_per_device: Optional[float]  # HBM bytes/s
  analytic_state_bytes: int  # params + optimizer state per device, from the partition specs
  analytic_param_bytes: int
  analytic_batch_bytes: int
  analytic_train_flops: float
  train: StepReport
  decode: Optional[StepReport] = None
  # For looped steps (scan, microbatches): a step time derived from loop-free companion
  # compiles (`plan_search.estimate_looped_step`), and whether it is a roofline lower bound.
  step_estimate: Optional[float] = None
  step_estimate_source: Optional[str] = None
  step_estimate_is_bound: bool = False

  def to_json(self):
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, d):
    d = dict(d)
    d["train"] = StepReport(**d["train"])
    d["decode"] = StepReport(**d["decode"]) if d.get("decode") else None
    return cls(**d)

  # --- derived figures --------------------------------------------------------------------
  @property
  def fits(self) -> bool:
    if not self.train.ok:
      return False
    if self.hbm_per_device is None:
      return True  # CPU: no device memory limit to compare with
    return self.train.total_bytes <= self.hbm_per_device

  @property
  def chips(self) -> float:
    return self.num_devices / self.devices_per_chip

  @property
  def loops(self) -> bool:
    """XLA's cost analysis counts a loop body once: scan over layers and microbatch loops."""
    return bool(self.shape["model"].get("scan_layers")) or self.shape["num_microbatches"] > 1

  @property
  def xla_flops_total(self) -> float:
    return self.train.xla_flops_per_device * self.num_devices

  @property
  def xla_seconds(self) -> Optional[float]:
    """XLA's `optimal_seconds` where it means something: positive, and no loop in the step.
    Under a while loop (microbatches, scan) XLA counts one body; and with libtpu 0.0.42.1 its
    estimate of this train step is negative on v4, v5e and v6e even without loops (positive on
    v5p). A negative or looped figure is never reported."""
    t = self.train.optimal_seconds
    if t is None or t <= 0 or self.loops:
      return None
    return t

  @property
  def roofline_seconds(self) -> Optional[float]:
    """A lower bound on a loop-free step: XLA's FLOPs at the chip's peak or XLA's bytes
    accessed at its HBM bandwidth, whichever takes longer (collectives not counted)."""
    terms = self._roofline_terms()
    return max(terms) if terms else None

  def _roofline_terms(self) -> Optional[Tuple[float, float]]:
    """(XLA's FLOPs at peak, XLA's bytes accessed at HBM bandwidth) in seconds, for a loop-free
    compile whose chip figures are known."""
    t = self.train
    if self.loops or not (t.ok and self.peak_per_device and self.bandwidth_per_device):
      return None
    return (t.xla_flops_per_device / self.peak_per_device,
            t.xla_bytes_accessed_per_device / self.bandwidth_per_device)

  @property
  def roofline_limit(self) -> Optional[str]:
    """Which term sets the roofline bound of a loop-free compile: the chip's FLOPs or its HBM
    bandwidth (XLA's bytes accessed)."""
    terms = self._roofline_terms()
    if terms is None:
      return None
    flops, hbm = terms
    return (f"HBM bandwidth ({hbm:.3f} s of bytes vs {flops:.3f} s of FLOPs)" if hbm > flops
            else f"FLOPs ({flops:.3f} s vs {hbm:.3f} s of HBM bytes)")

  @property
  def step_seconds(self) -> Optional[float]:
    """Estimated step time: XLA's estimate; for a looped step the estimate from loop-free
    companion compiles; else the roofline lower bound (`step_is_bound`)."""
    for value in (self.xla_seconds, self.step_estimate, self.roofline_seconds):
      if value is not None:
        return value
    return None

  @property
  def step_is_bound(self) -> bool:
    """True when the step time is a roofline lower bound (so MFU is an upper bound)."""
    if self.xla_seconds is not None:
      return False
    if self.step_estimate is not None:
      return self.step_estimate_is_bound
    return self.roofline_seconds is not None

  @property
  def step_source(self) -> str:
    if self.xla_seconds is not None:
      return "XLA cost model (optimal_seconds)"
    if self.step_estimate is not None:
      return self.step_estimate_source or "estimate"
    if self.roofline_seconds is not None:
      return ("roofline lower bound: XLA's FLOPs at peak or its bytes at HBM bandwidth, "
              "whichever is longer (XLA's own estimate is negative here); set by "
              f"{self.roofline_limit}")
    return "none"

  @property
  def mfu(self) -> Optional[float]:
    """Analytic model FLOPs per second over the slice's peak (chips x per-chip peak); an upper
    bound where the step time is a lower bound."""
    t = self.step_seconds
    if not (t and self.peak_per_device):
      return None
    return self.analytic_train_flops / t / (self.num_devices * self.peak_per_device)

  @property
  def tokens_per_second_per_chip(self) -> Optional[float]:
    t = self.step_seconds
    if not t:
      return None
    s = self.shape
    return s["batch_size"] * (s["inputs_length"] + s["targets_length"]) / t / self.chips


# --- bytes from partition specs ------------------------------------------------------------
def per_device_bytes(tree) -> int:
  """Bytes one device holds of a tree of ShapeDtypeStructs with shardings (the largest shard)."""
  total = 0
  for leaf in jax.tree_util.tree_leaves(tree):
    shard = leaf.sharding.shard_shape(leaf.shape)
    total += math.prod(shard) * jnp.dtype(leaf.dtype).itemsize
  return total


_SIZE = r"([\d.]+)\s*([KMGT]i?B?|B)?"


def _bytes(num: str, unit: Optional[str]) -> int:
  scale = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}.get((unit or "B")[0], 1)
  return int(float(num) * scale)


def parse_oom(message: str):
  """(needed, available) bytes from an XLA out-of-memory message, or (None, None)."""
  m = re.search(r"[Uu]sed\s+" + _SIZE + r"\s+of\s+" + _SIZE, message)
  if m:
    return _bytes(m.group(1), m.group(2)), _bytes(m.group(3), m.group(4))
  m = re.search(r"HLO temporaries \(" + _SIZE + r"\) exceeds available HBM \(" + _SIZE + r"\)",
                message)
  if m:  # libtpu 0.0.42: "the total memory required for HLO temporaries (17.64G) exceeds ..."
    return _bytes(m.group(1), m.group(2)), _bytes(m.group(3), m.group(4))
  m = re.search(r"[Ee]xceeded .*?capacity by\s+" + _SIZE, message)
  if m:
    return _bytes(m.group(1), m.group(2)), None
  return None, None


def is_oom(message: str) -> bool:
  return "RESOURCE_EXHAUSTED" in message or "Ran out of memory" in message or \
      "out of memory" in message.lower()


def _compile(lower) -> StepReport:
  t = time.time()
  try:
    compiled = lower().compile()
  except Exception as e:  # pylint: disable=broad-except
    msg = str(e)
    oom = is_oom(msg)
    needed, available = parse_oom(msg) if oom else (None, None)
    return StepReport(False, time.time() - t, error=msg.strip().splitlines()[0][:500] if msg
                      else type(e).__name__, oom=oom, needed_bytes=needed,
                      available_bytes=available)
  seconds = time.time() - t
  mem = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
  return StepReport(
      True, seconds, argument_bytes=int(mem.argument_size_in_bytes),
      output_bytes=int(mem.output_size_in_bytes), alias_bytes=int(mem.alias_size_in_bytes),
      temp_bytes=int(mem.temp_size_in_bytes), code_bytes=int(mem.generated_code_size_in_bytes),
      xla_flops_per_device=float(cost.get("flops", 0.0)),
      xla_bytes_accessed_per_device=float(cost.get("bytes accessed", 0.0)),
      optimal_seconds=float(cost["optimal_seconds"]) if cost.get("optimal_seconds") else None)


def _abstract(shape, dtype, sharding):
  return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)


def build(shape: RunShape, devices, vocab_size: Optional[int] = None):
  """(model, optimizer, partitioner) of a run shape on these devices."""
  config = shape.config()
  if config.vocab_size is None:
    config = config.with_vocab(vocab_size or MT5_VOCAB_SIZE)
  mesh = make_mesh(data=shape.data_parallel or -1, model=shape.model_parallel, replica=1,
                   devices=devices)
  rules = standard_logical_axis_rules(
      parameter_partitioning_dims=shape.parameter_partitioning_dims, multi_slice=False)
  partitioner = Partitioner(mesh, rules)
  model = EncoderDecoderModel(config)
  return model, Adafactor(model.logical_axes()), partitioner


def compile_run(shape: RunShape, devices, with_decode: bool = True) -> CompileReport:
  """AOT-compiles the train step (and the greedy decode) of `shape` for `devices`."""
  devices = list(devices)
  model, optimizer, partitioner = build(shape, devices)
  batch_sharding = partitioner.batch_sharding()
  b, li, lt = shape.batch_size, shape.inputs_length, shape.targets_length
  state = ts.abstract_state(model, optimizer, partitioner)
  batch = {k: _abstract((b, li if k.startswith("encoder") else lt),
                        jnp.float32 if k == "decoder_loss_weights" else jnp.int32,
                        batch_sharding) for k in PACKED_FEATURES}
  step = make_train_step(model, optimizer, partitioner, num_microbatches=shape.num_microbatches,
                         use_dropout=True)

  def lower_train():
    with partitioner.activate():
      return step.jitted.lower(state, batch)
  train = _compile(lower_train)

  decode = None
  if with_decode and train.ok:
    eb = shape.eval_batch_size or b
    eb = -(-eb // partitioner.data_parallel_size) * partitioner.data_parallel_size
    inputs = {"encoder_input_tokens": _abstract((eb, li), jnp.int32, batch_sharding)}
    fn = jax.jit(functools.partial(decoding.predict_batch, model, method="greedy",
                                   max_decode_length=lt),
                 in_shardings=(jax.tree_util.tree_map(lambda s: s.sharding, state.params),
                               batch_sharding),
                 out_shardings=NamedSharding(partitioner.mesh, P()))

    def lower_decode():
      with partitioner.activate():
        return fn.lower(state.params, inputs)
    decode = _compile(lower_decode)

  dev = devices[0]
  figures = chips.per_device(dev) if dev.platform == "tpu" else None
  return CompileReport(
      shape=shape.to_json(), platform=dev.platform,
      device_kind=getattr(dev, "device_kind", dev.platform), num_devices=len(devices),
      devices_per_chip=chips.devices_per_chip(dev) if dev.platform == "tpu" else 1.0,
      mesh={k: int(v) for k, v in partitioner.mesh.shape.items()},
      hbm_per_device=figures[0] if figures else None,
      peak_per_device=figures[1] if figures else None,
      bandwidth_per_device=figures[2] if figures else None,
      analytic_state_bytes=per_device_bytes(state),
      analytic_param_bytes=per_device_bytes(state.params),
      analytic_batch_bytes=per_device_bytes(batch),
      analytic_train_flops=flops_lib.train_step_flops(model.config, b, li, lt),
      train=train, decode=decode)


def cpu_devices(n: int):
  """n CPU devices (the process must have been started with that many host devices)."""
  devs = jax.devices("cpu")
  if len(devs) < n:
    raise RuntimeError(f"plan: {n} CPU devices needed, {len(devs)} present; start with "
                       f"XLA_FLAGS=--xla_force_host_platform_device_count={n}")
  return devs[:n]


def tpu_devices(topology_name: str, chip_config_name: Optional[str] = None):
  """The compile-only devices of a TPU topology (needs libtpu: the `[tpu]` extra)."""
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  kw = {"chip_config_name": chip_config_name} if chip_config_name else {}
  return topologies.get_topology_desc(platform="tpu", topology_name=topology_name, **kw).devices
