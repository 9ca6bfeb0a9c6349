"""What `plan` prints and writes: the per-device table of one compile, the attempts of a fit
search, and the JSON document (`plan.json`) that holds all of it."""
import shlex
from typing import Any, Dict, List, Optional

from xfer_t5x.launch.plan import CompileReport
from xfer_t5x.launch.plan_search import Attempt, Target, gib, verdict


def shell_word(word: str) -> str:
  """`word` as a POSIX shell reads it back: bare where safe, in double quotes where it holds
  only spaces and single quotes (gin dicts), else as shlex quotes it."""
  if shlex.quote(word) == word:
    return word
  if not any(c in word for c in '"$`\\!'):
    return f'"{word}"'
  return shlex.quote(word)


def derived(rep: CompileReport) -> Dict[str, Any]:
  """The figures a reader wants from one compile, computed once for the table and the JSON."""
  t = rep.train
  out = {
      "fits": rep.fits, "verdict": verdict(rep), "chips": rep.chips,
      "total_bytes_per_device": t.total_bytes if t.ok else None,
      "hbm_per_device": rep.hbm_per_device,
      "analytic_state_bytes_per_device": rep.analytic_state_bytes,
      # What the compiled step takes as arguments beyond the batch: the train state.
      "compiled_state_bytes_per_device": (t.argument_bytes - rep.analytic_batch_bytes
                                          if t.ok else None),
      "analytic_train_flops": rep.analytic_train_flops,
      "xla_train_flops": rep.xla_flops_total if t.ok else None,
      "xla_flops_counts_one_loop_body": rep.loops,
      "xla_step_seconds": rep.xla_seconds, "roofline_step_seconds": rep.roofline_seconds,
      "step_seconds": rep.step_seconds, "step_seconds_source": rep.step_source,
      "roofline_limit": rep.roofline_limit,
      # True: step_seconds is a lower bound, and tokens/s and MFU are upper bounds.
      "step_seconds_is_lower_bound": rep.step_is_bound,
      "tokens_per_second_per_chip": rep.tokens_per_second_per_chip, "mfu": rep.mfu,
  }
  return out


def plan_document(target: Target, attempts: List[Attempt]) -> Dict[str, Any]:
  chosen = next((i for i, a in enumerate(attempts) if a.report.fits), None)
  doc = {
      "target": {"accelerator": target.accelerator, "topology": target.topology,
                 "cpu_devices": target.cpu_devices, "platform": "tpu" if target.is_tpu else "cpu"},
      "fits": chosen is not None,
      "chosen": chosen,
      "suggested_gin_flags": attempts[chosen].shape.gin_flags() if chosen else None,
      "attempts": [{"move": a.move, "cached": a.cached, "summary": a.shape.short(),
                    "report": a.report.to_json(), "derived": derived(a.report)}
                   for a in attempts],
  }
  return doc


def _pct(part: Optional[float], whole: Optional[float]) -> str:
  return "" if not (part and whole) else f" ({100 * part / whole:.1f}% of HBM)"


def _num(x: Optional[float], fmt: str, unit: str = "") -> str:
  return "n/a" if x is None else format(x, fmt) + unit


