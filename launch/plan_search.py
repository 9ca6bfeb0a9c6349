"""Planning a run for a topology: compile in a child process, and when it does not fit, try the
next option until one does.

Each compile runs in its own process (`python -m xfer_t5x.launch.plan_worker`): libtpu can
crash outright on some configurations (a stack overflow in its cost model was seen with
`remat_policy="full"` on mT5-xxl), and an xxl compile holds ~12 GB of host memory that a fresh
process gives back. A crash is reported as such and the search moves on.

The options, in the order tried: 2-D parameter sharding; more model parallelism (x2, twice at
most); remat `dots_saveable`, then `full`; scan over layers; microbatches (x2 until one row per
data-parallel device). Each option builds on the earlier ones that reduced memory; one that made
it worse or crashed the compiler is dropped, and one that provably cannot close the gap (2-D
sharding when the state is smaller than the overshoot) is skipped without compiling. Results are
cached by the content of what was compiled, so rerunning a report only compiles what changed.
"""
import dataclasses
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from xfer_t5x.runtime import chips
from xfer_t5x.launch.plan import CompileReport, RunShape, StepReport

# Environment that keeps libtpu quiet and usable on a machine without a TPU.
LIBTPU_QUIET = {
    "TPU_STDERR_LOG_LEVEL": "3", "TPU_MIN_LOG_LEVEL": "3", "TF_CPP_MIN_LOG_LEVEL": "3",
    "TPU_SKIP_MDS_QUERY": "1", "TPU_WORKER_HOSTNAMES": "localhost", "TPU_WORKER_ID": "0",
    "ALLOW_MULTIPLE_LIBTPU_LOAD": "1", "GRPC_VERBOSITY": "ERROR",
}


class TargetError(ValueError):
  """libtpu has no devices for the requested topology: no option can help."""


@dataclasses.dataclass(frozen=True)
class Target:
  """Where to compile: a TPU topology (compile-only devices from libtpu) or n CPU devices."""
  accelerator: str  # as the user named it ("v5p-64", "v5p:2x4x4") or "cpu:<n>"
  topology: Optional[str] = None  # "v5p:2x4x4"
  cpu_devices: Optional[int] = None

  @property
  def is_tpu(self) -> bool:
    return self.topology is not None

  def describe(self) -> str:
    if self.is_tpu:
      return f"{self.accelerator} (TPU topology {self.topology})"
    return f"{self.cpu_devices} CPU devices (figures are CPU ones, not a TPU's)"


def libtpu_available() -> bool:
  try:
    import libtpu  # pylint: disable=g-import-not-at-top,unused-import
    return True
  except ImportError:
    return False


def target_for(accelerator: str) -> Target:
  """The compile target of an accelerator name; without libtpu, as many CPU devices as the
  topology has TPU devices."""
  if accelerator.startswith("cpu:"):
    return Target(accelerator, cpu_devices=int(accelerator.split(":", 1)[1]))
  _, topology, n_chips = chips.parse_accelerator(accelerator)
  if libtpu_available():
    return Target(accelerator, topology=topology)
  return Target(accelerator, cpu_devices=n_chips)


def _chip_config(topology: str) -> Optional[str]:
  # v4 and v5p run as megacore (one device per chip) by default; v5p topologies already
  # describe it so, v4 ones must be asked for it.
  return "megacore" if topology.startswith("v4") else None


def _env(target: Target) -> Dict[str, str]:
  env = dict(os.environ)
  env["JAX_PLATFORMS"] = "cpu"
  if target.is_tpu:
    env.update(LIBTPU_QUIET)
    env["TPU_ACCELERATOR_TYPE"] = target.accelerator if "-" in target.accelerator else ""
  else:
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join(flags + [
        f"--xla_force_host_platform_device_count={target.cpu_devices}"])
  return env


def cache_key(shape: RunShape, target: Target, gin_text: str, with_decode: bool) -> str:
  where = {"topology": target.topology, "cpu_devices": target.cpu_devices}  # not its spelling
  blob = json.dumps({"shape": shape.to_json(), "target": where,
                     "gin": gin_text, "decode": with_decode}, sort_keys=True)
  return hashlib.sha256(blob.encode()).hexdigest()[:20]


