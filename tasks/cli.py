"""`xfer-t5x tasks`: list, show and preview the registered SeqIO tasks and mixtures.

  xfer-t5x tasks                                  # every task and mixture, grouped
  xfer-t5x tasks --filter xnli                    # names containing "xnli"
  xfer-t5x tasks --show xnli.de                   # source, files, splits, metrics, template
  xfer-t5x tasks --demo /tmp/xfer_demo --preview xnli.de -n 3
  xfer-t5x tasks --data_dir ~/data --vocabulary ~/spm/mt5.model --preview panx.de --split test

Offline, `--demo DIR` writes the demo data (tasks/demo_data.py) into DIR if it is not there yet,
trains a small local vocabulary on it and uses both. Otherwise the data dir and the vocabulary
come from the flags or from gin (`register_tasks.data_dir`,
`setup_vocabulary_and_tasks.vocabulary`); listing and --show never read a file or the vocabulary.
"""
import argparse
import os
import sys

import seqio

from xfer_t5x.tasks import data_report
from xfer_t5x.tasks import registry
from xfer_t5x.tasks import templates
from xfer_t5x.tasks import vocab


def add_arguments(parser: argparse.ArgumentParser) -> None:
  from xfer_t5x.runtime import gin_utils  # pylint: disable=g-import-not-at-top
  gin_utils.add_gin_arguments(parser)
  parser.add_argument("--filter", default="", help="list only names containing this text")
  parser.add_argument("--show", metavar="NAME", help="describe one task or mixture")
  parser.add_argument("--preview", metavar="NAME",
                      help="print preprocessed examples of a task (inputs, targets, token counts)")
  parser.add_argument("-n", type=int, default=3, help="examples to preview (default 3)")
  parser.add_argument("--split", default=None,
                      help="split to preview (default: the task's eval split, else its first)")
  parser.add_argument("--data_dir", default=None, help="root of the datasets' folders")
  parser.add_argument("--vocabulary", default=None, metavar="PATH",
                      help="a SentencePiece .model file (100 extra ids, as mT5)")
  parser.add_argument("--demo", default=None, metavar="DIR",
                      help="use (and write if missing) the demo data and a local vocabulary in DIR")


def _setup(args):
  """Parses gin, picks the vocabulary and data dir, registers the tasks; returns the vocabulary."""
  from xfer_t5x.runtime import gin_utils  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime import vocab_setup  # pylint: disable=g-import-not-at-top
  from xfer_t5x.tasks import study  # pylint: disable=g-import-not-at-top
  gin_utils.setup_gin_from_args(args, finalize=False)
  data_dir = args.data_dir
  vocabulary = None
  if args.demo:
    from xfer_t5x.tasks import demo_data  # pylint: disable=g-import-not-at-top
    if not os.path.isdir(os.path.join(args.demo, "xnli")):
      demo_data.write_demo_data(args.demo)
    data_dir = data_dir or args.demo
    vocabulary = vocab.build_local_vocabulary(demo_data.demo_texts(args.demo),
                                              os.path.join(args.demo, "vocab.model"))
  if args.vocabulary:
    vocabulary = seqio.SentencePieceVocabulary(args.vocabulary, extra_ids=vocab.MT5_EXTRA_IDS)
  if vocabulary is None:
    vocabulary = vocab_setup.setup_vocabulary_and_tasks(register=False)
  if data_dir:
    study.register_tasks(vocabulary, data_dir)
  else:
    study.register_tasks(vocabulary)
  return vocabulary


def _list(pattern: str, out):
  tasks = [t for t in registry.registered_tasks() if pattern in t]
  groups = {}
  for name in tasks:
    info = registry.task_info(name)
    key = info.target or info.role
    groups.setdefault(key, []).append(name)
  for key in sorted(groups):
    names = groups[key]
    print(f"{key} ({len(names)} tasks):", file=out)
    print("  " + " ".join(names), file=out)
  mixtures = [m for m in registry.registered_mixtures() if pattern in m]
  print(f"mixtures ({len(mixtures)}):", file=out)
  for m in mixtures:
    print(f"  {m}: {len(registry.mixture_info(m)['tasks'])} tasks", file=out)
  print(f"{len(tasks)} tasks, {len(mixtures)} mixtures", file=out)


def _files_of(task, split):
  source = task.source
  if not hasattr(source, "patterns"):
    return "  (not file-based)"
  lines = []
  for part in source._parts[split]:  # pylint: disable=protected-access
    try:
      folder = part.folder(lambda: source.data_dir)
    except FileNotFoundError as e:
      lines.append(f"    {' | '.join(part.patterns)}  [no data dir: {e}]")
      continue
    from xfer_t5x.tasks.sources.base import resolve  # pylint: disable=g-import-not-at-top
    found = resolve(folder, part.patterns)
    state = f"{len(found)} file(s)" if found else "MISSING"
    lines.append(f"    {folder}: {' | '.join(part.patterns)}  [{state}]")
  return "\n".join(lines)


