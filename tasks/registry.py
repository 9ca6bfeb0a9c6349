"""Adding tasks to SeqIO: the one-call `add_task`, `TaskInfo`, and idempotent re-registration.

`add_task(name, source, template, metrics)` is all a user needs for a new task: the source is a
SeqIO DataSource or `{split: path or glob}` of JSON lines with the template family's fields; the
template names a row of templates.TEMPLATES (or is a new `Template`); the postprocessor and the
default metric follow from the template's family. Every task the library registers goes through
it, and its `TaskInfo` (mode, target, language, eval split, template, metrics, source) is what
`xfer-t5x tasks --show` prints and what evaluation reads to decide how to evaluate a task:
  mode "generate"  decode, postprocess, metric(targets, predictions)
       "rank"      score every choice (one example per choice), metric(targets, scores)
       "retrieve"  embed queries and the `candidates_task` pool with the encoder, rank the pool
                   by cosine similarity; metric(gold ids, ranked candidate ids)
       "embed"     a candidate pool (embedded, never scored on its own)
"""
import dataclasses
import difflib
import functools
import logging
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import seqio

from xfer_t5x.tasks import catalog
from xfer_t5x.tasks import formatting
from xfer_t5x.tasks import metrics as metrics_lib
from xfer_t5x.tasks import postprocessors
from xfer_t5x.tasks import rank_classification
from xfer_t5x.tasks import templates as templates_lib
from xfer_t5x.tasks import vocab as vocab_lib
from xfer_t5x.tasks.sources import base as sources_base
from xfer_t5x.tasks.sources import common as sources_common
from xfer_t5x.tasks.sources import files as files_lib


@dataclasses.dataclass(frozen=True)
class TaskInfo:
  """What a registered task is, for the CLI, the evaluation and the experiments."""
  name: str
  template: str
  family: str
  mode: str = "generate"            # generate, rank, retrieve, embed, or train (training only)
  target: Optional[str] = None      # the XTREME-R target it belongs to, if any
  language: str = "en"
  role: str = "custom"              # intermediate, target_train, eval, candidates, custom
  eval_split: Optional[str] = None  # the split evaluation reads (XTREME-R's reported one)
  metrics: Tuple[str, ...] = ()
  candidates_task: Optional[str] = None
  source: str = ""
  splits: Tuple[str, ...] = ()
  note: str = ""
  sequence_length: Mapping[str, int] = dataclasses.field(default_factory=dict)


def default_sequence_length(family: str) -> Dict[str, int]:
  """RESEARCH.md's lengths by family (catalog.SEQUENCE_LENGTHS; NER counts as tagging)."""
  return dict(catalog.SEQUENCE_LENGTHS["tagging" if family == "ner" else family])


_TASK_INFO: Dict[str, TaskInfo] = {}
_MIXTURE_INFO: Dict[str, Dict] = {}
_CURRENT: Dict = {"key": None, "vocabulary": None, "tasks": [], "mixtures": []}


def output_features(vocabulary: seqio.Vocabulary) -> Dict[str, seqio.Feature]:
  """mT5's output features: inputs (optional) and targets, both with EOS."""
  return {
      "inputs": seqio.Feature(vocabulary=vocabulary, add_eos=True, required=False),
      "targets": seqio.Feature(vocabulary=vocabulary, add_eos=True),
  }


class _AnyTag(frozenset):
  """An open tag set (CCG supertags): any non-empty generated tag is kept."""

  def __contains__(self, tag):
    return isinstance(tag, str) and bool(tag)


def _decoded(values):
  return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _gold_ids(single: bool):
  """Retrieval postprocess_fn: targets are the example's gold candidate ids."""
  def postprocess(output, example=None, is_target=False):
    if not is_target:
      return output
    gold = _decoded(example["gold"])
    return (gold[0] if gold else "") if single else gold
  return postprocess


def default_postprocess_fn(family: str, mode: str = "generate", template: str = "") -> Callable:
  """The postprocessor a task of this family gets unless add_task is given one."""
  if mode == "rank":
    return rank_classification.rank_postprocess
  if family == "qa":
    return postprocessors.qa_postprocessor()
  if family == "tagging":
    if template == "udpos":
      return postprocessors.tag_postprocessor(postprocessors.UPOS_TAGS)
    return postprocessors.tag_postprocessor(_AnyTag({"UNK"}), fill="UNK")
  if family == "ner":
    return postprocessors.ner_postprocessor()
  if family == "retrieval":
    return _gold_ids(single=template == "tatoeba")
  return postprocessors.strip_text


