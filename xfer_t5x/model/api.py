"""`EncoderDecoderModel`: the mT5 network plus what training and evaluation ask of it.

Training calls `loss_fn`; evaluation calls `score_batch` (rank classification),
`embed_batch` (retrieval) and `xfer_t5x.model.decoding` (generation). Parameters are float32 and
carry T5X logical axis names (`logical_axes()`), which the partitioner maps onto the mesh.
"""
from typing import Mapping, Optional

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp

from xfer_t5x.model import losses
from xfer_t5x.model.config import T5Config
from xfer_t5x.model.network import Transformer
from xfer_t5x.runtime import flops

Batch = Mapping[str, jnp.ndarray]


def mean_pool(states, tokens):
  """Mean of `states [batch, length, embed]` over the real (non-zero) tokens, float32."""
  mask = (tokens > 0).astype(jnp.float32)[..., None]
  return jnp.sum(states.astype(jnp.float32) * mask, axis=1) / jnp.maximum(
      jnp.sum(mask, axis=1), 1.0)


class ModelParams:
  """What every model here shares: float32 parameters carrying T5X's logical axis names,
  initialised from `init_boxed(rng)` (the subclass's), their shapes traced once."""

  _abstract_boxed = None

  def init_boxed(self, rng):  # pragma: no cover - every model defines it
    raise NotImplementedError

  def init(self, rng):
    """Plain float32 parameters."""
    return nn.meta.unbox(self.init_boxed(rng))

  def _abstract(self):
    if self._abstract_boxed is None:
      self._abstract_boxed = jax.eval_shape(self.init_boxed, jax.random.PRNGKey(0))
    return self._abstract_boxed

  def abstract_params(self):
    """ShapeDtypeStructs of the parameters; nothing allocated."""
    return nn.meta.unbox(self._abstract())

  def logical_axes(self):
    """PartitionSpecs of logical axis names, one per parameter."""
    return nn.get_partition_spec(self._abstract())


@gin.configurable
class EncoderDecoderModel(ModelParams):
  """T5X's EncoderDecoderModel, reduced to what this library needs."""

  supports_packing = True  # SeqIO's packed encoder-decoder features

  def __init__(self, config: T5Config, z_loss: float = 1e-4, label_smoothing: float = 0.0,
               loss_normalizing_factor=None):
    if config.vocab_size is None:
      raise ValueError("EncoderDecoderModel needs config.vocab_size (config.with_vocab(n))")
    self.config = config
    self.module = Transformer(config)
    self.z_loss = z_loss
    self.label_smoothing = label_smoothing
    self.loss_normalizing_factor = loss_normalizing_factor

  # --- parameters -------------------------------------------------------------------------
  def _dummy(self, batch_size=1, inputs_len=8, targets_len=8):
    return (jnp.ones((batch_size, inputs_len), jnp.int32),
            jnp.ones((batch_size, targets_len), jnp.int32),
            jnp.ones((batch_size, targets_len), jnp.int32))

  def init_boxed(self, rng):
    """Parameters as Flax `LogicallyPartitioned` boxes (use under jit with out_shardings)."""
    return self.module.init({"params": rng, "dropout": rng}, *self._dummy())["params"]

  def train_step_flops(self, batch_size, inputs_length, targets_length) -> float:
    return flops.train_step_flops(self.config, batch_size, inputs_length, targets_length)

  # --- training ---------------------------------------------------------------------------
  def logits(self, params, batch: Batch, dropout_rng=None):
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else None
    return self.module.apply(
        {"params": params}, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
        batch["decoder_target_tokens"], batch.get("encoder_segment_ids"),
        batch.get("decoder_segment_ids"), enable_dropout=dropout_rng is not None, rngs=rngs)

  def loss_weights(self, batch: Batch):
    w = batch.get("decoder_loss_weights")
    if w is None:
      w = batch["decoder_target_tokens"] > 0
    return w.astype(jnp.float32)

  def loss_fn(self, params, batch: Batch, dropout_rng=None, normalizer=None):
    """(loss, metric sums). `normalizer` overrides the divisor (the trainer passes the global
    batch's so that microbatching never changes the normalisation)."""
    logits = self.logits(params, batch, dropout_rng)
    targets = batch["decoder_target_tokens"]
    weights = self.loss_weights(batch)
    per_tok, z = losses.cross_entropy_with_z_loss(
        logits, targets, weights, z_loss=self.z_loss, label_smoothing=self.label_smoothing)
    if normalizer is None:
      normalizer = losses.normalizing_factor(self.loss_normalizing_factor, weights)
    loss = jnp.sum(per_tok) / normalizer
    correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32) * weights
    metrics = {
        "loss_sum": jnp.sum(per_tok), "z_loss_sum": jnp.sum(z), "correct": jnp.sum(correct),
        "weight_sum": jnp.sum(weights), "num_examples": jnp.sum(
            (jnp.max(batch["decoder_target_tokens"], axis=-1) > 0).astype(jnp.float32)),
    }
    return loss, metrics

  # --- evaluation -------------------------------------------------------------------------
  def score_batch(self, params, batch: Batch):
    """Per-example log-likelihood of the targets (sum over target tokens, no z-loss), as
    T5X's score_batch; used for rank classification."""
    logits = self.logits(params, batch).astype(jnp.float32)
    targets = batch["decoder_target_tokens"]
    logp = jax.nn.log_softmax(logits, axis=-1)
    tok = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    return jnp.sum(tok * self.loss_weights(batch), axis=-1)

  def encode(self, params, encoder_input_tokens, output_layer: Optional[int] = None):
    return self.module.apply({"params": params}, encoder_input_tokens,
                             output_layer=output_layer, method=Transformer.encode)

  def embed_batch(self, params, encoder_input_tokens, output_layer: Optional[int] = None):
    """Mean-pooled encoder states over non-padding tokens, `[batch, embed]` float32."""
    return mean_pool(self.encode(params, encoder_input_tokens, output_layer),
                     encoder_input_tokens)