class Cache:
  """JSON-lines file of finished compiles: key -> CompileReport (None: no cache)."""

  def __init__(self, path: Optional[str]):
    self.path = pathlib.Path(path) if path else None
    self.entries: Dict[str, dict] = {}
    if self.path and self.path.exists():
      for line in self.path.read_text().splitlines():
        if line.strip():
          rec = json.loads(line)
          self.entries[rec["key"]] = rec["report"]

  def get(self, key) -> Optional[CompileReport]:
    rec = self.entries.get(key)
    try:
      return CompileReport.from_json(rec) if rec else None
    except TypeError:  # written by another version of this module: compile again
      return None

  def put(self, key, report: CompileReport):
    self.entries[key] = rec = report.to_json()
    if self.path:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      with open(self.path, "a") as f:
        f.write(json.dumps({"key": key, "report": rec}) + "\n")


def compile_in_child(shape: RunShape, target: Target, gin_files: Sequence[str] = (),
                     gin_bindings: Sequence[str] = (), with_decode: bool = True,
                     timeout: Optional[float] = None) -> CompileReport:
  """Runs `plan_worker` for one shape; a crashed child becomes a failed StepReport."""
  with tempfile.TemporaryDirectory() as tmp:
    spec_path, out_path = pathlib.Path(tmp, "spec.json"), pathlib.Path(tmp, "out.json")
    spec_path.write_text(json.dumps({
        "shape": shape.to_json(), "target": dataclasses.asdict(target),
        "chip_config": _chip_config(target.topology) if target.is_tpu else None,
        "gin_files": list(gin_files), "gin_bindings": list(gin_bindings),
        "with_decode": with_decode}))
    try:
      proc = subprocess.run(
          [sys.executable, "-m", "xfer_t5x.launch.plan_worker", str(spec_path), str(out_path)],
          env=_env(target), capture_output=True, text=True, timeout=timeout, check=False)
      code, tail = proc.returncode, (proc.stderr or "").strip().splitlines()[-3:]
    except subprocess.TimeoutExpired:
      code, tail = None, [f"compile timed out after {timeout:.0f} s"]
    if out_path.exists():
      doc = json.loads(out_path.read_text())
      if "setup_error" in doc:
        raise TargetError(f"plan: no devices for {target.describe()}: {doc['setup_error']}")
      return CompileReport.from_json(doc)
  why = f"the compiler process ended with status {code}" if code is not None else tail[0]
  return _failed(shape, target, f"{why}: {' | '.join(tail)[:400]}")


def _failed(shape: RunShape, target: Target, error: str) -> CompileReport:
  return CompileReport(
      shape=shape.to_json(), platform="tpu" if target.is_tpu else "cpu", device_kind="?",
      num_devices=0, devices_per_chip=1.0, mesh={}, hbm_per_device=None, peak_per_device=None,
      bandwidth_per_device=None,
      analytic_state_bytes=0, analytic_param_bytes=0, analytic_batch_bytes=0,
      analytic_train_flops=0.0, train=StepReport(False, 0.0, error=error))


# --- the options tried when a shape does not fit --------------------------------------------
Move = Tuple[str, Callable[[RunShape, int], Optional[RunShape]]]


