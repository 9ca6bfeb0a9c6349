"""Decode or score free text with a checkpoint, partitioned like evaluation.

  infer("/tmp/run", ["xnli premise: ... hypothesis: ..."])               # decode
  infer("/tmp/run", ["question: ... context: ..."], targets=["Paris"])    # score the targets

Inputs are tokenized with the bound vocabulary (EOS appended), padded to the longest input
(rounded up to a multiple of 16) and run through the same MeshRunner as evaluation. Returns one
dict per input: inputs, prediction and score (decoding: the summed log-probability, or T5X's
length-normalised score for beam search), or inputs, target and score (scoring: the targets'
log-likelihood).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import gin

from xfer_t5x.evaluation import batching
from xfer_t5x.evaluation import restore
from xfer_t5x.evaluation.decode import INPUT_BUCKET
from xfer_t5x.evaluation.runner import MeshRunner, cut_at_eos
from xfer_t5x.runtime import trainer
from xfer_t5x.runtime import vocab_setup
from xfer_t5x.runtime.partitioning import Partitioner, make_partitioner
from xfer_t5x.tasks import study  # noqa: F401  (its configurables exist before gin locks)


def _tokenize(vocabulary, texts: Sequence[str], max_length: Optional[int], what: str):
  eos = vocabulary.eos_id if vocabulary.eos_id is not None else 1
  out = []
  for i, text in enumerate(texts):
    if not isinstance(text, str):
      raise ValueError(f"{what} {i} is {type(text).__name__}, not text")
    ids = list(vocabulary.encode(text))
    if max_length is not None and len(ids) + 1 > max_length:
      ids = ids[:max_length - 1]
    out.append(ids + [eos])
  return out


def task_texts(name: str, split: Optional[str] = None,
               max_examples: Optional[int] = None) -> Tuple[List[str], List[str]]:
  """(inputs, targets) of a registered task's split, as its template writes them.

  The study's tasks are registered with the run's vocabulary first; the task must use it
  (registry.VocabularyMismatchError otherwise), as `train` and `eval` require.
  """
  from xfer_t5x.evaluation import examples as examples_lib  # pylint: disable=g-import-not-at-top
  from xfer_t5x.tasks import registry  # pylint: disable=g-import-not-at-top
  vocabulary = vocab_setup.setup_vocabulary_and_tasks()
  registry.require_task(name, split)
  registry.check_vocabulary([name], vocabulary)
  rows = examples_lib.load_examples(name, examples_lib.eval_split(name, split),
                                    max_examples=max_examples)
  return ([examples_lib.text(r["inputs_pretokenized"]) for r in rows],
          [examples_lib.text(r["targets_pretokenized"]) for r in rows])


@gin.configurable(denylist=["inputs", "targets", "model", "params"])
def infer(model_dir: str = gin.REQUIRED,
          inputs: Sequence[str] = (),
          targets: Optional[Sequence[str]] = None,
          step: Optional[int] = None,
          *,
          model=None,
          params=None,
          partitioner: Optional[Partitioner] = None,
          vocabulary=None,
          batch_size: int = 32,
          method: str = "greedy",
          num_beams: int = 4,
          alpha: float = 0.6,
          max_decode_length: int = 64,
          max_input_length: Optional[int] = None) -> List[Dict]:
  """Decodes `inputs`, or scores `targets` given `inputs` when targets are given.

  Args:
    model_dir: the model dir holding checkpoint_<step>/ (unused when `params` are given).
    inputs: input texts, already in the task's template (e.g. "xnli premise: ... hypothesis:
      ...").
    targets: one target text per input to score instead of decoding.
    step: the checkpoint step (None: the latest).
    model, params, partitioner: as for `evaluator.evaluate`.
    vocabulary: default: the gin-bound one (`default_vocabulary.path`).
    batch_size: global rows per step.
    method, num_beams, alpha: decoding ("greedy" or "beam").
    max_decode_length: the most tokens generated per input (EOS included).
    max_input_length: trim longer inputs to this many tokens (EOS kept); None: no trimming.
  """
  inputs = list(inputs)
  if not inputs:
    raise ValueError("infer: no inputs given")
  if targets is not None and len(list(targets)) != len(inputs):
    raise ValueError(f"infer: {len(list(targets))} targets for {len(inputs)} inputs; give one "
                     "target per input to score, or none to decode")
  vocabulary = vocabulary or vocab_setup.setup_vocabulary_and_tasks(register=False)
  partitioner = partitioner or make_partitioner()
  model = model or trainer.build_model(vocabulary)
  if params is None:
    params, step = restore.restore_params(model_dir, step, model, partitioner)
  runner = MeshRunner(model, params, partitioner, batch_size)
  ids = _tokenize(vocabulary, inputs, max_input_length, "input")
  arr = batching.pad_tokens(ids, batching.bucket_length(ids, INPUT_BUCKET))
  if targets is not None:
    tids = _tokenize(vocabulary, list(targets), None, "target")
    tarr = batching.pad_tokens(tids, batching.bucket_length(tids, 8))
    scores = runner.score(arr, tarr)
    return [{"inputs": i, "target": t, "score": float(s)}
            for i, t, s in zip(inputs, targets, scores)]
  tokens, scores = runner.decode(arr, int(max_decode_length), method=method, num_beams=num_beams,
                                 alpha=alpha)
  eos = vocabulary.eos_id if vocabulary.eos_id is not None else 1
  return [{"inputs": i, "prediction": vocabulary.decode(cut_at_eos(t, eos)), "score": float(s)}
          for i, t, s in zip(inputs, tokens, scores)]