def table(rep: CompileReport) -> str:
  """The per-device table of one compile (train step, and decode where compiled)."""
  t, d = rep.train, rep.decode
  s = rep.shape
  m = s["model"]
  where = (f"{rep.num_devices} x '{rep.device_kind}' ({rep.devices_per_chip:g} device(s) per "
           f"chip, {rep.chips:g} chips)" if rep.platform == "tpu" else
           f"{rep.num_devices} CPU devices: CPU figures, not a TPU's")
  lines = [
      f"model     d_model {m['emb_dim']}, {m['num_encoder_layers']}+{m['num_decoder_layers']} "
      f"layers, {m['num_heads']} heads x {m['head_dim']}, d_ff {m['mlp_dim']}, vocab "
      f"{m['vocab_size']}, {m['dtype']} activations, dropout {m['dropout_rate']}",
      f"run       batch {s['batch_size']}, lengths {s['inputs_length']}/{s['targets_length']}, "
      f"mesh {' x '.join(f'{k} {v}' for k, v in rep.mesh.items())}, "
      f"{s['parameter_partitioning_dims']}-D parameters, remat {m['remat_policy']}, "
      f"scan {bool(m['scan_layers'])}, microbatches {s['num_microbatches']}",
      f"devices   {where}",
      "",
      f"{'per device':32s}{'train step':>16s}{'decode (greedy)':>18s}",
  ]
  rows = [("arguments", "argument_bytes"), ("outputs", "output_bytes"),
          ("  of which aliased to arguments", "alias_bytes"), ("temporaries", "temp_bytes"),
          ("generated code", "code_bytes")]
  for label, field in rows:
    lines.append(f"{label:32s}{gib(getattr(t, field)) if t.ok else '-':>16s}"
                 f"{gib(getattr(d, field)) if d and d.ok else '-':>18s}")
  lines.append(f"{'total':32s}{gib(t.total_bytes) if t.ok else '-':>16s}"
               f"{gib(d.total_bytes) if d and d.ok else '-':>18s}")
  lines.append(f"{'compile time':32s}{t.compile_seconds:>15.0f}s"
               f"{(f'{d.compile_seconds:.0f}s' if d else '-'):>18s}")
  lines.append("")
  x = derived(rep)
  lines.append(f"train state per device    {gib(rep.analytic_state_bytes)} analytic (partition "
               f"specs), {gib(x['compiled_state_bytes_per_device'])} compiled")
  lines.append(f"memory per device         {verdict(rep)}"
               f"{_pct(t.total_bytes if t.ok else None, rep.hbm_per_device)}")
  flops = f"FLOPs per step            {rep.analytic_train_flops / 1e12:.2f} TFLOP analytic"
  if t.ok and rep.xla_flops_total:
    ratio = rep.xla_flops_total / rep.analytic_train_flops if rep.analytic_train_flops else 0
    flops += f", {rep.xla_flops_total / 1e12:.2f} TFLOP by XLA ({ratio:.2f}x)"
    if rep.loops:
      flops += " - XLA counts one loop body only"
  lines.append(flops)
  least, most = ("at least ", "at most ") if rep.step_is_bound else ("", "")
  lines.append(f"step time                 {least}{_num(rep.step_seconds, '.3f', ' s')}  "
               f"[{rep.step_source}]")
  if rep.roofline_seconds is not None and rep.xla_seconds is not None:
    lines.append(f"roofline lower bound      {rep.roofline_seconds:.3f} s  [XLA's FLOPs at "
                 "peak or its bytes at HBM bandwidth]")
  lines.append(f"tokens/s per chip         {most}"
               f"{_num(rep.tokens_per_second_per_chip, ',.0f')}")
  lines.append(f"MFU                       {most}{_num(rep.mfu and 100 * rep.mfu, '.1f', '%')}"
               + ("" if rep.peak_per_device else "  (no chip peak for this platform)"))
  if not t.ok:
    lines.append(f"compiler                  {t.error}")
  return "\n".join(lines)


def render(doc: Dict[str, Any]) -> str:
  attempts = doc["attempts"]
  reps = [CompileReport.from_json(a["report"]) for a in attempts]
  target = doc["target"]
  head = (f"plan for {target['accelerator']}" +
          (f" (topology {target['topology']})" if target["topology"] else
           f" on {target['cpu_devices']} CPU devices (no libtpu: CPU figures)"))
  out = [head, "", table(reps[0])]
  if len(attempts) > 1:
    out += ["", "fit search (each option builds on the earlier ones that reduced memory):"]
    for i, a in enumerate(attempts):
      out.append(f"  {i}. {a['move']:24s} {a['summary']:52s} {a['derived']['verdict']}"
                 + (" (cached)" if a["cached"] else ""))
  chosen = doc["chosen"]
  if chosen is None:
    out += ["", "no configuration tried fits this slice: try a larger slice, a smaller batch "
            "or shorter lengths"]
  elif chosen > 0:
    out += ["", f"fits with option {chosen} ({attempts[chosen]['move']}):", "",
            table(reps[chosen]), "", "run it with these flags added:",
            "  " + " \\\n  ".join(shell_word(f) for f in doc["suggested_gin_flags"])]
  return "\n".join(out)
