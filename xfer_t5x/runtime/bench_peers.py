"""`xfer-t5x bench --peers`: xfer_t5x beside Hugging Face MT5, side by side in one invocation.

For each named config, one process at a time (so that no two compete for the cores): this
library's `bench` step, then `MT5ForConditionalGeneration` at the same sizes, batch and lengths
with transformers' Adafactor (eager, then `torch.compile`), and the input pipeline at that
batch and those lengths (runtime/bench_input.py). Each process times the median of its
steps after warm-up and reports how much CPU the machine's other processes used meanwhile; a
ratio is printed only when that stayed near zero. One table comes out with the machine, the
versions and the date, printed and (`--report FILE`) written between the markers of a markdown
file, e.g. benchmarks/README.md's performance section:

  xfer-t5x bench --peers --config tiny --config bench --report benchmarks/README.md

Hugging Face's Adafactor is T5X's only approximately: it factors every tensor of rank 2 or more
and uses decay -0.8 (rate 1 - step^-0.8); here lr 1e-3 constant, parameter scaling on, update
clipping 1.0, no momentum, as T5X's settings. torch and transformers are a benchmark extra
(`pip install .[bench]`), imported only in the peer processes.
"""
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

PEERS = ("hf_eager", "hf_compile")
PEER_TITLES = {"xfer_t5x": "xfer_t5x", "hf_eager": "HF MT5 eager",
               "hf_compile": "HF MT5 torch.compile"}
# Other processes' CPU (in cores, averaged over the timed steps) above which no ratio is given.
MAX_OTHER_CPU = 0.15
# The targets: xfer_t5x steps/s over the best peer's.
TARGETS = {"tiny": 1.5, "bench": 1.3, "small": 1.3}
BEGIN, END = "<!-- bench --peers: begin -->", "<!-- bench --peers: end -->"


# ----------------------------------------------------------------- measuring, in any process
class CpuWindow:
  """CPU seconds the machine's other processes used while this window was open (Linux:
  /proc/stat's busy time minus this process's own), in cores averaged over the wall time."""

  def __enter__(self):
    self._start = (time.perf_counter(), _busy_seconds(), _own_seconds())
    return self

  def __exit__(self, *exc):
    wall0, busy0, own0 = self._start
    wall, busy, own = time.perf_counter() - wall0, _busy_seconds(), _own_seconds()
    self.other_cores = None
    if busy is not None and busy0 is not None and wall > 0:
      self.other_cores = max(0.0, ((busy - busy0) - (own - own0)) / wall)
    return False


def _busy_seconds() -> Optional[float]:
  try:
    with open("/proc/stat", encoding="ascii") as f:
      fields = [int(x) for x in f.readline().split()[1:]]
  except (OSError, ValueError):
    return None
  idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
  return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
  t = os.times()
  return t.user + t.system


# ----------------------------------------------------------------- the Hugging Face peer
def hf_step_times(config_name: str, compiled: bool, steps: int, warmup: int) -> Dict:
  """Median step of MT5ForConditionalGeneration + transformers' Adafactor at a named config."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from transformers.optimization import Adafactor  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime.bench import NAMED_CONFIGS, random_tokens  # pylint: disable=g-import-not-at-top
  fields, b, li, lt = NAMED_CONFIGS[config_name]
  torch.manual_seed(0)
  torch.set_num_threads(os.cpu_count() or 1)
  cfg = transformers.MT5Config(
      vocab_size=fields["vocab_size"], d_model=fields["emb_dim"], d_kv=fields["head_dim"],
      d_ff=fields["mlp_dim"], num_layers=fields["num_encoder_layers"],
      num_decoder_layers=fields["num_decoder_layers"], num_heads=fields["num_heads"],
      relative_attention_num_buckets=32, relative_attention_max_distance=128,
      dropout_rate=0.0, layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu",
      tie_word_embeddings=False, decoder_start_token_id=0, pad_token_id=0)
  model = transformers.MT5ForConditionalGeneration(cfg).train()
  opt = Adafactor(model.parameters(), lr=1e-3, scale_parameter=True, relative_step=False,
                  warmup_init=False, clip_threshold=1.0, decay_rate=-0.8, beta1=None,
                  weight_decay=0.0)
  forward = torch.compile(model) if compiled else model
  inputs, labels = (torch.from_numpy(x.astype(np.int64)) for x in random_tokens(
      fields["vocab_size"], b, li, lt))  # the same tokens as `bench`

  def step():
    loss = forward(input_ids=inputs, labels=labels).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss.detach())

  t0 = time.perf_counter()
  for _ in range(warmup):
    step()
  warm = time.perf_counter() - t0
  times = []
  with CpuWindow() as window:
    for _ in range(steps):
      t = time.perf_counter()
      step()
      times.append(time.perf_counter() - t)
  return {"median_step_ms": statistics.median(times) * 1e3, "steps": steps,
          "step_ms": [x * 1e3 for x in times], "warmup_seconds": warm,
          "other_cpu_cores": window.other_cores,
          "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}


# ----------------------------------------------------------------- the side-by-side run
def _child_env() -> Dict[str, str]:
  """Every process alike: one real device, as a user's run, and the host allocator setting
  `xfer-t5x` applies on CPU (runtime/host_memory.py) given to the peers too, as GLIBC_TUNABLES,
  so that no side is measured with the other's allocator."""
  from xfer_t5x.runtime import host_memory  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"),
             TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("XLA_FLAGS", None)
  if host_memory.applies(env):
    env["GLIBC_TUNABLES"] = host_memory.TUNABLES
  return env


