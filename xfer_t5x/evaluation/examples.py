"""What to evaluate: task and mixture names -> eval tasks -> their examples, in a fixed order.

`expand_tasks(["xnli_zeroshot", "mnli"])` gives the eval tasks: a mixture expands to its members
that are per-language eval tasks (role "eval": a `<target>_zeroshot` mixture gives every language
of its target, never its English training task), or, for a mixture without such members (e.g.
`intermediate_all`), to every member that can be evaluated. Candidate pools (mode "embed") are
never evaluated on their own: the retrieval tasks that use them read them.

`load_examples` reads a task's eval split unshuffled, once, tokenized by the task's own
preprocessors; every host reads all of it, in the same order.
"""
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import seqio

from xfer_t5x.tasks import registry

Example = Dict[str, Any]


class EmptyTaskError(ValueError):
  """A task's eval split has no examples."""


def info_of(name: str) -> registry.TaskInfo:
  """The task's TaskInfo; a SeqIO task registered elsewhere gets a generic one (generate)."""
  try:
    return registry.task_info(name)
  except KeyError:
    seqio.get_mixture_or_task(name)  # raises a clear error for an unknown name
    return registry.TaskInfo(name=name, template="", family="custom", mode="generate",
                             note="registered outside xfer_t5x.tasks")


def is_mixture(name: str) -> bool:
  return name in seqio.MixtureRegistry.names()


def _members(name: str) -> List[str]:
  if name in registry.registered_mixtures():
    out = []
    for member in registry.mixture_info(name)["tasks"]:
      out += _members(member) if is_mixture(member) else [member]
    return out
  return [t.name for t in seqio.get_mixture_or_task(name).tasks]


def _evaluable(info: registry.TaskInfo) -> bool:
  return info.mode not in ("embed", "train") and info.role != "candidates"


def expand_tasks(names: Sequence[str]) -> List[str]:
  """Eval task names for task or mixture names, in order, each once."""
  if isinstance(names, str):
    names = [names]
  out: List[str] = []
  for name in names:
    if name not in seqio.TaskRegistry.names() and not is_mixture(name):
      raise ValueError(
          f"evaluate: {name!r} is neither a registered task nor a mixture (registered: "
          f"{len(seqio.TaskRegistry.names())} tasks, {len(seqio.MixtureRegistry.names())} "
          "mixtures; see `xfer-t5x tasks`). Check the name and that the vocabulary and data dir "
          "bindings are the ones the tasks were registered with")
    if not is_mixture(name):
      info = info_of(name)
      if not _evaluable(info):
        if info.mode == "train":
          raise ValueError(f"evaluate: {name} is a training-only task (mode 'train'); evaluate "
                           f"its target's tasks instead ({info.target or 'its'}_zeroshot)")
        raise ValueError(f"evaluate: {name} is a candidate pool (mode {info.mode!r}); evaluate "
                         "the retrieval task that names it as candidates_task instead")
      chosen = [name]
    else:
      members = [(m, info_of(m)) for m in _members(name)]
      chosen = [m for m, info in members if info.role == "eval"]
      if not chosen:
        chosen = [m for m, info in members if _evaluable(info)]
      if not chosen:
        raise ValueError(f"evaluate: mixture {name} has no task that can be evaluated")
    for task in chosen:
      if task not in out:
        out.append(task)
  return out


def eval_split(name: str, split: Optional[str] = None) -> str:
  """`split` if given, else the task's eval split (XTREME-R's reported one), else validation."""
  if split:
    return split
  info = info_of(name)
  if info.eval_split:
    return info.eval_split
  splits = seqio.get_mixture_or_task(name).splits
  return "validation" if "validation" in splits else splits[-1]


def load_examples(name: str, split: str, feature_lengths: Optional[Mapping[str, int]] = None,
                  max_examples: Optional[int] = None) -> List[Example]:
  """The task's examples of `split`, unshuffled, as numpy dicts.

  Args:
    name: a registered task.
    split: the split to read.
    feature_lengths: {"inputs": n, "targets": m} to trim to (EOS kept at the end, as SeqIO
      trims); None keeps every token.
    max_examples: read at most this many (None: all).

  Raises:
    EmptyTaskError: the split has no examples.
  """
  task = seqio.get_mixture_or_task(name)
  if split not in task.splits:
    raise ValueError(f"task {name} has no split {split!r}; it has {list(task.splits)}")
  lengths = dict(feature_lengths) if feature_lengths else None
  if lengths:
    lengths = {k: v for k, v in lengths.items() if k in task.output_features}
  ds = task.get_dataset(sequence_length=lengths, split=split, shuffle=False, num_epochs=1,
                        use_cached=False)
  if max_examples is not None:
    ds = ds.take(int(max_examples))
  examples = list(ds.as_numpy_iterator())
  if not examples:
    raise EmptyTaskError(
        f"task {name} has no examples in split {split!r} (source: "
        f"{getattr(task.source, 'description', task.source)}). If the data lacks this language, "
        "restrict the target's languages (register_tasks.languages) or evaluate other tasks")
  logging.info("read %d examples of %s/%s", len(examples), name, split)
  return examples


def text(value) -> str:
  """A decoded string from bytes, numpy bytes or str."""
  if isinstance(value, (bytes, np.bytes_)):
    return bytes(value).decode("utf-8")
  return str(value)


def json_safe(value):
  """Numpy values and bytes as JSON-serialisable Python values."""
  if isinstance(value, (bytes, np.bytes_)):
    return text(value)
  if isinstance(value, np.ndarray):
    return [json_safe(v) for v in value.tolist()] if value.dtype != object else [
        json_safe(v) for v in value]
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  if isinstance(value, dict):
    return {str(k): json_safe(v) for k, v in value.items()}
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, float) and value != value:  # NaN
    return None
  return value
