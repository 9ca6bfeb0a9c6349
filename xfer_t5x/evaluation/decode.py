"""Generative evaluation (TaskInfo.mode "generate"): decode, detokenize, postprocess, metric.

The inputs are padded to the longest example (rounded up to a multiple of 16); the decode
length is the longest target in the eval data (rounded up to a multiple of 8), as T5X infers
it, unless feature lengths are given. Greedy search or T5X's beam search, under the mesh.
"""
from typing import Mapping, Optional

import seqio

from xfer_t5x.evaluation import batching
from xfer_t5x.evaluation import examples as examples_lib
from xfer_t5x.evaluation.results import TaskResult, compute_metrics
from xfer_t5x.evaluation.runner import MeshRunner, cut_at_eos

INPUT_BUCKET = 16
TARGET_BUCKET = 8


def lengths_for(examples, feature_lengths: Optional[Mapping[str, int]] = None):
  """(input length, target length) of the padded arrays for these examples."""
  inputs_len = batching.bucket_length([ex["inputs"] for ex in examples], INPUT_BUCKET)
  targets_len = batching.bucket_length([ex["targets"] for ex in examples], TARGET_BUCKET)
  if feature_lengths:
    inputs_len = int(feature_lengths.get("inputs", inputs_len))
    targets_len = int(feature_lengths.get("targets", targets_len))
  return inputs_len, targets_len


def evaluate_generate(runner: MeshRunner, name: str, split: str, examples,
                      vocabulary: seqio.Vocabulary, method: str = "greedy", num_beams: int = 4,
                      alpha: float = 0.6,
                      feature_lengths: Optional[Mapping[str, int]] = None) -> TaskResult:
  """Decodes every example of a generative task and scores the predictions."""
  task = seqio.get_mixture_or_task(name)
  inputs_len, targets_len = lengths_for(examples, feature_lengths)
  inputs = batching.pad_tokens([ex["inputs"] for ex in examples], inputs_len)
  tokens, scores = runner.decode(inputs, targets_len, method=method, num_beams=num_beams,
                                 alpha=alpha)
  eos = vocabulary.eos_id if vocabulary.eos_id is not None else 1
  texts = [vocabulary.decode(cut_at_eos(row, eos)) for row in tokens]
  targets, predictions, records = [], [], []
  for ex, text, score in zip(examples, texts, scores):
    target_text = examples_lib.text(ex.get("targets_pretokenized",
                                           vocabulary.decode(cut_at_eos(ex["targets"], eos))))
    targets.append(task.postprocess_fn(target_text, example=ex, is_target=True))
    predictions.append(task.postprocess_fn(text, example=ex, is_target=False))
    record = {
        "inputs": examples_lib.text(ex.get("inputs_pretokenized",
                                           vocabulary.decode(cut_at_eos(ex["inputs"], eos)))),
        "target": target_text, "prediction": text, "score": float(score)}
    if "id" in ex:
      record["id"] = examples_lib.text(ex["id"])
    records.append(record)
  metrics = compute_metrics(task, targets, predictions=predictions)
  info = examples_lib.info_of(name)
  return TaskResult(name, info, split, metrics, records)