def default_metrics(family: str, mode: str = "generate") -> List[Callable]:
  if mode == "rank":
    return [rank_classification.rank_accuracy]
  return {
      "classification": [metrics_lib.accuracy],
      "multiple_choice": [metrics_lib.accuracy],
      "qa": [metrics_lib.squad_em_f1],
      "tagging": [metrics_lib.pos_f1],
      "ner": [metrics_lib.span_f1],
      "retrieval": [],
      "retrieval_pairs": [],
  }[family]


def _metric_fn(m) -> Callable:
  if callable(m):
    return m
  fn = getattr(metrics_lib, m, None) or getattr(rank_classification, m, None)
  if fn is None:
    raise ValueError(f"unknown metric {m!r}: name a function of xfer_t5x.tasks.metrics or pass a "
                     "callable (targets, predictions) -> {name: value}")
  return fn


def _metric_name(fn) -> str:
  if isinstance(fn, functools.partial):
    return _metric_name(fn.func)
  return getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn))).replace(".<locals>", "")


def _schema_for(family: str, template: templates_lib.Template) -> Dict[str, str]:
  from xfer_t5x.tasks.sources import (  # pylint: disable=g-import-not-at-top
      multiple_choice, retrieval, squad, tagging)
  if family == "classification":
    fields = [f for f in template.fields() if f != "label"]
    return {"id": sources_base.STRING, **{f: sources_base.STRING for f in fields},
            "label": sources_base.STRING}
  return {"qa": squad.QA_SCHEMA, "multiple_choice": multiple_choice.MC_SCHEMA,
          "tagging": tagging.TAG_SCHEMA, "ner": tagging.TAG_SCHEMA,
          "retrieval": retrieval.RETRIEVAL_SCHEMA,
          "retrieval_pairs": retrieval.PAIR_SCHEMA}[family]


def jsonl_source(name: str, files: Mapping[str, Union[str, Sequence[str]]],
                 schema: Mapping[str, str], labels: Sequence[str] = ()) -> sources_base.FileSource:
  """A file source over JSON-lines files whose objects carry the schema's fields (`labels`: a
  classification template's label words; the files may give a word or its index)."""
  splits = {}
  expected = "JSON lines with fields " + ", ".join(schema)
  extra = {}
  if labels:
    expected += f" (label: one of {', '.join(labels)}, or its index 0..{len(labels) - 1})"
    extra["labels"] = tuple(labels)
  for split, paths in files.items():
    paths = [paths] if isinstance(paths, str) else list(paths)
    paths = [files_lib.expand(p) for p in paths]
    splits[split] = [sources_base.Part.of(p, sources_common.read_schema_jsonl, expected,
                                          schema=tuple(schema.items()), **extra) for p in paths]
  return sources_base.FileSource(name, "/", splits, schema, description=f"JSON lines {files}")


