"""Running one phase in this process: clear gin, parse the phase's config, train or evaluate.

  outcome = phases.run_phase(phase)

Training phases (`intermediate`, `target`) call `runtime.trainer.train()`, which resumes from the
model dir's latest complete checkpoint or starts from the phase's INITIAL_CHECKPOINT (None:
random init with the run's seed). The `evaluate` phase calls
`evaluation.evaluator.evaluate(model_dir, tasks, step=...)`, which writes inference_eval/,
metrics.jsonl and the summary into the model dir and returns {task: {metric: value}}.

Phases run in-process, one after another, so the demo pays for Python, TensorFlow and JAX
start-up once; each phase re-parses gin (`gin.clear_config()` first), so no binding leaks from
one phase into the next.
"""
import dataclasses
import logging
import math
from typing import Dict, Optional, Sequence

import gin
import jax
import numpy as np

from xfer_t5x.experiments import provenance
from xfer_t5x.experiments.experiment import Phase
from xfer_t5x.runtime import gin_utils
from xfer_t5x.tasks import data_report


class PhaseError(RuntimeError):
  """A phase that ran but did not produce what it should (message names phase and cause)."""


@dataclasses.dataclass
class Outcome:
  """What a phase produced."""
  checkpoint: str
  step: int
  config_sha256: str
  data_version: str
  preempted: bool = False
  metrics: Optional[Dict[str, Dict[str, float]]] = None   # evaluate: {task: {metric: value}}
  task_info: Optional[Dict[str, Dict[str, str]]] = None   # evaluate: {task: {language, split}}
  n_params: Optional[int] = None


ROOT_PLACEHOLDER = "<grid root>"


def phase_config_text() -> str:
  """The parsed gin config (`gin.config_str()`) without the `experiment` bindings.

  Each phase parses the experiment's files again for their other bindings; the `experiment.*`
  ones describe the whole grid, not the phase (adding a seed or a target must not change the
  config of a phase that already ran), so they are left out of the phase's config and hash.
  """
  kept = []
  for block in gin.config_str().split("\n\n"):
    if block.lstrip().startswith("# Parameters for experiment:"):
      continue
    lines = [l for l in block.split("\n") if l.strip() != "import xfer_t5x.experiments.experiment"]
    kept.append("\n".join(lines))
  return "\n\n".join(kept)


def _parse(phase: Phase, bindings: Sequence[str], search_paths: Sequence[str]) -> None:
  gin.clear_config()
  if phase.kind == "evaluate":
    # `evaluate.*` bindings (experiment.eval_bindings) need the configurable imported.
    import xfer_t5x.evaluation.evaluator  # pylint: disable=g-import-not-at-top,unused-import
  gin_utils.setup_gin(phase.gin_files, bindings, search_paths, finalize=False)


def config_hash(phase: Phase, search_paths: Sequence[str] = ()) -> str:
  """The sha256 of the phase's config (`phase_config_text`), with the grid's folder written as
  `<grid root>`: a grid moved elsewhere, or run in two places, has the same hashes. Parses
  gin and clears it afterwards."""
  bindings = phase.gin_bindings
  root = phase.root_dir.rstrip("/")
  if root:  # replaced before parsing: gin wraps long values, so the text depends on the length
    bindings = tuple(b.replace(root, ROOT_PLACEHOLDER) for b in bindings)
  try:
    _parse(phase, bindings, search_paths)
    return provenance.sha256_text(phase_config_text())
  finally:
    gin.clear_config()


def configure(phase: Phase, search_paths: Sequence[str] = (), finalize: bool = True) -> str:
  """Clears gin and parses the phase's files and bindings (to run it); returns its config hash
  (`config_hash`)."""
  sha = config_hash(phase, search_paths)
  _parse(phase, phase.gin_bindings, search_paths)
  if finalize:
    gin.finalize()
  return sha


def count_params(model) -> int:
  """Parameters of a model, from shapes only (nothing allocated)."""
  return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(model.abstract_params())))


def _train(phase: Phase, sha: str) -> Outcome:
  from xfer_t5x.runtime import trainer  # pylint: disable=g-import-not-at-top
  result = trainer.train()
  if not result.preempted and result.step != phase.steps:
    raise PhaseError(f"phase {phase.phase_id}: training stopped at step {result.step}, not at "
                     f"{phase.steps}")
  return Outcome(checkpoint=phase.model_dir + f"/checkpoint_{result.step}", step=result.step,
                 config_sha256=sha, data_version=data_report.data_version(),
                 preempted=result.preempted)


def _as_number(value) -> Optional[float]:
  try:
    v = float(np.asarray(value))
  except (TypeError, ValueError):
    return None
  return v


def _evaluate(phase: Phase, sha: str) -> Outcome:
  from xfer_t5x.evaluation import evaluator  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime import trainer, vocab_setup  # pylint: disable=g-import-not-at-top
  from xfer_t5x.tasks import registry  # pylint: disable=g-import-not-at-top
  raw = evaluator.evaluate(phase.model_dir, list(phase.eval_tasks), step=phase.steps)
  missing = [t for t in phase.eval_tasks if t not in raw]
  if missing:
    raise PhaseError(f"phase {phase.phase_id}: the evaluation returned no metrics for {missing}")
  metrics = {}
  for task in phase.eval_tasks:
    numbers = {}
    for name, value in dict(raw[task]).items():
      v = _as_number(value)
      if v is None:
        logging.warning("%s: metric %s of %s is not a number (%r); not recorded",
                        phase.phase_id, name, task, value)
        continue
      numbers[str(name)] = v
    if not numbers:
      raise PhaseError(f"phase {phase.phase_id}: task {task} has no numeric metric: {raw[task]}")
    metrics[task] = numbers
  vocabulary = vocab_setup.setup_vocabulary_and_tasks()
  bound_split = gin.get_bindings(evaluator.evaluate).get("split")
  info = {}
  for task in phase.eval_tasks:
    ti = registry.task_info(task)
    info[task] = {"language": ti.language, "split": bound_split or ti.eval_split or "",
                  "target": ti.target or ""}
  # The mT5 size's parameters (the results' n_params), also for a dual encoder's rows, which
  # use its encoder only: one value per size for the analysis.
  n_params = count_params(trainer.build_model(vocabulary, kind="encoder_decoder"))
  return Outcome(checkpoint=phase.final_checkpoint, step=phase.steps, config_sha256=sha,
                 data_version=data_report.data_version(), metrics=metrics, task_info=info,
                 n_params=n_params)


def run_phase(phase: Phase, search_paths: Sequence[str] = ()) -> Outcome:
  """Runs a phase in this process; gin is cleared afterwards, whatever happens."""
  try:
    sha = configure(phase, search_paths)
    data_report.reset_data_report()
    if phase.kind == "evaluate":
      return _evaluate(phase, sha)
    return _train(phase, sha)
  finally:
    gin.clear_config()