def _vocabulary_of(task) -> str:
  """The task's vocabulary as registered, without opening it."""
  v = task.output_features["targets"].vocabulary
  if isinstance(v, vocab.RunVocabulary):
    return "the run's (added without one: default_vocabulary.path when the task is used)"
  path = getattr(v, "sentencepiece_model_file", None)
  own = f"{path} ({v.extra_ids} extra ids)" if path else type(v).__name__
  return own + (", the run's" if registry.current_key() and v is registry.current_vocabulary()
                else "")


def _show(name: str, out) -> int:
  if name in registry.registered_mixtures():
    info = registry.mixture_info(name)
    print(f"mixture {name}: {info['note']}", file=out)
    for t in info["tasks"]:
      rate = info["rates"].get(t)
      print(f"  {t}" + (f"  rate {rate:g}" if rate is not None else ""), file=out)
    return 0
  try:
    info = registry.task_info(name)
  except KeyError as e:
    print(f"error: {e.args[0]}", file=sys.stderr)
    return 1
  task = seqio.get_mixture_or_task(name)
  tmpl = templates.TEMPLATES[info.template]
  print(f"task {name}", file=out)
  print(f"  role: {info.role}" + (f", target {info.target}" if info.target else "") +
        f", language {info.language}, mode {info.mode}", file=out)
  print(f"  source: {info.source}", file=out)
  print(f"  splits: {', '.join(info.splits)}" +
        (f" (evaluation reads {info.eval_split})" if info.eval_split else ""), file=out)
  for split in info.splits:
    if hasattr(task.source, "patterns"):
      print(f"  files of {split}:\n{_files_of(task, split)}", file=out)
  print(f"  metrics: {', '.join(info.metrics) or ('(none: training only)' if info.mode == 'train' else '(none: a candidate pool)')}", file=out)
  print(f"  template {tmpl.name} ({tmpl.family}):", file=out)
  print(f"    inputs:  {tmpl.inputs}", file=out)
  print(f"    targets: {tmpl.targets or '(none)'}", file=out)
  if tmpl.family == "classification":
    if tmpl.labels:
      print(f"    labels: {', '.join(tmpl.labels)} (a file may give the word or its index "
            f"0..{len(tmpl.labels) - 1}; -1 or null: unlabeled)", file=out)
    else:
      print("    labels: any word (no label list: a file's label text is the target)", file=out)
  if tmpl.note:
    print(f"    note: {tmpl.note}", file=out)
  print(f"  vocabulary: {_vocabulary_of(task)}", file=out)
  print(f"  sequence length: {info.sequence_length}", file=out)
  if info.candidates_task:
    print(f"  candidates: {info.candidates_task}", file=out)
  if info.note:
    print(f"  note: {info.note}", file=out)
  return 0


def _preview(name: str, n: int, split, out) -> int:
  provider = seqio.get_mixture_or_task(name)
  task = provider if isinstance(provider, seqio.Task) else provider.tasks[0]
  info = registry.task_info(task.name)
  split = split or (info.eval_split if info.eval_split in task.splits else task.splits[0])
  ds = task.get_dataset(info.sequence_length, split=split, shuffle=False)
  print(f"{task.name} [{split}]", file=out)
  for i, ex in enumerate(ds.take(n)):
    inputs = ex["inputs_pretokenized"].numpy().decode("utf-8")
    targets = ex["targets_pretokenized"].numpy().decode("utf-8")
    print(f"--- example {i + 1}", file=out)
    print(f"inputs  ({len(ex['inputs'])} tokens): {inputs}", file=out)
    print(f"targets ({len(ex['targets'])} tokens): {targets}", file=out)
  for r in data_report.data_report(task.name):
    if r["unlabeled"] or r["malformed"]:
      print(f"data: {r['path']}: {r['kept']} kept, {r['unlabeled']} unlabeled, "
            f"{r['malformed']} malformed {r['locations'][:3]}", file=out)
  return 0


def run(args) -> int:
  out = sys.stdout
  vocabulary = _setup(args)
  if args.show:
    return _show(args.show, out)
  if args.preview:
    path = getattr(vocabulary, "sentencepiece_model_file", "")
    if "://" in path:
      print(f"error: previewing tokenizes with {path}, which is out of reach offline; pass "
            "--vocabulary PATH, --demo DIR, or bind setup_vocabulary_and_tasks.vocabulary",
            file=sys.stderr)
      return 2
    try:
      return _preview(args.preview, args.n, args.split, out)
    except (FileNotFoundError, ValueError) as e:
      print(f"error: {e}", file=sys.stderr)
      return 1
  _list(args.filter, out)
  return 0
