"""An experiment of the study, described in gin, and its expansion into runs and phases.

An experiment file (gin/experiments/*.gin) binds `experiment.*`: the model sizes (a model gin
file each), the pretrained checkpoint per size (None: random init, as in the demo), the
`intermediate` values (`none`, a task, a mixture, or any other registered name such as `mlm` or
`<task>_translated` once they exist), the targets with their English training stages in order,
the seeds, steps, batch sizes and feature lengths per phase. The same file may bind anything
else (vocabulary, data dir, partitioning, `train.checkpoint_period`): it is parsed again in every
phase, after the model and run files, so those bindings apply to every phase.

`expand(exp, ...)` turns it into a `Plan`: one `Run` per (size, intermediate, target, seed), each
a chain of `Phase`s (CONTRACTS.md "The study's phases"):

  intermediate  pretrained -> the intermediate task; one per (size, intermediate, seed), shared
                by every target (none for intermediate = `none`)
  target        the intermediate's final checkpoint (or the pretrained one) -> each training
                stage of the target in order (XCOPA: xcopa_train.siqa, then xcopa_train.copa)
  evaluate      the last stage's final checkpoint -> every language of the target, zero-shot,
                on the split the registry binds (`register_tasks.eval_splits`; XTREME-R's)

The retrieval targets LAReQA and Mewsli-X train a dual encoder (catalog: model "dual_encoder"):
their training and evaluate phases parse models/dual_encoder.gin after the run file. Tatoeba,
with no training data, is evaluated with the xquad target's encoder; when the experiment also has
LAReQA, a second evaluate phase scores Tatoeba with the LAReQA dual encoder, a run of its own
whose results rows carry stage "evaluate:lareqa_dual_encoder" and enter no average.

Ids are stable (derived from the names only) and are also the model dirs under the grid's root:

  <root>/<experiment>/<size>/seed<k>/<intermediate>/intermediate          phase `intermediate`
  <root>/<experiment>/<size>/seed<k>/<intermediate>/<target>/<i>-<task>   stage i of `target`
  run id: <experiment>/<size>/<intermediate>/<target>/seed<k>
"""
import dataclasses
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import gin

from xfer_t5x.tasks import catalog

NONE = "none"
DUAL_ENCODER_FILE = "models/dual_encoder.gin"
# Tatoeba's score with the LAReQA dual encoder, beside its own (CONTRACTS.md "Retrieval").
BESIDE = {"tatoeba": "lareqa"}
BESIDE_STAGE = "evaluate:{source}_dual_encoder"
PHASE_KINDS = ("intermediate", "target", "evaluate")
DEFAULT_RUN_FILE = "runs/finetune.gin"
DEFAULT_FEATURE_LENGTHS = {"inputs": 1024, "targets": 128}