def _data_size(shape: RunShape, n_devices: int) -> int:
  """Data-parallel ways of `shape` on `n_devices` (every device not on 'model')."""
  return max(1, n_devices // shape.model_parallel)


def _more_model_parallel(shape: RunShape, n: int) -> Optional[RunShape]:
  mp = shape.model_parallel * 2
  heads = shape.model.get("num_heads", 1)
  if n % mp or heads % mp or shape.batch_size % (n // mp):
    return None
  return shape.replace(model_parallel=mp)


def _more_microbatches(shape: RunShape, n: int) -> Optional[RunShape]:
  k = shape.num_microbatches * 2
  if shape.batch_size % (k * _data_size(shape, n)):
    return None
  return shape.replace(num_microbatches=k)


MOVES: List[Move] = [
    ("2-D parameter sharding", lambda s, n: s.replace(parameter_partitioning_dims=2)
     if s.parameter_partitioning_dims == 1 else None),
    ("model parallelism x2", _more_model_parallel),
    ("model parallelism x2", _more_model_parallel),
    ("remat dots_saveable", lambda s, n: s.replace(model={"remat_policy": "dots_saveable"})
     if s.model.get("remat_policy", "none") == "none" else None),
    ("remat full", lambda s, n: s.replace(model={"remat_policy": "full"})
     if s.model.get("remat_policy", "none") != "full" else None),
    ("scan over layers", lambda s, n: s.replace(model={"scan_layers": True})
     if not s.model.get("scan_layers") else None),
] + [("microbatches x2", _more_microbatches)] * 6


@dataclasses.dataclass
class Attempt:
  move: str  # "as configured", or the option that produced this shape
  shape: RunShape
  report: CompileReport
  cached: bool = False


def n_devices_of(target: Target) -> int:
  if not target.is_tpu:
    return target.cpu_devices
  return chips.parse_accelerator(target.topology)[2]  # megacore: one device per chip


def search(shape: RunShape, target: Target, *, gin_files=(), gin_bindings=(), gin_text="",
           with_decode=True, try_options=True, max_tries=8, timeout: Optional[float] = None,
           cache: Optional[Cache] = None, estimate_loops: bool = True, offline: bool = False,
           log: Callable[[str], None] = print) -> List[Attempt]:
  """Compiles `shape`, then (if it does not fit and `try_options`) the next options in order
  until one fits; returns every attempt, the last being the fitting one if any. `offline`:
  the step-time estimate of a looped run uses only what the cache holds (nothing compiles)."""
  cache = cache or Cache(None)
  n = n_devices_of(target)
  attempts: List[Attempt] = []

  def attempt(move, s):
    key = cache_key(s, target, gin_text, with_decode)
    rep = cache.get(key)
    hit = rep is not None
    if not hit:
      log(f"plan: compiling {s.short()} for {target.describe()} ...")
      rep = compile_in_child(s, target, gin_files, gin_bindings, with_decode, timeout)
      cache.put(key, rep)
    attempts.append(Attempt(move, s, rep, hit))
    log(f"plan: {move}: {s.short()}: {verdict(rep)}" + (" (cached)" if hit else ""))
    return rep

  rep = attempt("as configured", shape)
  if not rep.fits and try_options:
    current, current_rep = shape, rep
    for name, move in MOVES:
      if len(attempts) >= max_tries:
        break
      nxt = move(current, n)
      if nxt is None or any(a.shape == nxt for a in attempts):
        continue
      why_not = _cannot_close_gap(name, current, current_rep)
      if why_not:
        log(f"plan: {name}: skipped, {why_not}")
        continue
      rep = attempt(name, nxt)
      if rep.fits:
        break
      if _helped(rep, current_rep):
        current, current_rep = nxt, rep  # keep the option and build on it
      elif rep.train.ok or rep.train.oom:
        log(f"plan: {name}: dropped, it did not reduce memory "
            f"({gib(_over_bytes(rep))} over, against {gib(_over_bytes(current_rep))})")
      else:
        log(f"plan: {name}: dropped, the compiler failed")
  last = attempts[-1]
  if (estimate_loops and last.report.fits and last.report.loops
      and last.report.peak_per_device and last.report.step_estimate is None):
    est = estimate_looped_step(last.shape, target, gin_files=gin_files,
                               gin_bindings=gin_bindings, gin_text=gin_text, timeout=timeout,
                               cache=cache, offline=offline, log=log)
    if est:
      (last.report.step_estimate, last.report.step_estimate_source,
       last.report.step_estimate_is_bound) = est
  return attempts


def _helped(new: CompileReport, old: CompileReport) -> bool:
  """Keep an option that compiled or ran out of memory by less than before; drop one that made
  memory worse (more model parallelism can: the per-device batch grows) or crashed the
  compiler."""
  if not (new.train.ok or new.train.oom):
    return False
  before, after = _over_bytes(old), _over_bytes(new)
  return before is None or after is None or after < before


def _over_bytes(rep: CompileReport) -> Optional[int]:
  """How far a compile was over the device's HBM, where the compiler said."""
  t = rep.train
  if t.ok and rep.hbm_per_device:
    return t.total_bytes - rep.hbm_per_device
  if t.oom and t.needed_bytes and t.available_bytes:
    return t.needed_bytes - t.available_bytes
  return None


def _cannot_close_gap(name: str, shape: RunShape, rep: CompileReport) -> Optional[str]:
  """Why an option cannot make the run fit, where that is known without compiling: 2-D
  parameter sharding saves at most the state's replicated share over 'data'."""
  over = _over_bytes(rep)
  if name != "2-D parameter sharding" or over is None or not rep.analytic_state_bytes:
    return None
  saving = rep.analytic_state_bytes * (1 - 1 / _data_size(shape, rep.num_devices))
  if saving >= over:
    return None
  return (f"it saves at most {gib(saving)} of train state per device and the run is "
          f"{gib(over)} over")


def _companion_seconds(reps: Sequence[CompileReport]) -> Optional[Tuple[List[float], bool]]:
  """The step times of loop-free compiles, all of one kind: XLA's estimates where every one
  has a usable one, else every roofline bound (then True: a bound)."""
  if all(r.xla_seconds is not None for r in reps):
    return [r.xla_seconds for r in reps], False
  if all(r.roofline_seconds is not None for r in reps):
    return [r.roofline_seconds for r in reps], True
  return None


def estimate_looped_step(shape: RunShape, target: Target, *, gin_files=(), gin_bindings=(),
                         gin_text="", timeout=None, cache: Optional[Cache] = None,
                         offline: bool = False, log: Callable[[str], None] = print
                         ) -> Optional[Tuple[float, str, bool]]:
  """(seconds, how, is_bound) of a looped run (scan over layers, microbatches), for which XLA
  counts one loop body: one microbatch compiled without loops at 1 and 2 layers per stack (and
  2+1 when the stacks differ), the per-layer difference extrapolated to the real depth, times
  the number of microbatches. A microbatch without the loops may not fit the chip (the compiler
  then gives no costs): its rows are halved until it fits and the time scaled back linearly.
  The optimizer update is counted once per microbatch, so the figure errs long by that much."""
  cache = cache or Cache(None)
  k = shape.num_microbatches
  data = _data_size(shape, n_devices_of(target))
  le, ld = shape.model["num_encoder_layers"], shape.model["num_decoder_layers"]
  depths = [(1, 1), (2, 2)] if le == ld else [(1, 1), (2, 1), (2, 2)]
  rows = shape.batch_size // k
  while True:
    base = shape.replace(batch_size=rows, num_microbatches=1, model={"scan_layers": False})
    reps = []
    for e, d in depths:
      s = base.replace(model={"num_encoder_layers": e, "num_decoder_layers": d})
      key = cache_key(s, target, gin_text, False)
      rep = cache.get(key)
      if rep is None and offline:
        log(f"plan: step-time estimate: {rows} rows at {e}+{d} layers not in the cache")
        return None
      if rep is None:
        log(f"plan: step-time estimate: compiling {rows} rows at {e}+{d} layers without loops")
        rep = compile_in_child(s, target, gin_files, gin_bindings, False, timeout)
        cache.put(key, rep)
      if not rep.fits:
        break
      reps.append(rep)
    if len(reps) == len(depths):
      break
    if not (rep.train.oom or rep.train.ok) or rows // 2 < data or (rows // 2) % data:
      log(f"plan: step-time estimate: none ({verdict(rep)})")
      return None
    rows //= 2
  got = _companion_seconds(reps)
  if got is None:
    log("plan: step-time estimate: the loop-free compiles give no step time")
    return None
  seconds, is_bound = got
  t = dict(zip(depths, seconds))
  if le == ld:
    per_rows = t[(1, 1)] + (le - 1) * (t[(2, 2)] - t[(1, 1)])
  else:
    enc, dec = t[(2, 1)] - t[(1, 1)], t[(2, 2)] - t[(2, 1)]
    per_rows = t[(1, 1)] + (le - 1) * enc + (ld - 1) * dec
  scale = shape.batch_size / rows
  kind = "roofline lower bound" if is_bound else "XLA cost model"
  how = (f"{kind} of {rows} rows compiled without loops at 1 and 2 layers, extrapolated to "
         f"{le}+{ld} layers, x {scale:g} for the batch of {shape.batch_size}" +
         (f" in {k} microbatches" if k > 1 else "") +
         (f"; the bound is set by {reps[-1].roofline_limit}" if is_bound else ""))
  return scale * per_rows, how, is_bound


def gib(x: Optional[float]) -> str:
  return "?" if x is None else f"{x / 2 ** 30:.2f} GiB"


def verdict(rep: CompileReport) -> str:
  t = rep.train
  if t.ok:
    if rep.hbm_per_device is None:
      return f"compiled, {gib(t.total_bytes)} per device (CPU: no HBM limit)"
    word = "fits" if rep.fits else "does not fit"
    return f"{word}: {gib(t.total_bytes)} of {gib(rep.hbm_per_device)} per device"
  if t.oom:
    over = ""
    if t.needed_bytes and t.available_bytes:
      over = f": needs {gib(t.needed_bytes)} of {gib(t.available_bytes)}, " \
             f"{gib(t.needed_bytes - t.available_bytes)} over"
    elif t.needed_bytes:
      over = f": {gib(t.needed_bytes)} over"
    return "does not fit (out of HBM at compile time" + over + ")"
  return f"compiler error: {t.error}"