def _subprocess(cmd: List[str], timeout: float) -> Dict:
  proc = subprocess.run(cmd, env=_child_env(), capture_output=True, text=True, timeout=timeout,
                        check=False)
  if proc.returncode != 0:
    return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"]}
  line = [l for l in proc.stdout.splitlines() if l.startswith("PEER ")]
  return json.loads(line[-1][len("PEER "):]) if line else {"error": ["no result printed"]}


def _ours(config: str, steps: int, timeout: float) -> Dict:
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "bench.json")
    proc = subprocess.run([sys.executable, "-m", "xfer_t5x", "bench", "--config", config,
                           "--steps", str(steps), "--json", path, "--breakdown"],
                          env=_child_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0 or not os.path.exists(path):
      return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"]}
    with open(path, encoding="utf-8") as f:
      return json.load(f)


def machine() -> Dict[str, str]:
  model = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      names = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
    model = names[0] if names else model
  except OSError:
    pass
  return {"system": f"{platform.system()} {platform.machine()}", "cpu": model,
          "cores": str(os.cpu_count())}


def _versions(results: Dict) -> Dict[str, str]:
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  out = {"python": platform.python_version(), "jax": jax.__version__,
         "jaxlib": jaxlib.__version__, "flax": flax.__version__}
  for row in results.values():
    for peer in PEERS:
      out.update(row.get(peer, {}).get("versions", {}))
  return out


def ratio(ours: Dict, peer: Dict) -> Optional[float]:
  """xfer_t5x's steps/s over the peer's, or None when either failed or either run had other
  processes' CPU use above MAX_OTHER_CPU (or unknown)."""
  if "error" in ours or "error" in peer:
    return None
  busy = [r.get("other_cpu_cores") for r in (ours, peer)]
  if any(b is None or b > MAX_OTHER_CPU for b in busy):
    return None
  return peer["median_step_ms"] / ours["median_step_ms"]


def _duration(ms: float) -> str:
  return f"{ms / 1e3:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def _ms(r: Dict) -> str:
  if "error" in r:
    return "failed: " + " ".join(r["error"])[:60]
  return _duration(r["median_step_ms"])


def _cpu(r: Dict) -> str:
  c = r.get("other_cpu_cores")
  return "?" if c is None else f"{c:.2f}"


def _input(measured: Optional[Dict], ours: Dict) -> str:
  """The pipeline's batches/s and how many times a step's consumption that is."""
  if not measured or "error" in measured:
    return "not measured" if not measured else "failed"
  text = f"{measured['batches_per_second']:.0f} batches/s"
  if "error" not in ours:
    text += f" ({measured['batches_per_second'] * ours['median_step_ms'] / 1e3:.0f}x a step's)"
  return text


def _matmul_bound(name: str, row: Dict) -> str:
  """What the matmuls alone cost: the step's FLOPs at the best matmul rate measured in the same
  process, beside the step time the target asks for."""
  ours = row["xfer_t5x"]
  best_peak = max(p for p in (ours["matmul_peak_gflops_jax"],
                              ours.get("matmul_peak_gflops_torch")) if p)
  bound_ms = ours["gflop_per_step"] / best_peak * 1e3
  text = (f"- {name}: the step's {ours['gflop_per_step']:.1f} GFLOP take "
          f"{_duration(bound_ms)} at the best matmul rate measured "
          f"({best_peak:.1f} GFLOP/s), before any other work")
  peers = [row[p]["median_step_ms"] for p in PEERS if "error" not in row.get(p, {"error": 1})]
  if peers and name in TARGETS:
    asked = min(peers) / TARGETS[name]
    text += (f"; the {TARGETS[name]}x target asks for {_duration(asked)} per step"
             + (", below that bound" if asked < bound_ms else ""))
  return text


def render(results: Dict[str, Dict], when: str, mach: Dict[str, str],
           versions: Dict[str, str]) -> List[str]:
  """The markdown section: the table, the ratios (or why not), the targets met or missed."""
  from xfer_t5x.runtime.bench import describe  # pylint: disable=g-import-not-at-top
  lines = [f"Side by side, one process at a time, {when}: {mach['cpu']}, {mach['cores']} cores "
           f"({mach['system']}); " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
           + ". Median step after warm-up; other CPU = cores the machine's other processes "
           f"used while timing (no ratio above {MAX_OTHER_CPU}). Every process runs with the "
           "host allocator setting xfer-t5x applies on CPU (runtime/host_memory.py; the peers "
           "through GLIBC_TUNABLES).", "",
           "| config | " + " | ".join(PEER_TITLES[k] for k in ("xfer_t5x",) + PEERS)
           + " | xfer_t5x vs best HF | target | other CPU (ours / eager / compile) "
           "| input pipeline |",
           "|---|---|---|---|---|---|---|---|"]
  for name, row in results.items():
    ours = row["xfer_t5x"]
    ratios = [ratio(ours, row[p]) for p in PEERS if p in row]
    valid = [r for r in ratios if r is not None]
    target = TARGETS.get(name)
    if len(valid) == len(ratios) and valid:
      best = min(valid)  # against the fastest peer
      verdict = (f"{best:.2f}x" + ("" if target is None else
                                   f" | {target}x: {'met' if best >= target else 'MISSED'}"))
    else:
      verdict = "no ratio (a run failed or the machine was busy)" + (
          "" if target is None else f" | {target}x: not judged")
    lines.append(f"| {name} ({describe(name)}) | " + " | ".join(
        _ms(row.get(k, {"error": ["not run"]})) for k in ("xfer_t5x",) + PEERS)
                 + f" | {verdict} | " + " / ".join(_cpu(row.get(k, {}))
                                                   for k in ("xfer_t5x",) + PEERS)
                 + f" | {_input(row.get('input'), ours)} |")
  lines.append("")
  for name, row in results.items():
    ours = row["xfer_t5x"]
    measured = row.get("input") or {}
    if "error" not in measured and measured:
      lines.append(f"- {name}: input pipeline ({measured['task']}, packed, "
                   f"{measured['vocabulary']} vocabulary): {measured['sequences_per_second']:.0f} "
                   f"sequences/s, {measured['tokens_per_second']:.0f} tokens/s; tokenisation "
                   f"{measured['tokenize_us_per_example']:.1f} us per example")
    if "error" not in ours:
      lines.append(_matmul_bound(name, row))
      lines.append(f"- {name}: xfer_t5x {ours['achieved_gflops']:.1f} GFLOP/s achieved, "
                   f"{100 * ours['mfu']:.1f}% of the best {ours['matmul_peak_dtype']} matmul "
                   f"measured in the same process ({ours['matmul_peak_gflops_jax']:.1f} GFLOP/s "
                   "JAX" + (f", {ours['matmul_peak_gflops_torch']:.1f} PyTorch"
                            if ours.get("matmul_peak_gflops_torch") else "") + ")")
      parts = ours.get("breakdown_ms")
      if parts:
        lines.append(f"- {name}: where xfer_t5x's step goes (each part jitted alone): " + ", ".join(
            f"{k.replace('_', ' ')} {v:.1f} ms ({100 * v / ours['median_step_ms']:.0f}%)"
            for k, v in parts.items()))
  return lines


def write_section(path: str, lines: List[str]) -> None:
  """Replaces the text between BEGIN and END in `path` (appends both if absent)."""
  with open(path, encoding="utf-8") as f:
    text = f.read()
  block = "\n".join([BEGIN] + lines + [END])
  if BEGIN in text and END in text:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    text = head + block + tail
  else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


def run_peers(configs: List[str], steps: int, report: Optional[str],
              json_path: Optional[str], timeout: float = 3600) -> int:
  results: Dict[str, Dict] = {}
  for name in configs:
    row = {"xfer_t5x": _ours(name, steps, timeout)}
    print(f"{name}: xfer_t5x {_ms(row['xfer_t5x'])}", flush=True)
    row["input"] = _subprocess([sys.executable, "-m", "xfer_t5x.runtime.bench_input", name],
                               timeout)
    print(f"{name}: input pipeline {_input(row['input'], row['xfer_t5x'])}", flush=True)
    for peer in PEERS:
      row[peer] = _subprocess([sys.executable, "-m", "xfer_t5x.runtime.bench_peers", name,
                               peer, str(steps)], timeout)
      print(f"{name}: {PEER_TITLES[peer]} {_ms(row[peer])}", flush=True)
    results[name] = row
  when = datetime.date.today().isoformat()
  lines = render(results, when, machine(), _versions(results))
  print("\n".join(lines))
  if report:
    write_section(report, lines)
    print(f"wrote the table into {report}")
  if json_path:
    with open(json_path, "w", encoding="utf-8") as f:
      json.dump({"date": when, "machine": machine(), "results": results}, f, indent=1)
  return 0


if __name__ == "__main__":  # a peer process: bench_peers.py CONFIG hf_eager|hf_compile STEPS
  _name, _peer, _steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
  _out = hf_step_times(_name, _peer == "hf_compile", _steps, 3 if _peer == "hf_compile" else 2)
  print("PEER " + json.dumps(_out))
