"""`DualEncoderModel`: mT5's encoder as a dual encoder, for the retrieval targets (LAReQA, Mewsli-X).

One tower embeds queries and candidates alike (shared weights, as XTREME-R's retrieval
baselines): the encoder-decoder's token embedding and encoder, under the same parameter names
(`token_embedder/...`, `encoder/...`), so an encoder-decoder checkpoint of any phase initialises
it with its decoder left out (`params_from_encoder_decoder`); mean pooling over the real tokens;
an optional bias-free projection (`projection/kernel`, [embed, projection_dim]); L2
normalisation.

Training is an in-batch softmax over (query, candidate) pairs: row i's candidate is its
positive, every other candidate of the global batch a negative (a candidate whose tokens equal
row i's own, e.g. two questions about one sentence, is left out of row i's negatives). The
logits are cosine similarities times a scale, exp(`logit_scale`) capped at 100, where
`logit_scale` = log(1 / temperature) is a learnable scalar parameter or, with
`learnable_temperature=False`, the constant 1 / temperature.

Batches are SeqIO's unpacked encoder-decoder features: `encoder_input_tokens` holds the queries
(the task's inputs) and `decoder_target_tokens` the candidates (its targets).
"""
import math
from typing import Mapping, Optional

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp

from xfer_t5x.model import layers as L
from xfer_t5x.model import losses
from xfer_t5x.model.api import ModelParams, mean_pool
from xfer_t5x.model.config import T5Config
from xfer_t5x.model.network import Encoder
from xfer_t5x.runtime import flops

Batch = Mapping[str, jnp.ndarray]
MAX_LOGIT_SCALE = 100.0  # CLIP's cap on the learnable inverse temperature
SHARED = ("token_embedder", "encoder")  # what an encoder-decoder checkpoint gives


def l2_normalize(x, eps=1e-6):
  """x / |x|, with a zero gradient (not NaN) for an all-zero row (a padding row)."""
  squared = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(squared, eps * eps))


class DualEncoder(nn.Module):
  """Token embedding + encoder (+ projection) -> L2-normalised mean-pooled embeddings."""
  config: T5Config
  projection_dim: Optional[int] = None
  logit_scale_init: Optional[float] = None  # None: no parameter (a fixed temperature)

  def setup(self):
    cfg = self.config
    self.token_embedder = L.Embed(cfg.vocab_size, cfg.emb_dim, cfg.embedding_lookup,
                                  cfg.activation_dtype)
    self.encoder = Encoder(cfg, self.token_embedder)
    if self.projection_dim:
      self.projection = L.Dense(self.projection_dim, ("embed", "mlp"))
    if self.logit_scale_init is not None:
      init = self.logit_scale_init
      self.logit_scale = self.param(
          "logit_scale", L.param_with_axes(lambda *_: jnp.float32(init), ()), (), jnp.float32)

  def embed(self, tokens, enable_dropout=False, output_layer=None):
    """`[batch, dim]`: projected and L2-normalised at the top; at `output_layer=k` below the top,
    the mean-pooled hidden state after k layers (no projection: as the encoder-decoder's)."""
    states = self.encoder(tokens, None, not enable_dropout, output_layer)
    pooled = mean_pool(states, tokens)
    if output_layer is not None and output_layer < self.config.num_encoder_layers:
      return pooled
    if self.projection_dim:
      pooled = self.projection(pooled)
    return l2_normalize(pooled)

  def scale(self):
    return self.logit_scale if self.logit_scale_init is not None else None

  def __call__(self, queries, candidates, enable_dropout=False):
    return (self.embed(queries, enable_dropout), self.embed(candidates, enable_dropout),
            self.scale())