class ExperimentError(ValueError):
  """A bad experiment description: the message names the binding and the fix."""


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What `experiment(...)` returns; see that function for the fields."""
  name: str
  sizes: Tuple[Tuple[str, str], ...]                     # (size, model gin file)
  pretrained: Tuple[Tuple[str, Optional[str]], ...]      # (size, checkpoint or None)
  intermediates: Tuple[str, ...]
  targets: Tuple[Tuple[str, Tuple[str, ...]], ...]       # (target, training stages)
  languages: Tuple[Tuple[str, Tuple[str, ...]], ...]     # (target, eval languages)
  seeds: Tuple[int, ...]
  intermediate_steps: int
  intermediate_batch_size: int
  target_steps: int
  target_batch_size: int
  stage_steps: Tuple[Tuple[str, int], ...] = ()
  feature_lengths: Tuple[Tuple[str, Tuple[Tuple[str, int], ...]], ...] = ()
  run_file: str = DEFAULT_RUN_FILE
  gin_files: Tuple[str, ...] = ()
  eval_gin_files: Tuple[str, ...] = ()
  intermediate_bindings: Tuple[str, ...] = ()
  target_bindings: Tuple[str, ...] = ()
  eval_bindings: Tuple[str, ...] = ()
  root_dir: Optional[str] = None
  results_db: Optional[str] = None
  state_dir: Optional[str] = None
  size_gin_files: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
  size_batch_sizes: Tuple[Tuple[str, Tuple[Tuple[str, int], ...]], ...] = ()

  def model_file(self, size: str) -> str:
    return dict(self.sizes)[size]

  def files_for(self, size: str) -> Tuple[str, ...]:
    """The size's own run configuration (plans/*.gin: partitioning, remat, scan, microbatches),
    parsed after every other file of its phases."""
    return dict(self.size_gin_files).get(size, ())

  def batch_for(self, size: str, kind: str) -> int:
    """The global batch of a training phase of `kind` (intermediate | target) for `size`."""
    default = self.intermediate_batch_size if kind == "intermediate" else self.target_batch_size
    return dict(dict(self.size_batch_sizes).get(size, ())).get(kind, default)

  def pretrained_checkpoint(self, size: str) -> Optional[str]:
    return dict(self.pretrained).get(size)

  def stages(self, target: str) -> Tuple[str, ...]:
    return dict(self.targets)[target]

  def target_languages(self, target: str) -> Tuple[str, ...]:
    return dict(self.languages)[target]

  def steps_for(self, stage_task: str) -> int:
    return dict(self.stage_steps).get(stage_task, self.target_steps)

  def lengths_for(self, *names: str) -> Dict[str, int]:
    """Feature lengths of the first of `names` bound in feature_lengths, else a training
    stage's own family (catalog.STAGE_FAMILIES: the dual encoder's query/candidate pairs), else
    the bound `default`, else the target family's (catalog.SEQUENCE_LENGTHS), else
    DEFAULT_FEATURE_LENGTHS."""
    bound = {k: dict(v) for k, v in self.feature_lengths}
    for n in names:
      if n in bound:
        return bound[n]
    for n in names:
      if n in catalog.STAGE_FAMILIES:  # a dual encoder's pairs, not its target's eval lengths
        return dict(catalog.SEQUENCE_LENGTHS[catalog.STAGE_FAMILIES[n]])
    if "default" in bound:
      return bound["default"]
    for n in names:
      if n in catalog.TARGET_SPECS:
        return dict(catalog.SEQUENCE_LENGTHS[catalog.TARGET_SPECS[n].family])
    return dict(DEFAULT_FEATURE_LENGTHS)


def _model_files(target: str) -> Tuple[str, ...]:
  """The gin files a target's model adds to its phases (a dual encoder's)."""
  spec = catalog.TARGET_SPECS.get(target)
  return (DUAL_ENCODER_FILE,) if spec and spec.model == "dual_encoder" else ()


def _borrowed_model(target: str) -> Optional[str]:
  """The target whose trained model evaluates `target` (Tatoeba: xquad's), if any."""
  spec = catalog.TARGET_SPECS.get(target)
  return spec.encoder_from if spec else None


def _pairs(mapping, what) -> Tuple:
  if mapping is None:
    return ()
  if not isinstance(mapping, Mapping):
    raise ExperimentError(f"experiment.{what} must be a dict, got {type(mapping).__name__}")
  return tuple((str(k), v) for k, v in mapping.items())


def _strings(values, what) -> Tuple[str, ...]:
  if values is None:
    return ()
  if isinstance(values, str):
    return (values,)
  return tuple(str(v) for v in values)


@gin.configurable
def experiment(name: str = gin.REQUIRED,
               sizes: Mapping[str, str] = gin.REQUIRED,
               targets: Union[Sequence[str], Mapping[str, Sequence[str]]] = gin.REQUIRED,
               intermediates: Sequence[str] = (NONE,),
               pretrained: Optional[Mapping[str, Optional[str]]] = None,
               languages: Optional[Mapping[str, Sequence[str]]] = None,
               seeds: Sequence[int] = (0,),
               intermediate_steps: int = 1000,
               intermediate_batch_size: int = 128,
               target_steps: int = 1000,
               target_batch_size: int = 128,
               stage_steps: Optional[Mapping[str, int]] = None,
               feature_lengths: Optional[Mapping[str, Mapping[str, int]]] = None,
               run_file: str = DEFAULT_RUN_FILE,
               gin_files: Sequence[str] = (),
               eval_gin_files: Sequence[str] = (),
               intermediate_bindings: Sequence[str] = (),
               target_bindings: Sequence[str] = (),
               eval_bindings: Sequence[str] = (),
               root_dir: Optional[str] = None,
               results_db: Optional[str] = None,
               state_dir: Optional[str] = None,
               size_gin_files: Optional[Mapping[str, Sequence[str]]] = None,
               size_batch_sizes: Optional[Mapping[str, Mapping[str, int]]] = None) -> Experiment:
  """The experiment as gin binds it, validated.

  Args:
    name: the experiment's name (the results' `experiment` column and the top folder).
    sizes: {size name: model gin file}, e.g. {"base": "models/mt5_base.gin"}.
    targets: target names (their stages come from the task catalog), or {target: [stage task,
      ...]} to name the English training stages explicitly, in order.
    intermediates: `none` and/or registered task or mixture names.
    pretrained: {size: checkpoint path}; a missing size or None means random initialisation.
    languages: {target: [language, ...]} to evaluate; default: every language of the target.
    seeds: one run per seed (training order, dropout and, without a checkpoint, the init).
    intermediate_steps, intermediate_batch_size: the intermediate phase's training.
    target_steps, target_batch_size: each target stage's training.
    stage_steps: {stage task: steps} overriding target_steps for that stage.
    feature_lengths: {task, target or "default": {"inputs": n, "targets": m}}; a phase uses its
      task's entry, else its target's, else the target's family lengths (catalog), else default.
    run_file: the training run file; it must define the macros MODEL_DIR, MIXTURE_OR_TASK_NAME,
      TRAIN_STEPS, INITIAL_CHECKPOINT, BATCH_SIZE and TASK_FEATURE_LENGTHS (runs/finetune.gin).
    gin_files: more files for every phase (e.g. partitioning/data_parallel.gin).
    eval_gin_files: files for the evaluate phase only.
    intermediate_bindings, target_bindings, eval_bindings: gin statements for one phase kind,
      applied last.
    root_dir: the grid's folder: the phases' model dirs, and the state unless state_dir is
      given; local or remote (gs://...). `xfer-t5x grid run --root` overrides it.
    results_db: the results database; default <state_dir>/results.sqlite.
    state_dir: a local folder for the grid's state, lock and (default) results database;
      default: root_dir, which must then be local. `--state_dir` overrides it.
    size_gin_files: {size: [gin file, ...]}: each size's own run configuration (mesh,
      partitioning, remat, scan, microbatches; `plans/*.gin`), for its training and evaluation
      phases, parsed after every other file.
    size_batch_sizes: {size: {"intermediate": n, "target": m}}: a size's global batches where
      they differ from intermediate_batch_size / target_batch_size.
  """
  if not name or "/" in str(name):
    raise ExperimentError(f"experiment.name={name!r}: give a non-empty name without '/'")
  size_pairs = _pairs(sizes, "sizes")
  if not size_pairs:
    raise ExperimentError("experiment.sizes is empty: bind {size name: model gin file}, e.g. "
                          "{'base': 'models/mt5_base.gin'}")
  # Entries for sizes not in `sizes` are ignored (a --gin.experiment.sizes override may drop some).
  pre = dict(_pairs(pretrained, "pretrained"))
  if isinstance(targets, Mapping):
    target_pairs = tuple((str(t), _strings(st, f"targets[{t}]")) for t, st in targets.items())
  else:
    target_pairs = tuple((str(t), None) for t in _strings(targets, "targets"))
  if not target_pairs:
    raise ExperimentError("experiment.targets is empty: name at least one target, e.g. ['xnli']")
  resolved = []
  for t, stages in target_pairs:
    if stages is None:
      if t not in catalog.TARGET_SPECS:
        raise ExperimentError(f"experiment.targets: unknown target {t!r}; the catalog has "
                              f"{list(catalog.TARGETS)} (or bind {{target: [stage tasks]}})")
      spec = catalog.TARGET_SPECS[t]
      stages = spec.train_stages
      if not stages and not spec.encoder_from:
        raise ExperimentError(
            f"experiment.targets: {t!r} has no English training stages yet ({spec.note}); "
            "leave it out of this experiment")
    if not stages and not _borrowed_model(t):
      raise ExperimentError(f"experiment.targets[{t!r}] has no stages; list its training tasks")
    resolved.append((t, tuple(stages)))
  names = [t for t, _ in resolved]
  for t in names:
    source = _borrowed_model(t)
    if source and not dict(resolved)[t] and source not in names:
      raise ExperimentError(
          f"experiment.targets: {t!r} has no training data of its own and is evaluated with the "
          f"model of the {source!r} target ({catalog.TARGET_SPECS[t].note}); add {source!r} to "
          "experiment.targets")
  # Targets evaluated with another target's model come after it.
  resolved.sort(key=lambda pair: bool(not pair[1] and _borrowed_model(pair[0])))
  langs = dict(_pairs(languages, "languages"))
  lang_pairs = []
  for t, _ in resolved:
    chosen = langs.get(t)
    if chosen is None:
      if t not in catalog.TARGET_LANGUAGES:
        raise ExperimentError(f"experiment.languages has no entry for target {t!r}, which is "
                              "not in the catalog; bind its languages")
      chosen = catalog.TARGET_LANGUAGES[t]
    chosen = _strings(chosen, f"languages[{t}]")
    if not chosen:
      raise ExperimentError(f"experiment.languages[{t!r}] is empty")
    lang_pairs.append((t, chosen))
  inters = _strings(intermediates, "intermediates")
  if not inters:
    raise ExperimentError("experiment.intermediates is empty: use at least ['none']")
  if len(set(inters)) != len(inters):
    raise ExperimentError(f"experiment.intermediates repeats a value: {list(inters)}")
  for v in inters:
    if not v or "/" in v:
      raise ExperimentError(f"experiment.intermediates: {v!r} is not a task or mixture name")
  seed_list = tuple(int(s) for s in seeds)
  if not seed_list or len(set(seed_list)) != len(seed_list):
    raise ExperimentError(f"experiment.seeds={list(seeds)}: give distinct seeds, at least one")
  for what, v in (("intermediate_steps", intermediate_steps), ("target_steps", target_steps),
                  ("intermediate_batch_size", intermediate_batch_size),
                  ("target_batch_size", target_batch_size),
                  *((f"stage_steps[{k}]", s) for k, s in dict(stage_steps or {}).items())):
    if int(v) < 1:
      raise ExperimentError(f"experiment.{what}={v}: must be at least 1")
  size_names = {s for s, _ in size_pairs}
  # As for `pretrained`: entries of sizes this experiment does not run are ignored.
  files_by_size = tuple((s, _strings(f, f"size_gin_files[{s}]"))
                        for s, f in _pairs(size_gin_files, "size_gin_files") if s in size_names)
  batches = []
  for s, kinds in _pairs(size_batch_sizes, "size_batch_sizes"):
    if not isinstance(kinds, Mapping) or not set(kinds) <= {"intermediate", "target"}:
      raise ExperimentError(f"experiment.size_batch_sizes[{s!r}]={kinds!r}: give a dict with "
                            "'intermediate' and/or 'target', e.g. {'target': 256}")
    for kind, v in kinds.items():
      if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ExperimentError(f"experiment.size_batch_sizes[{s!r}][{kind!r}]={v!r}: must be an "
                              "integer >= 1")
    if s in size_names:
      batches.append((s, tuple(sorted((str(k), int(v)) for k, v in kinds.items()))))
  lengths = tuple((str(k), tuple(sorted((str(f), int(n)) for f, n in dict(v).items())))
                  for k, v in dict(feature_lengths or {}).items())
  for k, v in lengths:
    if {f for f, _ in v} != {"inputs", "targets"}:
      raise ExperimentError(f"experiment.feature_lengths[{k!r}] must have exactly 'inputs' and "
                            f"'targets', got {dict(v)}")
  return Experiment(
      name=str(name), sizes=size_pairs,
      pretrained=tuple((s, pre.get(s)) for s, _ in size_pairs),
      intermediates=inters, targets=tuple(resolved), languages=tuple(lang_pairs),
      seeds=seed_list, intermediate_steps=int(intermediate_steps),
      intermediate_batch_size=int(intermediate_batch_size), target_steps=int(target_steps),
      target_batch_size=int(target_batch_size),
      stage_steps=tuple((str(k), int(v)) for k, v in dict(stage_steps or {}).items()),
      feature_lengths=lengths, run_file=str(run_file), gin_files=_strings(gin_files, "gin_files"),
      eval_gin_files=_strings(eval_gin_files, "eval_gin_files"),
      intermediate_bindings=_strings(intermediate_bindings, "intermediate_bindings"),
      target_bindings=_strings(target_bindings, "target_bindings"),
      eval_bindings=_strings(eval_bindings, "eval_bindings"),
      root_dir=root_dir, results_db=results_db, state_dir=state_dir,
      size_gin_files=files_by_size, size_batch_sizes=tuple(batches))


# ------------------------------------------------------------------------------------------------
# Expansion


@dataclasses.dataclass(frozen=True)
class Phase:
  """One unit of work: a training run (intermediate or a target stage) or an evaluation."""
  phase_id: str                 # also the model dir relative to the root (evaluate: + "/evaluate")
  kind: str                     # intermediate | target | evaluate
  size: str
  intermediate: str
  target: Optional[str]         # None for the intermediate phase
  seed: int
  model_dir: str
  task: Optional[str] = None    # the task or mixture trained on (training phases)
  eval_tasks: Tuple[str, ...] = ()
  steps: int = 0                # training: steps; evaluate: the checkpoint step evaluated
  batch_size: int = 0
  feature_lengths: Tuple[Tuple[str, int], ...] = ()
  initial_checkpoint: Optional[str] = None
  depends_on: Tuple[str, ...] = ()
  gin_files: Tuple[str, ...] = ()
  gin_bindings: Tuple[str, ...] = ()
  root_dir: str = ""            # the grid's folder (left out of the config hash)

  @property
  def final_checkpoint(self) -> str:
    """The checkpoint a training phase ends with (evaluate: the one it evaluates)."""
    return os.path.join(self.model_dir, f"checkpoint_{self.steps}")


@dataclasses.dataclass(frozen=True)
class Run:
  """One (size, intermediate, target, seed): its phase chain ends with an evaluate phase."""
  run_id: str
  experiment: str
  size: str
  intermediate: str
  target: str
  seed: int
  languages: Tuple[str, ...]
  stages: Tuple[str, ...]
  phase_ids: Tuple[str, ...]    # in order: [intermediate,] stages..., evaluate
  # The results' `stage` column: "evaluate", or BESIDE_STAGE for a score reported beside the
  # target's own (Tatoeba with the LAReQA dual encoder), which enters no average.
  result_stage: str = "evaluate"

  @property
  def eval_phase_id(self) -> str:
    return self.phase_ids[-1]


@dataclasses.dataclass(frozen=True)
class Plan:
  experiment: Experiment
  root_dir: str                 # model dirs (local or remote)
  results_db: str
  state_dir: str                # local: state.sqlite, grid.lock
  runs: Tuple[Run, ...]
  phases: Tuple[Phase, ...]     # in execution order, each after what it depends on

  def phase(self, phase_id: str) -> Phase:
    for p in self.phases:
      if p.phase_id == phase_id:
        return p
    raise KeyError(phase_id)

  def run(self, run_id: str) -> Run:
    for r in self.runs:
      if r.run_id == run_id:
        return r
    raise KeyError(run_id)


def run_id(name: str, size: str, intermediate: str, target: str, seed: int) -> str:
  return f"{name}/{size}/{intermediate}/{target}/seed{seed}"


def _gin_value(v) -> str:
  """A Python value as gin syntax (strings quoted, None, numbers, dicts, lists)."""
  return repr(v)


def _training_bindings(model_dir, task, steps, batch, lengths, init, seed) -> Tuple[str, ...]:
  return (f"MODEL_DIR = {_gin_value(model_dir)}",
          f"MIXTURE_OR_TASK_NAME = {_gin_value(task)}",
          f"TRAIN_STEPS = {int(steps)}",
          f"BATCH_SIZE = {int(batch)}",
          f"TASK_FEATURE_LENGTHS = {_gin_value(dict(lengths))}",
          f"INITIAL_CHECKPOINT = {_gin_value(init)}",
          # Each phase starts a fresh optimizer at step 0 from the previous phase's (or the
          # pretrained) parameters, as intermediate-task studies train; TRAIN_STEPS = steps.
          "train.initial_state = 'params'",
          f"train.seed = {int(seed)}")


def _local(path: str) -> str:
  return os.path.abspath(os.path.expanduser(str(path)))


def expand(exp: Experiment, root_dir: Optional[str] = None, experiment_files: Sequence[str] = (),
           user_bindings: Sequence[str] = (), results_db: Optional[str] = None,
           state_dir: Optional[str] = None) -> Plan:
  """The runs and phases of `exp` (see the module docstring), in execution order.

  Args:
    exp: the experiment.
    root_dir: the grid's folder (default: exp.root_dir).
    experiment_files: the gin files that described `exp`; each phase parses them again after
      its model and run files, so their other bindings (vocabulary, data dir, ...) apply.
    user_bindings: the command line's --gin.X=... statements, applied to every phase after them.
    results_db: the results database (default: exp.results_db, else
      <state dir>/results.sqlite).
    state_dir: the local folder of the grid's state (default: exp.state_dir, else the root).
  """
  root = str(root_dir or exp.root_dir or "")
  if not root:
    raise ExperimentError("no grid folder: bind experiment.root_dir or pass --root DIR")
  remote = "://" in root
  root = root.rstrip("/") if remote else _local(root)
  state = state_dir or exp.state_dir
  if not state:
    if remote:
      raise ExperimentError(f"experiment.root_dir={root} is remote; the grid's state and results "
                            "need a local folder too: bind experiment.state_dir or pass "
                            "--state_dir DIR")
    state = root
  state = _local(state)
  db = _local(results_db or exp.results_db or os.path.join(state, "results.sqlite"))
  common_files = tuple(exp.gin_files) + tuple(experiment_files)
  user = tuple(user_bindings)
  phases: Dict[str, Phase] = {}
  runs: List[Run] = []

  def add(p: Phase):
    if p.phase_id not in phases:
      phases[p.phase_id] = p
    return p.phase_id

  for size, model_file in exp.sizes:
    pretrained = exp.pretrained_checkpoint(size)
    size_files = exp.files_for(size)
    inter_batch, target_batch = exp.batch_for(size, "intermediate"), exp.batch_for(size, "target")
    for seed in exp.seeds:
      for inter in exp.intermediates:
        base = os.path.join(exp.name, size, f"seed{seed}", inter)
        chain: List[str] = []
        init = pretrained
        if inter != NONE:
          pid = os.path.join(base, "intermediate")
          lengths = exp.lengths_for(inter)
          mdir = os.path.join(root, pid)
          add(Phase(pid, "intermediate", size, inter, None, seed, mdir, task=inter,
                    steps=exp.intermediate_steps, batch_size=inter_batch,
                    feature_lengths=tuple(sorted(lengths.items())), initial_checkpoint=pretrained,
                    gin_files=(model_file, exp.run_file) + common_files + size_files,
                    gin_bindings=user + _training_bindings(
                        mdir, inter, exp.intermediate_steps, inter_batch,
                        lengths, pretrained, seed) + exp.intermediate_bindings,
                    root_dir=root))
          chain.append(pid)
          init = phases[pid].final_checkpoint
        trained: Dict[str, List[str]] = {}   # target -> its chain of training phases
        for target, stages in exp.targets:
          tchain = list(chain)
          tinit = init
          if not stages:  # evaluated with another target's model (Tatoeba: xquad's encoder)
            tchain = list(trained[_borrowed_model(target)])
          for i, stage in enumerate(stages, 1):
            pid = os.path.join(base, target, f"{i}-{stage}")
            steps = exp.steps_for(stage)
            lengths = exp.lengths_for(stage, target)
            mdir = os.path.join(root, pid)
            add(Phase(pid, "target", size, inter, target, seed, mdir, task=stage, steps=steps,
                      batch_size=target_batch,
                      feature_lengths=tuple(sorted(lengths.items())), initial_checkpoint=tinit,
                      depends_on=tuple(tchain[-1:]),
                      gin_files=(model_file, exp.run_file) + _model_files(target) + common_files
                      + size_files,
                      gin_bindings=user + _training_bindings(
                          mdir, stage, steps, target_batch, lengths, tinit, seed)
                      + exp.target_bindings, root_dir=root))
            tchain.append(pid)
            tinit = phases[pid].final_checkpoint
          trained[target] = list(tchain)
          last = phases[tchain[-1]]
          languages = exp.target_languages(target)
          # The lengths the model was trained with, or the target's own for a borrowed model.
          lengths = exp.lengths_for(target) if not stages else dict(last.feature_lengths)
          # The model's files: the target's own, or those of the target it borrows from.
          model_files = _model_files(target if stages else _borrowed_model(target))
          if stages and model_files:
            # A dual encoder embeds queries and candidates alike at the `inputs` length: as long
            # as the longer of the two it was trained with.
            lengths = dict(lengths, inputs=max(lengths.values()))

          def evaluate(eval_id, source_chain, files, bindings=()):
            source = phases[source_chain[-1]]
            add(Phase(eval_id, "evaluate", size, inter, target, seed, source.model_dir,
                      eval_tasks=tuple(f"{target}.{lang}" for lang in languages),
                      steps=source.steps, batch_size=target_batch,
                      feature_lengths=tuple(sorted(lengths.items())),
                      depends_on=(source.phase_id,),
                      gin_files=(model_file,) + tuple(exp.eval_gin_files) + files
                      + common_files + size_files,
                      gin_bindings=user + (f"evaluate.feature_lengths = {_gin_value(lengths)}",)
                      + tuple(bindings) + exp.eval_bindings, root_dir=root))
            return list(source_chain) + [eval_id]

          tchain = evaluate(os.path.join(base, target, "evaluate"), tchain, model_files)
          runs.append(Run(run_id(exp.name, size, inter, target, seed), exp.name, size, inter,
                          target, seed, languages, stages, tuple(tchain)))
          beside = BESIDE.get(target)
          if beside in trained:  # e.g. Tatoeba with the LAReQA dual encoder, beside its own
            stage_name = BESIDE_STAGE.format(source=beside)
            bchain = evaluate(os.path.join(base, target, f"evaluate-{beside}"), trained[beside],
                              _model_files(beside), ("evaluate.embedding_layer = 'final'",))
            runs.append(Run(run_id(exp.name, size, inter, f"{target}-{beside}", seed), exp.name,
                            size, inter, target, seed, languages, (), tuple(bchain),
                            result_stage=stage_name))
  return Plan(exp, root, db, state, tuple(runs), tuple(phases.values()))

