"""`bench --profile DIR`: a jax.profiler trace of the benchmarked steps, and where their time goes.

The trace (open DIR in TensorBoard's or XProf's profile plugin) holds one event per XLA
operation the step ran. Each event is mapped to the operation's source through the compiled
program's `op_name` metadata (`.../transpose(jvp(Transformer))/.../layers_1/mlp/wi_0/...` is the
backward of an MLP kernel's product) and summed per part of the model:

  xfer-t5x bench --config bench --steps 4 --profile /tmp/bench_profile

Operations run concurrently on XLA:CPU's thread pool, so the parts' times add up to more than
the wall time; `busy` is the wall time during which at least one operation ran, and `idle` the
rest of the steps' wall time (dispatch, waits).
"""
import collections
import glob
import gzip
import json
import os
import re
import time
from typing import Dict, List, Tuple

_OP_NAME = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = .*?metadata=\{[^}]*op_name="([^"]+)"',
                      re.MULTILINE)
# (part, substrings of op_name that pick it), the first match wins.
_PARTS = (
    ("attention projections", ("attention/query", "attention/key", "attention/value",
                               "attention/out")),
    ("attention core", ("attention",)),
    ("mlp", ("/mlp/",)),
    ("logits layer", ("logits_dense",)),
    ("layer norms", ("layer_norm", "encoder_norm", "decoder_norm")),
    ("embedding", ("token_embedder",)),
    ("relative position bias", ("relpos_bias",)),
)


def op_names(hlo_text: str) -> Dict[str, str]:
  """Instruction name -> its op_name metadata, from a compiled program's text."""
  return {m.group(1): m.group(2) for m in _OP_NAME.finditer(hlo_text)}


def part(op_name: str) -> str:
  """The part of the step an operation belongs to, with its direction."""
  if "Transformer" not in op_name:
    return "loss, optimizer and the rest"
  direction = "backward" if "transpose(" in op_name else "forward"
  for label, keys in _PARTS:
    if any(k in op_name for k in keys):
      return f"{direction}: {label}"
  return f"{direction}: other"


def _newest_trace(trace_dir: str) -> str:
  found = glob.glob(os.path.join(trace_dir, "plugins", "profile", "*", "*.trace.json.gz"))
  if not found:
    raise FileNotFoundError(f"{trace_dir}: no *.trace.json.gz written by jax.profiler")
  return max(found, key=os.path.getmtime)


def summarize(events: List[dict], names: Dict[str, str],
              steps: int) -> Tuple[List[Tuple[str, float]], float]:
  """(per part, ms per step, largest first; busy ms per step) from trace events ('X' phase,
  `name`, `ts`, `dur` in microseconds) of the program whose op names are `names`."""
  ops = [e for e in events if e.get("ph") == "X" and e.get("name") in names]
  per_part = collections.Counter()
  for e in ops:
    per_part[part(names[e["name"]])] += e["dur"]
  busy, end = 0.0, float("-inf")
  for e in sorted(ops, key=lambda e: e["ts"]):
    start, stop = e["ts"], e["ts"] + e["dur"]
    busy += max(0.0, stop - max(start, end))
    end = max(end, stop)
  rows = sorted(((k, v / steps / 1e3) for k, v in per_part.items()), key=lambda kv: -kv[1])
  return rows, busy / steps / 1e3


def profile(compiled, state, batch, trace_dir: str, steps: int = 3):
  """Runs `steps` steps of the compiled step under jax.profiler into `trace_dir`; returns
  (the new state, the summary lines, a dict of the figures)."""
  import jax  # pylint: disable=g-import-not-at-top
  names = op_names(compiled.as_text())
  jax.profiler.start_trace(trace_dir)
  t = time.perf_counter()
  try:
    for _ in range(steps):
      state, metrics = compiled(state, batch)
      jax.block_until_ready(metrics["loss"])
  finally:
    jax.profiler.stop_trace()
  wall_ms = (time.perf_counter() - t) / steps * 1e3
  path = _newest_trace(trace_dir)
  with gzip.open(path, "rt", encoding="utf-8") as f:
    events = json.load(f).get("traceEvents", [])
  rows, busy_ms = summarize(events, names, steps)
  lines = [f"profile ({steps} traced steps, {path}): {wall_ms:.1f} ms per step, ops busy "
           f"{busy_ms:.1f} ms, idle {max(0.0, wall_ms - busy_ms):.1f} ms; op time per part "
           "(concurrent ops overlap):"]
  lines += [f"  {ms:9.1f} ms  {label}" for label, ms in rows]
  figures = {"wall_ms": wall_ms, "busy_ms": busy_ms, "parts_ms": dict(rows), "trace": path}
  return state, lines, figures
