"""The planning report: each size's run configuration compiled for its Cloud TPU slice, and what
the whole study costs on those slices (`xfer-t5x plan-report`, writing launch/PLANS.md and
launch/plans.json).

A configuration is a model file, `runs/finetune.gin`, the size's own file under gin/plans/ (what a
real run and the grid's `experiment.size_gin_files` use) and the feature lengths, compiled for one
topology exactly as configured (no fit search: the report checks the committed files; `xfer-t5x
plan` searches). Compiles go through `plan_search` with its cache, so a configuration compiles
once and the report regenerates from the cache in seconds; a configuration added later compiles
only itself.
"""
import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from xfer_t5x.launch import plan_report, plan_search
from xfer_t5x.runtime import chips

FINETUNE_STEPS = 10_000  # the chip-hours column: one target fine-tuning at the recipe's steps
MFU_GOAL = 0.45  # mT5-xxl on v5p-64 and v4-128


@dataclasses.dataclass(frozen=True)
class Configuration:
  name: str
  size: str              # small | base | large | xl | xxl
  accelerator: str       # v5p-8, v4-128, v5e-256, v6e-64 (Cloud TPU's accelerator type)
  plan_file: str         # gin/plans/<...>.gin, relative to gin/
  lengths: Tuple[int, int]  # inputs, targets
  mfu_goal: Optional[float] = None
  why: str = ""          # why this slice, or what was learned compiling it

  @property
  def gin_files(self) -> Tuple[str, ...]:
    return (f"models/mt5_{self.size}.gin", "runs/finetune.gin", self.plan_file)

  @property
  def gin_bindings(self) -> Tuple[str, ...]:
    i, t = self.lengths
    return (f"TASK_FEATURE_LENGTHS = {{'inputs': {i}, 'targets': {t}}}",)

  def command(self) -> str:
    """The `xfer-t5x plan` command that compiles (and, with its fit search, revisits) it."""
    files = " ".join(f"--gin_file {f}" for f in self.gin_files)
    i, t = self.lengths
    return (f"xfer-t5x plan {files} --topology {self.accelerator} --no_decode "
            f"--gin.TASK_FEATURE_LENGTHS=\"{{'inputs': {i}, 'targets': {t}}}\"")


# The smallest v5p slice that holds each size at batch 128 and the longest fine-tuning lengths
# (1024/512: QA and tagging); mT5-xxl on the four slices the study may get, at the
# classification lengths of the recipe (1024/128) and, on v5p-64, also at 1024/512.
CONFIGURATIONS: Tuple[Configuration, ...] = (
    Configuration("mt5_base_v5p8", "base", "v5p-8", "plans/mt5_base_v5p8.gin", (1024, 512)),
    Configuration("mt5_large_v5p8", "large", "v5p-8", "plans/mt5_large_v5p8.gin", (1024, 512)),
    Configuration("mt5_xl_v5p8", "xl", "v5p-8", "plans/mt5_xl_v5p8.gin", (1024, 512)),
    Configuration("mt5_xxl_v5p64", "xxl", "v5p-64", "plans/mt5_xxl_v5p64.gin", (1024, 128),
                  mfu_goal=MFU_GOAL),
    Configuration("mt5_xxl_v5p64_qa", "xxl", "v5p-64", "plans/mt5_xxl_v5p64.gin", (1024, 512)),
    Configuration("mt5_xxl_v4_128", "xxl", "v4-128", "plans/mt5_xxl_v4_128.gin", (1024, 128),
                  mfu_goal=MFU_GOAL),
    Configuration("mt5_xxl_v5e256", "xxl", "v5e-256", "plans/mt5_xxl_v5e256.gin", (1024, 128)),
    Configuration("mt5_xxl_v6e64", "xxl", "v6e-64", "plans/mt5_xxl_v6e64.gin", (1024, 128)),
)


def by_name(names: Sequence[str],
            configurations: Sequence[Configuration] = CONFIGURATIONS) -> List[Configuration]:
  known = {c.name: c for c in configurations}
  unknown = [n for n in names if n not in known]
  if unknown:
    raise ValueError(f"--only {', '.join(unknown)}: no such configuration; the report has "
                     f"{', '.join(known)}")
  return [known[n] for n in names]


