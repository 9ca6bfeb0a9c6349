"""`xfer-t5x infer`: decode or score inputs with a checkpoint; prints one JSON object per input.

  xfer-t5x infer --gin_file models/mt5_base.gin --gin_file runs/infer.gin \\
    --gin.MODEL_DIR=/tmp/base_xnli \\
    --input "xnli premise: The cat sleeps. hypothesis: The cat always sleeps."
  xfer-t5x infer ... --input_file inputs.txt            # one input per line
  xfer-t5x infer ... --input_file pairs.jsonl --score   # {"inputs": ..., "targets": ...} per line
  xfer-t5x infer ... --input "q: ..." --target "Paris" --score
  xfer-t5x infer ... --task my_nli --split validation -n 20   # a task's examples, as T5X infer

Decoding prints {"inputs", "prediction", "score"}; `--score` prints {"inputs", "target",
"score"} with the targets' log-likelihood. `--output PATH` also writes them as JSON lines.
`--task NAME` takes the inputs (and targets) of a registered task's split instead, formatted by
the task's template; the task must use the run's vocabulary, as for `train` and `eval`.
"""
import json
import os
import sys
from typing import List, Optional, Tuple

from xfer_t5x import fileio
from xfer_t5x.runtime import gin_utils


def add_arguments(parser):
  parser.add_argument("--input", action="append", default=[], metavar="TEXT",
                      help="an input text (repeatable), in the task's template")
  parser.add_argument("--input_file", action="append", default=[], metavar="PATH",
                      help="a text file (one input per line) or a .jsonl file of objects with "
                      "'inputs' (and 'targets' for --score); repeatable")
  parser.add_argument("--target", action="append", default=[], metavar="TEXT",
                      help="with --score: the target of the --input at the same position")
  parser.add_argument("--score", action="store_true",
                      help="score the targets given the inputs instead of decoding")
  parser.add_argument("--output", metavar="PATH", help="also write the results as JSON lines")
  parser.add_argument("--task", metavar="NAME",
                      help="read the inputs (and targets) from this registered task's split")
  parser.add_argument("--split", default=None,
                      help="with --task: the split (default: the task's eval split)")
  parser.add_argument("-n", "--max_examples", type=int, default=None,
                      help="with --task: at most this many examples")
  gin_utils.add_gin_arguments(parser)


def read_inputs(texts: List[str], files: List[str], targets: List[str],
                score: bool) -> Tuple[List[str], Optional[List[str]]]:
  """(inputs, targets or None) from the command line and the files, in that order."""
  inputs = list(texts)
  outs: List[Optional[str]] = list(targets) + [None] * (len(texts) - len(targets))
  if len(targets) > len(texts):
    raise ValueError(f"{len(targets)} --target for {len(texts)} --input; give one per input")
  for path in files:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"--input_file {path}: no such file")
    with open(path, encoding="utf-8") as f:
      lines = [line.rstrip("\n") for line in f]
    jsonl = path.endswith(".jsonl") or path.endswith(".json")
    for n, line in enumerate(lines, start=1):
      if not line.strip():
        continue
      if not jsonl:
        inputs.append(line)
        outs.append(None)
        continue
      try:
        obj = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{n}: not JSON ({e.msg}); expected an object with 'inputs' "
                         "(and 'targets')") from e
      if not isinstance(obj, dict) or not isinstance(obj.get("inputs"), str):
        raise ValueError(f"{path}:{n}: expected an object with a string field 'inputs'")
      inputs.append(obj["inputs"])
      target = obj.get("targets", obj.get("target"))
      outs.append(target if isinstance(target, str) else None)
  if not inputs:
    raise ValueError("no inputs: give --input TEXT or --input_file PATH")
  if not score:
    return inputs, None
  missing = [i for i, t in enumerate(outs) if t is None]
  if missing:
    raise ValueError(f"--score needs a target for every input; input {missing[0]} "
                     f"({inputs[missing[0]][:60]!r}) has none (--target, or 'targets' in jsonl)")
  return inputs, [str(t) for t in outs]


def run(args) -> int:
  from xfer_t5x.evaluation import inference  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime import distributed  # pylint: disable=g-import-not-at-top
  if args.task and (args.input or args.input_file or args.target):
    print("xfer-t5x infer: --task reads the inputs from the task; drop --input, --input_file "
          "and --target, or drop --task", file=sys.stderr)
    return 2
  if not args.task:
    try:
      inputs, targets = read_inputs(args.input, args.input_file, args.target, args.score)
    except (ValueError, FileNotFoundError) as e:
      print(f"xfer-t5x infer: {e}", file=sys.stderr)
      return 2
  gin_utils.setup_gin_from_args(args)
  if args.task:
    inputs, gold = inference.task_texts(args.task, args.split, args.max_examples)
    targets = gold if args.score else None
  distributed.initialize()
  records = inference.infer(inputs=inputs, targets=targets)
  if args.task and not args.score:
    for record, target in zip(records, gold):
      record["target"] = target
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_index() == 0:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    print("\n".join(lines), flush=True)
    if args.output:
      from xfer_t5x.evaluation import summary  # pylint: disable=g-import-not-at-top
      fileio.atomic_write(summary.model_path(args.output), "".join(x + "\n" for x in lines))
  return 0
