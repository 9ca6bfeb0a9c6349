"""Retrieval (TaskInfo.mode "retrieve"): embed queries and a candidate pool, rank by cosine.

Queries are the task's examples; the pool is the examples of its `candidates_task` (every
candidate's `id` names it). Both are embedded by mean-pooling the encoder's states over the
real tokens at one encoder layer (`embedding_layer`), L2-normalised, and compared by cosine
similarity under the mesh; the top `k` candidate ids per query, best first, are the predictions
the task's metrics read (XTREME-R: Tatoeba top-1 accuracy, LAReQA mAP@20, Mewsli-X MRR@20).

The layer: an int (hidden state after that many layers), "middle" (num_encoder_layers // 2),
"final" (the normed top), or None for the target's default: the middle layer for Tatoeba
(XTREME-R's baseline embeds with a QA model at a middle layer, CONTRACTS.md), the top for the
others and for a dual encoder (model.dual_encoder: projected and L2-normalised there). A pool
shared by several query tasks (LAReQA's) is embedded once per evaluation, onto the mesh.
"""
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np
import seqio

from xfer_t5x.evaluation import batching
from xfer_t5x.evaluation import examples as examples_lib
from xfer_t5x.evaluation.decode import INPUT_BUCKET
from xfer_t5x.evaluation.results import TaskResult, compute_metrics
from xfer_t5x.evaluation.runner import MeshRunner

MIDDLE_LAYER_TARGETS = ("tatoeba",)
Layer = Union[int, str, None]


def resolve_layer(embedding_layer: Layer, target: Optional[str], num_encoder_layers: int,
                  dual_encoder: bool = False) -> Optional[int]:
  """The encoder `output_layer` to embed at (None: the final, normed output). A dual encoder
  embeds at its top (its trained output) unless a layer is named."""
  if embedding_layer is None:
    embedding_layer = ("middle" if target in MIDDLE_LAYER_TARGETS and not dual_encoder
                       else "final")
  if embedding_layer == "middle":
    return num_encoder_layers // 2
  if embedding_layer in ("final", "top"):
    return None
  if isinstance(embedding_layer, str) or not 0 <= int(embedding_layer) <= num_encoder_layers:
    raise ValueError(f"embedding_layer={embedding_layer!r}: give an int in [0, "
                     f"{num_encoder_layers}], 'middle', 'final', or None for the target's "
                     "default")
  layer = int(embedding_layer)
  return None if layer == num_encoder_layers else layer


def _input_tokens(examples) -> np.ndarray:
  """The examples' input tokens, zero-padded to their bucketed longest length."""
  length = batching.bucket_length([ex["inputs"] for ex in examples], INPUT_BUCKET)
  return batching.pad_tokens([ex["inputs"] for ex in examples], length)


def embed_examples(runner: MeshRunner, examples, layer: Optional[int]) -> np.ndarray:
  """Mean-pooled encoder embeddings `[n, embed]` of the examples' inputs."""
  return np.asarray(runner.embed(_input_tokens(examples), layer), np.float32)


class CandidatePools:
  """Embedded candidate pools (search.ShardedPool, on the mesh), keyed by (pool task, split,
  layer, feature lengths)."""

  def __init__(self):
    self._pools: Dict[Tuple, Tuple[list, np.ndarray]] = {}

  def get(self, runner: MeshRunner, pool: str, layer: Optional[int],
          feature_lengths: Optional[Mapping[str, int]] = None):
    split = examples_lib.eval_split(pool)
    key = (pool, split, layer, tuple(sorted(dict(feature_lengths or {}).items())))
    if key not in self._pools:
      rows = examples_lib.load_examples(pool, split, feature_lengths)
      if "id" not in rows[0]:
        raise ValueError(f"candidate pool {pool} has no 'id' feature; retrieval predictions are "
                         "candidate ids")
      ids = [examples_lib.text(ex["id"]) for ex in rows]
      if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"candidate pool {pool} has the id {dup!r} more than once; ids must be "
                         "unique within a pool")
      # Left on the mesh, split over its devices: no host holds the pool's embeddings whole.
      self._pools[key] = (ids, runner.embed_pool(_input_tokens(rows), layer))
    return self._pools[key]


def evaluate_retrieve(runner: MeshRunner, name: str, split: str, examples,
                      vocabulary: seqio.Vocabulary, pools: CandidatePools,
                      embedding_layer: Layer = None, k: int = 20,
                      feature_lengths: Optional[Mapping[str, int]] = None) -> TaskResult:
  """Ranks the candidate pool for every query of a retrieval task and applies its metrics."""
  del vocabulary
  task = seqio.get_mixture_or_task(name)
  info = examples_lib.info_of(name)
  if not info.candidates_task:
    raise ValueError(f"retrieval task {name} names no candidates_task (its pool); register it "
                     "with add_task(..., mode='retrieve', candidates_task=...)")
  layer = resolve_layer(embedding_layer, info.target, runner.model.config.num_encoder_layers,
                        getattr(runner.model, "is_dual_encoder", False))
  ids, pool = pools.get(runner, info.candidates_task, layer, feature_lengths)
  queries = embed_examples(runner, examples, layer)
  indices, sims = runner.top_k(queries, pool, k)
  predictions = [[ids[j] for j in row] for row in indices]
  targets = [task.postprocess_fn(examples_lib.text(ex.get("targets_pretokenized", "")),
                                 example=ex, is_target=True) for ex in examples]
  metrics = compute_metrics(task, targets, predictions=predictions)
  records = []
  for ex, target, ranked, row_sims in zip(examples, targets, predictions, sims):
    record = {"inputs": examples_lib.text(ex.get("inputs_pretokenized", "")),
              "target": examples_lib.json_safe(target), "prediction": ranked,
              "score": float(row_sims[0]), "similarities": [float(s) for s in row_sims]}
    if "id" in ex:
      record["id"] = examples_lib.text(ex["id"])
    records.append(record)
  return TaskResult(name, info, split, metrics, records)