def _status(rep) -> str:
  t = rep.train
  if t.ok:
    return "fits" if rep.fits else "does not fit"
  return "out of memory" if t.oom else "compiler error"


def entry(conf: Configuration, rep) -> Dict[str, Any]:
  """One configuration's row of plans.json (`rep`: its CompileReport, or None: not compiled)."""
  _, topology, accelerator_chips = chips.parse_accelerator(conf.accelerator)
  out: Dict[str, Any] = {
      "name": conf.name, "size": conf.size, "accelerator": conf.accelerator,
      "topology": topology, "chips": accelerator_chips,
      "gin_files": list(conf.gin_files), "gin_bindings": list(conf.gin_bindings),
      "inputs_length": conf.lengths[0], "targets_length": conf.lengths[1],
      "mfu_goal": conf.mfu_goal, "why": conf.why, "command": conf.command()}
  if rep is None:
    out["status"] = "not compiled"
    return out
  s = rep.shape
  x = plan_report.derived(rep)
  step = x["step_seconds"] if rep.fits else None
  out.update({
      "status": _status(rep), "verdict": x["verdict"],
      "batch_size": s["batch_size"], "mesh": rep.mesh,
      "parameter_partitioning_dims": s["parameter_partitioning_dims"],
      "remat_policy": s["model"].get("remat_policy", "none"),
      "scan_layers": bool(s["model"].get("scan_layers")),
      "num_microbatches": s["num_microbatches"],
      "device_kind": rep.device_kind, "devices": rep.num_devices,
      "devices_per_chip": rep.devices_per_chip,
      "bytes_per_device": x["total_bytes_per_device"], "hbm_per_device": rep.hbm_per_device,
      "analytic_train_flops": rep.analytic_train_flops,
      "step_seconds": step, "step_seconds_source": x["step_seconds_source"] if step else None,
      "step_seconds_is_lower_bound": x["step_seconds_is_lower_bound"] if step else None,
      "tokens_per_second_per_chip": x["tokens_per_second_per_chip"] if step else None,
      "mfu": x["mfu"] if step else None,
      "chip_hours_per_10k_steps": (accelerator_chips * step * FINETUNE_STEPS / 3600
                                   if step else None),
      "compile_seconds": rep.train.compile_seconds,
      "compiler_error": None if rep.train.ok else rep.train.error,
      "shape": s,
  })
  if conf.mfu_goal is not None:
    out["mfu_goal_met"] = bool(out["mfu"] is not None and out["mfu"] >= conf.mfu_goal)
  return out


def compile_configurations(configurations: Sequence[Configuration], cache: plan_search.Cache,
                           *, compile_missing: bool = True, timeout: Optional[float] = None,
                           search_paths: Sequence[str] = (),
                           log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
  """Each configuration's entry, compiled where the cache has none (or left "not compiled"
  when `compile_missing` is False)."""
  from xfer_t5x.launch import plan_cmd  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime import gin_utils  # pylint: disable=g-import-not-at-top
  import xfer_t5x.runtime.trainer  # pylint: disable=g-import-not-at-top,unused-import  (gin names)
  entries = []
  for conf in configurations:
    target = plan_search.target_for(conf.accelerator)
    if not target.is_tpu:
      raise plan_search.TargetError(
          "plan-report: libtpu is not installed, and the report is about TPU slices: "
          "pip install 'xfer_t5x[tpu]'")
    files = [gin_utils.resolve_gin_file(f, search_paths) for f in conf.gin_files]
    gin_utils.setup_gin(files, conf.gin_bindings, search_paths, finalize=False)
    shape, gin_text = plan_cmd.configured_shape()
    key = plan_search.cache_key(shape, target, gin_text, False)
    if cache.get(key) is None and not compile_missing:
      log(f"plan-report: {conf.name}: not in the cache, left out (--cached_only)")
      entries.append(entry(conf, None))
      continue
    attempts = plan_search.search(
        shape, target, gin_files=files, gin_bindings=conf.gin_bindings, gin_text=gin_text,
        with_decode=False, try_options=False, timeout=timeout, cache=cache,
        offline=not compile_missing, log=log)
    entries.append(entry(conf, attempts[0].report))
  return entries