def add_task(name: str,
             source: Union[seqio.DataSource, Mapping[str, Union[str, Sequence[str]]]],
             template: Union[str, templates_lib.Template],
             metrics: Sequence[Union[str, Callable]] = None,
             *,
             mode: str = "generate",
             postprocess_fn: Optional[Callable] = None,
             vocabulary: Optional[seqio.Vocabulary] = None,
             target: Optional[str] = None,
             language: str = "en",
             role: str = "custom",
             eval_split: Optional[str] = None,
             candidates_task: Optional[str] = None,
             sequence_length: Optional[Mapping[str, int]] = None,
             note: str = "") -> seqio.Task:
  """Registers one text-to-text task (replacing a task of the same name) and returns it.

  Args:
    name: the SeqIO task name.
    source: a seqio.DataSource, or {split: path/glob or list of them} of JSON-lines files with
      the template family's fields (classification: the template's fields plus `label`; see the
      schemas in sources/ for the other families).
    template: a name in templates.TEMPLATES, or a new templates.Template (added to the table).
    metrics: metric functions or names in xfer_t5x.tasks.metrics; default: the family's.
    mode: "generate", "rank" (multiple choice, one example per choice), "retrieve" or "embed".
    postprocess_fn: default: the family's (see default_postprocess_fn).
    vocabulary: the task's own vocabulary; leave it out (the usual case): the task then uses the
      run's vocabulary, resolved whenever the task is used (vocab.RunVocabulary), so a module
      imported before `--gin.default_vocabulary.path` is applied follows that binding too.
    sequence_length: {"inputs", "targets"} the task is read with (default: its family's).
    target, language, role, eval_split, candidates_task, note: recorded in its TaskInfo.
  """
  if isinstance(template, templates_lib.Template):
    existing = templates_lib.TEMPLATES.get(template.name)
    if existing is not None and existing != template:
      raise ValueError(f"template {template.name!r} already exists with another form; pick a "
                       "new name")
    templates_lib.TEMPLATES[template.name] = template
    template_name = template.name
  else:
    template_name = template
    if template_name not in templates_lib.TEMPLATES:
      raise ValueError(f"unknown template {template_name!r}; known: "
                       f"{', '.join(sorted(templates_lib.TEMPLATES))}")
  tmpl = templates_lib.TEMPLATES[template_name]
  family = tmpl.family
  if mode == "rank" and family != "multiple_choice":
    raise ValueError(f"rank classification needs a multiple-choice template, {template_name!r} "
                     f"is {family}")
  if isinstance(source, Mapping):
    source = jsonl_source(name, source, _schema_for(family, tmpl),
                          labels=tmpl.labels if family == "classification" else ())
  if vocabulary is None:  # resolved when the task is used, so gin bindings made later apply
    vocabulary = vocab_lib.RunVocabulary()
  metric_fns = [_metric_fn(m) for m in metrics] if metrics is not None else default_metrics(
      family, mode)
  if mode == "rank":
    text = functools.partial(formatting.rank_classification, template_name=template_name)
  else:
    text = functools.partial(formatting.format_examples, template_name=template_name)
  seqio.TaskRegistry.remove(name)
  task = seqio.TaskRegistry.add(
      name,
      source=source,
      preprocessors=[text, seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(),
                     seqio.preprocessors.append_eos_after_trim],
      output_features=output_features(vocabulary),
      postprocess_fn=postprocess_fn or default_postprocess_fn(family, mode, template_name),
      metric_fns=metric_fns)
  _TASK_INFO[name] = TaskInfo(
      name=name, template=template_name, family=family, mode=mode, target=target,
      language=language, role=role, eval_split=eval_split,
      metrics=tuple(_metric_name(f) for f in metric_fns), candidates_task=candidates_task,
      source=getattr(source, "description", "") or repr(source), splits=tuple(source.splits),
      note=note, sequence_length=dict(sequence_length or default_sequence_length(family)))
  return task


def add_span_corruption_task(name: str, source: seqio.DataSource, *,
                             vocabulary: Optional[seqio.Vocabulary] = None, language: str = "en",
                             sequence_length: Optional[Mapping[str, int]] = None,
                             note: str = "") -> seqio.Task:
  """Registers a span-corruption task (mT5's pretraining objective, span_corruption.py) over a
  source of {"text"} examples: training only, no metrics."""
  from xfer_t5x.tasks import span_corruption  # pylint: disable=g-import-not-at-top
  if vocabulary is None:
    vocabulary = vocab_lib.RunVocabulary()
  seqio.TaskRegistry.remove(name)
  task = seqio.TaskRegistry.add(
      name, source=source,
      preprocessors=[functools.partial(seqio.preprocessors.rekey, key_map={"targets": "text"}),
                     seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(),
                     span_corruption.preprocessor, seqio.preprocessors.append_eos_after_trim],
      output_features=output_features(vocabulary), metric_fns=[])
  _TASK_INFO[name] = TaskInfo(
      name=name, template="span_corruption", family="span_corruption", mode="train",
      language=language,
      role="intermediate", source=getattr(source, "description", "") or repr(source),
      splits=tuple(source.splits), note=note,
      sequence_length=dict(sequence_length or catalog.SEQUENCE_LENGTHS["span_corruption"]))
  return task


def add_mixture(name: str, tasks: Sequence[Union[str, Tuple[str, float]]],
                default_rate: float = 1.0, note: str = "") -> seqio.Mixture:
  """Registers a mixture (replacing one of the same name); tasks as names or (name, rate)."""
  seqio.MixtureRegistry.remove(name)
  mixture = seqio.MixtureRegistry.add(name, list(tasks), default_rate=default_rate)
  _MIXTURE_INFO[name] = {"tasks": [t if isinstance(t, str) else t[0] for t in tasks],
                         "rates": {t[0]: t[1] for t in tasks  # numbers; a callable rate is
                                   if not isinstance(t, str) and not callable(t[1])},  # lazy
                         "note": note}
  return mixture


def task_info(name: str) -> TaskInfo:
  """The TaskInfo of a task registered through add_task."""
  if name not in _TASK_INFO:
    raise KeyError(f"no task {name!r} was registered through xfer_t5x.tasks (registered: "
                   f"{len(_TASK_INFO)} tasks; call register_tasks first?)")
  return _TASK_INFO[name]


class UnknownTaskError(ValueError):
  """A task or mixture name (or its split) that is not registered."""


