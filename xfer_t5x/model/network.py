"""The mT5 encoder-decoder (T5.1.1): Encoder, Decoder and Transformer modules.

Parameter tree (T5X's, so checkpoints map one to one):
  token_embedder/embedding                       [vocab, embed]
  encoder/relpos_bias/rel_embedding              [heads, relpos_buckets]
  encoder/layers_<i>/pre_attention_layer_norm/scale, attention/{query,key,value,out}/kernel,
                     pre_mlp_layer_norm/scale, mlp/{wi_0,wi_1,wo}/kernel
  encoder/encoder_norm/scale
  decoder/relpos_bias/rel_embedding
  decoder/layers_<i>/pre_self_attention_layer_norm, self_attention, pre_cross_attention_layer_norm,
                     encoder_decoder_attention, pre_mlp_layer_norm, mlp
  decoder/decoder_norm/scale, decoder/logits_dense/kernel [embed, vocab]
With `scan_layers=True` the layers are one module `layers` whose parameters carry a leading
`layers` axis at position 1 (T5X's param_scan_axis); `xfer_t5x.model.scan` converts.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from xfer_t5x.model import layers as L
from xfer_t5x.model.config import T5Config

_REMAT = {
    "full": None,
    "dots_saveable": jax.checkpoint_policies.checkpoint_dots,
}


def _dropout(cfg, x, deterministic):
  return nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))(x, deterministic=deterministic)


class EncoderLayer(nn.Module):
  config: T5Config
  scanned: bool = False  # under nn.scan: return (carry, None)

  @nn.compact
  def __call__(self, x, bias, deterministic):
    cfg = self.config
    dt = cfg.activation_dtype
    h = L.RMSNorm(cfg.layer_norm_epsilon, dt, name="pre_attention_layer_norm")(x)
    h = L.MultiHeadAttention(cfg.num_heads, cfg.head_dim, cfg.dropout_rate, dt, name="attention")(
        h, h, bias, deterministic=deterministic)
    x = x + _dropout(cfg, h, deterministic)
    h = L.RMSNorm(cfg.layer_norm_epsilon, dt, name="pre_mlp_layer_norm")(x)
    h = L.GatedMlp(cfg.mlp_dim, cfg.dropout_rate, dt, name="mlp")(h, deterministic=deterministic)
    x = x + _dropout(cfg, h, deterministic)
    x = L.constrain(x, L.BATCH_LENGTH_EMBED)
    return (x, None) if self.scanned else x


class DecoderLayer(nn.Module):
  config: T5Config
  scanned: bool = False

  @nn.compact
  def __call__(self, x, encoded, self_bias, cross_bias, deterministic, decode=False):
    cfg = self.config
    dt = cfg.activation_dtype
    attn = lambda name: L.MultiHeadAttention(cfg.num_heads, cfg.head_dim, cfg.dropout_rate, dt,
                                             name=name)
    h = L.RMSNorm(cfg.layer_norm_epsilon, dt, name="pre_self_attention_layer_norm")(x)
    h = attn("self_attention")(h, h, self_bias, deterministic=deterministic, decode=decode)
    x = x + _dropout(cfg, h, deterministic)
    h = L.RMSNorm(cfg.layer_norm_epsilon, dt, name="pre_cross_attention_layer_norm")(x)
    h = attn("encoder_decoder_attention")(h, encoded, cross_bias, deterministic=deterministic)
    x = x + _dropout(cfg, h, deterministic)
    h = L.RMSNorm(cfg.layer_norm_epsilon, dt, name="pre_mlp_layer_norm")(x)
    h = L.GatedMlp(cfg.mlp_dim, cfg.dropout_rate, dt, name="mlp")(h, deterministic=deterministic)
    x = x + _dropout(cfg, h, deterministic)
    x = L.constrain(x, L.BATCH_LENGTH_EMBED)
    return (x, None) if self.scanned else x


def _wrap_layer(cls, cfg, static_argnums):
  if cfg.remat_policy == "none":
    return cls
  return nn.remat(cls, policy=_REMAT[cfg.remat_policy], static_argnums=static_argnums)


def _run_layers(cfg, layer_cls, n, x, args, static_argnums, scope_name="layers"):
  """Applies n layers, unrolled (`layers_<i>`) or under nn.scan (`layers`, axis 1)."""
  layer_cls = _wrap_layer(layer_cls, cfg, static_argnums)
  if not cfg.scan_layers:
    for i in range(n):
      x = layer_cls(cfg, name=f"{scope_name}_{i}")(x, *args)
    return x
  scanned = nn.scan(
      layer_cls,
      variable_axes={"params": 1, "cache": 0},  # cache: layers first, as T5X
      split_rngs={"params": True, "dropout": True},
      in_axes=(nn.broadcast,) * len(args),
      length=n,
      metadata_params={nn.PARTITION_NAME: "layers"},
  )
  x, _ = scanned(cfg, scanned=True, name=scope_name)(x, *args)
  return x


class Encoder(nn.Module):
  config: T5Config
  shared_embedding: nn.Module

  @nn.compact
  def __call__(self, tokens, segment_ids=None, deterministic=True, output_layer=None):
    """Encoded `[batch, length, embed]`; `output_layer=k` returns the hidden state after k layers
    (no final norm; k = num_encoder_layers gives the normed final output)."""
    cfg = self.config
    x = self.shared_embedding(tokens).astype(cfg.activation_dtype)
    x = _dropout(cfg, x, deterministic)
    ok = tokens > 0
    mask = L.attention_mask(ok, ok, segment_ids, segment_ids)
    bias = L.RelativePositionBias(cfg.relative_attention_num_buckets,
                                  cfg.relative_attention_max_distance, cfg.num_heads, True,
                                  cfg.activation_dtype, name="relpos_bias")(tokens.shape[1],
                                                                            tokens.shape[1])
    bias = bias + L.mask_to_bias(mask, cfg.activation_dtype)
    n = cfg.num_encoder_layers
    if output_layer is not None and output_layer < n:
      if cfg.scan_layers:
        raise ValueError("encoder output_layer below the top needs scan_layers=False")
      for i in range(output_layer):
        x = EncoderLayer(cfg, name=f"layers_{i}")(x, bias, deterministic)
      return x
    x = _run_layers(cfg, EncoderLayer, n, x, (bias, deterministic), static_argnums=(3,))
    x = L.RMSNorm(cfg.layer_norm_epsilon, cfg.activation_dtype, name="encoder_norm")(x)
    return _dropout(cfg, x, deterministic)


class Decoder(nn.Module):
  config: T5Config
  shared_embedding: nn.Module

  @nn.compact
  def __call__(self, encoded, encoder_tokens, decoder_input_tokens, decoder_target_tokens=None,
               encoder_segment_ids=None, decoder_segment_ids=None, deterministic=True,
               decode=False, max_decode_length=None):
    cfg = self.config
    dt = cfg.activation_dtype
    x = self.shared_embedding(decoder_input_tokens).astype(dt)
    x = _dropout(cfg, x, deterministic)
    relpos = L.RelativePositionBias(cfg.relative_attention_num_buckets,
                                    cfg.relative_attention_max_distance, cfg.num_heads, False, dt,
                                    name="relpos_bias")
    enc_ok = encoder_tokens > 0
    if decode:
      # One token per call; the step counter lives beside the layers' key/value caches.
      qlen = decoder_input_tokens.shape[1]
      initialized = self.has_variable("cache", "decode_step")
      step = self.variable("cache", "decode_step", lambda: jnp.array(0, jnp.int32))
      max_len = max_decode_length or qlen
      pos = step.value
      if initialized:
        step.value = pos + qlen
      self_bias = relpos(qlen, max_len, query_offset=pos)
      key_ok = jnp.arange(max_len)[None, :] <= pos + jnp.arange(qlen)[:, None]  # [q, k]
      self_bias = self_bias + L.mask_to_bias(key_ok[None, None], dt)
      dec_ok = jnp.ones(decoder_input_tokens.shape, jnp.bool_)
      cross_mask = L.attention_mask(dec_ok, enc_ok)
    else:
      qlen = decoder_input_tokens.shape[1]
      dec_ok = (decoder_target_tokens if decoder_target_tokens is not None
                else decoder_input_tokens) > 0
      if decoder_target_tokens is None:
        dec_ok = jnp.ones_like(dec_ok)
      mask = L.attention_mask(dec_ok, dec_ok, decoder_segment_ids, decoder_segment_ids,
                              causal=True)
      self_bias = relpos(qlen, qlen) + L.mask_to_bias(mask, dt)
      cross_mask = L.attention_mask(dec_ok, enc_ok, decoder_segment_ids, encoder_segment_ids)
    cross_bias = L.mask_to_bias(cross_mask, dt)
    x = _run_layers(cfg, DecoderLayer, cfg.num_decoder_layers, x,
                    (encoded, self_bias, cross_bias, deterministic, decode),
                    static_argnums=(5, 6))
    x = L.RMSNorm(cfg.layer_norm_epsilon, dt, name="decoder_norm")(x)
    x = _dropout(cfg, x, deterministic)
    logits = L.Dense(cfg.vocab_size, ("embed", "vocab"),
                     nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal"),
                     jnp.float32, name="logits_dense")(x)
    return L.constrain(logits, ("batch", "length", "vocab"))


class Transformer(nn.Module):
  """mT5: shared input embedding, encoder, decoder with an untied output layer.

  Methods `encode`, `decode` and `__call__` (teacher-forced logits, float32).
  """
  config: T5Config

  def setup(self):
    cfg = self.config
    if cfg.vocab_size is None:
      raise ValueError("T5Config.vocab_size is unset: call config.with_vocab(vocabulary.vocab_size)")
    self.token_embedder = L.Embed(cfg.vocab_size, cfg.emb_dim, cfg.embedding_lookup,
                                  cfg.activation_dtype)
    self.encoder = Encoder(cfg, self.token_embedder)
    self.decoder = Decoder(cfg, self.token_embedder)

  def encode(self, encoder_input_tokens, encoder_segment_ids=None, enable_dropout=False,
             output_layer=None):
    return self.encoder(encoder_input_tokens, encoder_segment_ids, not enable_dropout,
                        output_layer)

  def decode(self, encoded, encoder_input_tokens, decoder_input_tokens,
             decoder_target_tokens=None, encoder_segment_ids=None, decoder_segment_ids=None,
             enable_dropout=False, decode=False, max_decode_length=None):
    return self.decoder(encoded, encoder_input_tokens, decoder_input_tokens,
                        decoder_target_tokens, encoder_segment_ids, decoder_segment_ids,
                        not enable_dropout, decode, max_decode_length)

  def __call__(self, encoder_input_tokens, decoder_input_tokens, decoder_target_tokens,
               encoder_segment_ids=None, decoder_segment_ids=None, enable_dropout=False,
               encoder_positions=None, decoder_positions=None):
    """Teacher-forced logits `[batch, target_length, vocab]` in float32.

    Positions are accepted for SeqIO's packed features; relative attention needs only the
    segment ids (packed sequences never attend across segments).
    """
    del encoder_positions, decoder_positions
    encoded = self.encode(encoder_input_tokens, encoder_segment_ids, enable_dropout)
    return self.decode(encoded, encoder_input_tokens, decoder_input_tokens,
                       decoder_target_tokens, encoder_segment_ids, decoder_segment_ids,
                       enable_dropout)
