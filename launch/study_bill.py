"""What an experiment grid costs on the planned slices: chip-hours and wall-clock days per size.

Every training phase of the grid (`experiment.expand`: each size x seed x intermediate task, each
target stage) runs `steps` steps at its batch and lengths on its size's slice: the configuration
of the planning report whose plan file is the size's `experiment.size_gin_files` entry. A phase
whose batch and lengths were compiled takes that compile's step time; any other takes the step
time of the size's first compiled configuration scaled by the analytic FLOPs of its step (the
same achieved FLOP/s); a dual encoder's phases (LAReQA, Mewsli-X) by a dual encoder's FLOPs. Evaluations (decoding every language) are not counted. Wall-clock days
are for one slice per size running its phases one after another, as `grid run` does.
"""
import collections
from typing import Any, Dict, List, Sequence

from xfer_t5x.model.config import T5Config
from xfer_t5x.runtime import flops as flops_lib


ENCODER_DECODER, DUAL_ENCODER = "encoder_decoder", "dual_encoder"


def _kind(phase) -> str:
  """The model a training phase trains (the retrieval targets': a dual encoder)."""
  from xfer_t5x.experiments import experiment  # pylint: disable=g-import-not-at-top
  return DUAL_ENCODER if experiment.DUAL_ENCODER_FILE in phase.gin_files else ENCODER_DECODER


def _step_flops(model: Dict[str, Any], kind: str, batch: int, inputs: int,
                targets: int) -> float:
  if kind == DUAL_ENCODER:
    return flops_lib.dual_encoder_train_step_flops(T5Config(**model), batch, inputs, targets)
  return flops_lib.train_step_flops(T5Config(**model), batch, inputs, targets)


def _planned(entries: Sequence[Dict[str, Any]], size_files: Sequence[str]) -> List[Dict]:
  files = set(size_files)
  return [e for e in entries if e["gin_files"][-1] in files]


def bill(plan, entries: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
  """plan: an `experiment.Plan`; entries: the planning report's configurations (plans.json)."""
  exp = plan.experiment
  sizes = []
  for size, _ in exp.sizes:
    phases = [p for p in plan.phases if p.size == size and p.kind != "evaluate"]
    counts, steps = collections.Counter(), collections.Counter()
    for p in phases:
      lengths = dict(p.feature_lengths)
      shape = (_kind(p), p.batch_size, lengths["inputs"], lengths["targets"])
      counts[shape] += 1
      steps[shape] += p.steps
    row: Dict[str, Any] = {
        "size": size, "training_phases": len(phases), "steps": sum(steps.values()),
        "phases_by_shape": [{"model": m, "batch_size": b, "inputs_length": i,
                             "targets_length": t, "phases": n, "steps": steps[(m, b, i, t)]}
                            for (m, b, i, t), n in sorted(counts.items())]}
    candidates = _planned(entries, exp.files_for(size))
    usable = [e for e in candidates if e.get("step_seconds")]
    if not usable:
      row["why_not"] = (
          "no plan file for this size in experiment.size_gin_files" if not exp.files_for(size)
          else "its plan file's configuration is not in the report" if not candidates else
          f"its configuration {candidates[0]['name']}: {candidates[0]['status']}")
      sizes.append(row)
      continue
    ref = usable[0]
    exact = {(ENCODER_DECODER, e["batch_size"], e["inputs_length"], e["targets_length"]): e
             for e in usable}  # the report compiles the encoder-decoder
    seconds = 0.0
    for shape_row in row["phases_by_shape"]:
      key = (shape_row["model"], shape_row["batch_size"], shape_row["inputs_length"],
             shape_row["targets_length"])
      if key in exact:
        step, how = exact[key]["step_seconds"], f"compiled ({exact[key]['name']})"
      else:
        scale = _step_flops(ref["shape"]["model"], *key) / ref["analytic_train_flops"]
        step, how = ref["step_seconds"] * scale, f"{ref['name']} x {scale:.2f} (FLOPs)"
      shape_row.update(step_seconds=step, step_from=how)
      seconds += shape_row["steps"] * step
    row.update(configuration=ref["name"], accelerator=ref["accelerator"], chips=ref["chips"],
               seconds=seconds, chip_hours=seconds * ref["chips"] / 3600,
               days=seconds / 86400,
               lower_bound=any(e.get("step_seconds_is_lower_bound") for e in usable))
    sizes.append(row)
  priced = [r for r in sizes if "chip_hours" in r]
  return {
      "experiment": exp.name,
      "runs": len(plan.runs),
      "training_phases": sum(r["training_phases"] for r in sizes),
      "sizes": sizes,
      "priced_sizes": [r["size"] for r in priced],
      "chip_hours": sum(r["chip_hours"] for r in priced),
      "days_one_slice_per_size": max((r["days"] for r in priced), default=0.0),
      "days_one_after_another": sum(r["days"] for r in priced),
  }
