"""The model's evaluation computations, jitted under the mesh: decode, score, embed, top-k.

`MeshRunner(model, params, partitioner, batch_size)` places the parameters on the mesh's
shardings (T5X's logical axis rules) and runs every computation batch by batch with the batch
sharded over 'batch' (the mesh's data axes) and the results replicated, so that every host ends
up with every row's output. Jitted functions are built once per shape-defining option and
reused across tasks and languages.
"""
from typing import Any, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from xfer_t5x.evaluation import batching
from xfer_t5x.evaluation import restore
from xfer_t5x.evaluation import search
from xfer_t5x.model import decoding
from xfer_t5x.runtime.partitioning import Partitioner


class MeshRunner:
  """Decode, score and embed with one model and its parameters on one mesh.

  Args:
    model: an `EncoderDecoderModel`.
    params: its parameters, anywhere (they are put on the partitioner's shardings).
    partitioner: mesh and logical axis rules.
    batch_size: global rows per step (rounded up to a multiple of the data-parallel size).
  """

  def __init__(self, model, params, partitioner: Partitioner, batch_size: int = 32):
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    self.model = model
    self.partitioner = partitioner
    self.batch_size = batching.global_batch_size(batch_size, partitioner)
    self.param_shardings = restore.param_shardings(model, partitioner)
    with partitioner.activate():
      self.params = jax.device_put(params, self.param_shardings)
    self._fns: Dict[Tuple, Any] = {}

  # --- jitted functions ----------------------------------------------------------------------
  def _jit(self, key, fn, extra_shardings=()):
    if key not in self._fns:
      jitted = jax.jit(fn, in_shardings=(self.partitioner.batch_sharding(), self.param_shardings,
                                         *extra_shardings),
                       out_shardings=batching.replicated(self.partitioner))
      part = self.partitioner

      def call(batch, *args):
        with part.activate():
          return jitted(batch, *args)
      self._fns[key] = call
    return self._fns[key]

  def _run(self, fn, arrays, *extra):
    return batching.run_batched(fn, arrays, self.batch_size, self.partitioner, self.params,
                                *extra)

  # --- computations --------------------------------------------------------------------------
  def decode(self, inputs: np.ndarray, max_decode_length: int, method: str = "greedy",
             num_beams: int = 4, alpha: float = 0.6) -> Tuple[np.ndarray, np.ndarray]:
    """(token ids `[n, max_decode_length]` with 0 after EOS, scores `[n]`) of `inputs [n, len]`.

    `method` is "greedy" or "beam" (T5X's beam search, `num_beams` beams, length penalty
    `alpha`; one beam is greedy)."""
    if method not in ("greedy", "beam"):
      raise ValueError(f"decode method {method!r}: choose 'greedy' or 'beam' (evaluation does "
                       "not sample)")
    kw = {"num_beams": int(num_beams), "alpha": float(alpha)} if method == "beam" else {}
    key = ("decode", method, int(max_decode_length), tuple(sorted(kw.items())))

    def fn(batch, params):
      return decoding.predict_batch(self.model, params, batch, method=method,
                                    max_decode_length=int(max_decode_length), **kw)
    return self._run(self._jit(key, fn), {"encoder_input_tokens": inputs})

  def score(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Log-likelihood `[n]` of each row's targets given its inputs (sum over target tokens)."""
    def fn(batch, params):
      return self.model.score_batch(params, batch)
    arrays = {"encoder_input_tokens": inputs, "decoder_target_tokens": targets,
              "decoder_input_tokens": batching.shift_right(targets)}
    return self._run(self._jit(("score",), fn), arrays)

  def logits(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Teacher-forced float32 logits `[n, target_len, vocab]` (tests check decoding margins)."""
    def fn(batch, params):
      return self.model.logits(params, batch).astype(jnp.float32)
    arrays = {"encoder_input_tokens": inputs, "decoder_target_tokens": targets,
              "decoder_input_tokens": batching.shift_right(targets)}
    return self._run(self._jit(("logits",), fn), arrays)

  def embed(self, tokens: np.ndarray, output_layer: Optional[int] = None) -> np.ndarray:
    """Mean-pooled encoder states `[n, embed]` after `output_layer` layers (None: the top)."""
    def fn(batch, params):
      return self.model.embed_batch(params, batch["encoder_input_tokens"], output_layer)
    key = ("embed", output_layer)
    return self._run(self._jit(key, fn), {"encoder_input_tokens": tokens})

  def embed_pool(self, tokens: np.ndarray, output_layer: Optional[int] = None,
                 block_size: int = search.DEFAULT_BLOCK) -> search.ShardedPool:
    """Unit-length embeddings of a candidate pool, left on the mesh with the rows split over
    every device (search.ShardedPool): batches go through the mesh as `embed`'s do, and their
    outputs are laid out device to device, never gathered onto a host."""
    n = int(tokens.shape[0])
    if n == 0:
      raise ValueError("embed_pool: an empty candidate pool")
    mesh = self.partitioner.mesh
    block, n_blocks, rows = search.ShardedPool.layout(n, mesh, block_size)
    key = ("embed_pool", output_layer)
    if key not in self._fns:
      jitted = jax.jit(
          lambda batch, params: search.unit_rows(self.model.embed_batch(
              params, batch["encoder_input_tokens"], output_layer)),
          in_shardings=(self.partitioner.batch_sharding(), self.param_shardings),
          out_shardings=search.row_sharding(mesh))
      self._fns[key] = jitted
    embed = self._fns[key]
    pieces = []
    with self.partitioner.activate():
      for start in range(0, n, self.batch_size):
        chunk = np.asarray(tokens[start:start + self.batch_size])
        if len(chunk) < self.batch_size:  # zero rows: embeddings past n, never returned
          chunk = np.concatenate([chunk, np.zeros((self.batch_size - len(chunk),)
                                                  + chunk.shape[1:], chunk.dtype)])
        pieces.append(embed(batching.to_mesh({"encoder_input_tokens": chunk},
                                             self.partitioner), self.params))
      array = search.assemble_rows(pieces, rows, mesh)
    return search.ShardedPool(array, n, block, n_blocks)

  def top_k(self, queries: np.ndarray, candidates,
            k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Cosine nearest neighbours: (indices `[n, k]` into candidates, best first; similarities).

    Exact, with the candidate pool (host embeddings, or `embed_pool`'s) sharded over every
    device of the mesh and scored in blocks (`search.top_k`): no device holds more than a
    [query block x candidate block] matrix."""
    return search.top_k(queries, candidates, k, self.partitioner.mesh)


def cut_at_eos(ids, eos_id: int = 1):
  """Token ids up to (not including) the first EOS, as a Python list."""
  ids = [int(t) for t in np.asarray(ids).reshape(-1)]
  if eos_id in ids:
    ids = ids[:ids.index(eos_id)]
  return [t for t in ids if t != 0]