def require_task(name: str, split: Optional[str] = None) -> None:
  """Raises UnknownTaskError, with the near names, unless `name` is a registered SeqIO task or
  mixture that has `split` (when given)."""
  names = sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))
  if name not in names:
    near = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    raise UnknownTaskError(
        f"no task or mixture {name!r} is registered"
        + (f"; did you mean {' or '.join(near)}?" if near else ".")
        + " `xfer-t5x tasks` lists them; a task of your own must be imported (gin: "
        "`import my_tasks`) before it is named.")
  if split is not None:
    splits = list(seqio.get_mixture_or_task(name).splits)
    if split not in splits:
      raise UnknownTaskError(f"{name!r} has no split {split!r}; its splits are {splits}")


class VocabularyMismatchError(ValueError):
  """A task whose vocabulary is not the run's (the model is sized from the run's)."""


def tasks_of(name: str) -> List[seqio.Task]:
  """The SeqIO tasks a task or mixture name stands for (a mixture's, recursively)."""
  obj = seqio.get_mixture_or_task(name)
  return list(obj.tasks) if isinstance(obj, seqio.Mixture) else [obj]


def check_vocabulary(names: Sequence[str], vocabulary: seqio.Vocabulary) -> None:
  """Raises VocabularyMismatchError unless every task of `names` (mixtures expanded) tokenizes
  both features with `vocabulary`, the run's: as T5X, a run whose model and task vocabularies
  differ is refused at the start, before anything is written."""
  keys = {}

  def key(v):
    if id(v) not in keys:
      keys[id(v)] = (vocab_lib.vocabulary_key(v), v)
    return keys[id(v)][0]

  run_key = key(vocabulary)
  for name in names:
    for task in tasks_of(name):
      for feature_name, feature in task.output_features.items():
        if key(feature.vocabulary) == run_key:
          continue
        own = vocab_lib.resolve(feature.vocabulary)
        path = getattr(own, "sentencepiece_model_file", "PATH")
        raise VocabularyMismatchError(
            f"task {task.name!r}" + (f" (in {name!r})" if name != task.name else "")
            + f" tokenizes its {feature_name!r} with {vocab_lib.describe(own)}, but this run's "
            f"model vocabulary is {vocab_lib.describe(vocabulary)}. The model's embedding and "
            "output layer are sized from the run's vocabulary, so the task's token ids would not "
            "be the ones the model reads and writes (T5X refuses this too: \"Model and Task "
            "vocabularies do not match\"). Fix: register the task without `vocabulary=` (it then "
            "uses the run's), or make the task's vocabulary the run's: "
            f"--gin.default_vocabulary.path={path} "
            f"--gin.default_vocabulary.extra_ids={own.extra_ids}.")


def mixture_info(name: str) -> Dict:
  return dict(_MIXTURE_INFO[name])


def registered_tasks() -> List[str]:
  return sorted(_TASK_INFO)


def registered_mixtures() -> List[str]:
  return sorted(_MIXTURE_INFO)


def current_key():
  return _CURRENT["key"]


def current_vocabulary() -> Optional[seqio.Vocabulary]:
  """The vocabulary the last registration of the study's tasks used."""
  return _CURRENT["vocabulary"]


def current_tasks() -> List[str]:
  """The tasks the last registration added, in order."""
  return list(_CURRENT["tasks"])


def begin(key, vocabulary) -> bool:
  """Starts a registration for `key`: False (nothing to do) if it is the current one; else the
  tasks and mixtures of the previous registration are removed and True is returned."""
  vocab_lib.set_run_vocabulary(vocabulary)
  if _CURRENT["key"] == key:
    return False
  unregister_all()
  _CURRENT.update(key=key, vocabulary=vocabulary)
  return True


def track(tasks: Sequence[str], mixtures: Sequence[str]):
  """Records what a registration added, so that the next one with another key removes it."""
  _CURRENT["tasks"] = list(tasks)
  _CURRENT["mixtures"] = list(mixtures)


def unregister_all():
  """Removes every task and mixture the last registration added."""
  for name in _CURRENT["mixtures"]:
    seqio.MixtureRegistry.remove(name)
    _MIXTURE_INFO.pop(name, None)
  for name in _CURRENT["tasks"]:
    seqio.TaskRegistry.remove(name)
    _TASK_INFO.pop(name, None)
  if _CURRENT["tasks"] or _CURRENT["mixtures"]:
    logging.info("removed %d tasks and %d mixtures of the previous registration",
                 len(_CURRENT["tasks"]), len(_CURRENT["mixtures"]))
  _CURRENT.update(key=None, vocabulary=None, tasks=[], mixtures=[])