@gin.configurable
class DualEncoderModel(ModelParams):
  """The encoder of an mT5 size as a dual encoder (module docstring).

  Args:
    config: the architecture (its decoder fields are ignored).
    projection_dim: a projection after pooling (None: the embedding is the pooled state).
    temperature: the softmax temperature, or its initial value when learnable.
    learnable_temperature: learn log(1 / temperature) as the scalar parameter `logit_scale`.
    bidirectional: add the candidate -> query softmax to the loss (the two averaged).
  """

  supports_packing = False  # one (query, candidate) pair per row
  is_dual_encoder = True

  def __init__(self, config: T5Config, projection_dim: Optional[int] = None,
               temperature: float = 0.05, learnable_temperature: bool = True,
               bidirectional: bool = False):
    if config.vocab_size is None:
      raise ValueError("DualEncoderModel needs config.vocab_size (config.with_vocab(n))")
    if not temperature > 0:
      raise ValueError(f"DualEncoderModel.temperature={temperature!r}: give a positive number "
                       "(e.g. 0.05)")
    if projection_dim is not None and int(projection_dim) < 1:
      raise ValueError(f"DualEncoderModel.projection_dim={projection_dim!r}: give a positive "
                       "int, or None for no projection")
    self.config = config
    self.projection_dim = int(projection_dim) if projection_dim else None
    self.temperature = float(temperature)
    self.learnable_temperature = bool(learnable_temperature)
    self.bidirectional = bool(bidirectional)
    # The loss weights are one per pair, so this divides by the number of real pairs.
    self.loss_normalizing_factor = losses.NUM_REAL_TARGET_TOKENS
    self.module = DualEncoder(
        config, self.projection_dim,
        math.log(1.0 / self.temperature) if self.learnable_temperature else None)

  # --- parameters -------------------------------------------------------------------------
  def init_boxed(self, rng):
    dummy = jnp.ones((1, 8), jnp.int32)
    return self.module.init({"params": rng, "dropout": rng}, dummy, dummy)["params"]

  def params_from_encoder_decoder(self, encoder_decoder_params, rng, shardings=None):
    """This model's parameters: the token embedding and encoder of an encoder-decoder's
    parameters (any placement; the decoder is dropped), the projection and `logit_scale` fresh.
    With `shardings` (this model's) the fresh ones are made in place, sharded."""
    shared = {k: encoder_decoder_params[k] for k in SHARED}
    # The boxed tree's keys: unboxing outside jit under an active mesh would constrain.
    fresh_keys = [k for k in self._abstract() if k not in SHARED]

    def fresh(r):
      params = self.init(r)
      return {k: params[k] for k in fresh_keys}
    out_shardings = None if shardings is None else {k: shardings[k] for k in fresh_keys}
    return {**shared, **jax.jit(fresh, out_shardings=out_shardings)(rng)}

  def train_step_flops(self, batch_size, inputs_length, targets_length) -> float:
    return flops.dual_encoder_train_step_flops(self.config, batch_size, inputs_length,
                                               targets_length, self.projection_dim)

  # --- training ---------------------------------------------------------------------------
  def loss_weights(self, batch: Batch):
    """1 per real pair (query and candidate both non-empty), `[batch]`."""
    real = ((jnp.max(batch["encoder_input_tokens"], axis=-1) > 0)
            & (jnp.max(batch["decoder_target_tokens"], axis=-1) > 0))
    return real.astype(jnp.float32)

  def similarity_logits(self, params, batch: Batch, dropout_rng=None):
    """`[batch, batch]` float32: scaled cosine of query i and candidate j; padding rows and
    columns, and duplicates of row i's own candidate, are -inf-like (never a negative)."""
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else None
    queries, candidates, log_scale = self.module.apply(
        {"params": params}, batch["encoder_input_tokens"], batch["decoder_target_tokens"],
        enable_dropout=dropout_rng is not None, rngs=rngs)
    if log_scale is None:
      scale = jnp.float32(1.0 / self.temperature)
    else:
      scale = jnp.minimum(jnp.exp(log_scale), MAX_LOGIT_SCALE)
    logits = (queries @ candidates.T) * scale
    cand = batch["decoder_target_tokens"]
    same = jnp.all(cand[:, None, :] == cand[None, :, :], axis=-1)
    keep = (self.loss_weights(batch)[None, :] > 0) & (~same | jnp.eye(cand.shape[0], dtype=bool))
    keep = keep & (self.loss_weights(batch)[:, None] > 0)
    return jnp.where(keep, logits, -1e9)

  def loss_fn(self, params, batch: Batch, dropout_rng=None, normalizer=None):
    """(loss, metric sums), the encoder-decoder's metric names: `correct` counts the queries
    whose own candidate ranks first in the batch (in-batch retrieval accuracy)."""
    logits = self.similarity_logits(params, batch, dropout_rng)
    weights = self.loss_weights(batch)
    diagonal = jnp.arange(logits.shape[0])
    nll = -jax.nn.log_softmax(logits, axis=-1)[diagonal, diagonal]
    if self.bidirectional:
      # Column j's softmax over the queries whose candidate duplicates are masked alike.
      nll = 0.5 * (nll - jax.nn.log_softmax(logits, axis=0)[diagonal, diagonal])
    per_pair = nll * weights
    if normalizer is None:
      normalizer = losses.normalizing_factor(self.loss_normalizing_factor, weights)
    correct = (jnp.argmax(logits, axis=-1) == diagonal).astype(jnp.float32) * weights
    metrics = {"loss_sum": jnp.sum(per_pair), "z_loss_sum": jnp.float32(0.0),
               "correct": jnp.sum(correct), "weight_sum": jnp.sum(weights),
               "num_examples": jnp.sum(weights)}
    return jnp.sum(per_pair) / normalizer, metrics

  # --- evaluation -------------------------------------------------------------------------
  def embed_batch(self, params, encoder_input_tokens, output_layer: Optional[int] = None):
    """`[batch, dim]` float32 (DualEncoder.embed)."""
    return self.module.apply({"params": params}, encoder_input_tokens,
                             output_layer=output_layer, method=DualEncoder.embed)
