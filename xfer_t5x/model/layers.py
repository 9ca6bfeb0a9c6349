"""Building blocks of the T5.1.1 / mT5 network, every parameter named with T5X's logical axes.

Parameter names and shapes follow T5X's `examples/t5/network.py` layout exactly (kernels are
stored 2-D, e.g. query `[embed, joined_kv]`), so T5X checkpoints map one to one.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

param_with_axes = nn.with_logical_partitioning
constrain = nn.with_logical_constraint

# Activations' logical axes (T5X's names).
BATCH_LENGTH_EMBED = ("batch", "length", "embed")
BATCH_LENGTH_MLP = ("batch", "length", "mlp")
BATCH_LENGTH_HEADS_KV = ("batch", "length", "heads", "kv")


def _normal(stddev):
  return nn.initializers.normal(stddev=stddev)


class RMSNorm(nn.Module):
  """T5's layer norm: no mean subtraction, no bias, computed in float32."""
  epsilon: float = 1e-6
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    features = x.shape[-1]
    scale = self.param("scale", param_with_axes(nn.initializers.ones, ("embed",)), (features,),
                       jnp.float32)
    x32 = jnp.asarray(x, jnp.float32)
    var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    y = x32 * jax.lax.rsqrt(var + self.epsilon)
    return jnp.asarray(y * scale, self.dtype)


@jax.custom_vjp
def dense_matmul(x, kernel):
  """`x @ kernel` over x's last axis. Its backward is written out because XLA's CPU backend
  lays out the weight gradient of the derived one (`dot_general`'s transpose rule) with a
  transposed copy of the activations' gradient fused into an elementwise loop: as written here,
  both gradients are plain dots over the activations' layout (the MLP's gradient 172 -> 121 ms
  on 2 cores in one invocation, benchmarks/README.md). Same values, on any backend."""
  return jnp.einsum("...i,io->...o", x, kernel)


def _dense_matmul_fwd(x, kernel):
  return dense_matmul(x, kernel), (x, kernel)


def _dense_matmul_bwd(residuals, dy):
  x, kernel = residuals
  dx = jnp.einsum("...o,io->...i", dy, kernel)
  dkernel = jnp.einsum("...i,...o->io", x, dy)
  return dx, dkernel


dense_matmul.defvjp(_dense_matmul_fwd, _dense_matmul_bwd)


class Dense(nn.Module):
  """A bias-free dense layer whose float32 kernel is `[in, out]` with the given logical axes."""
  features: int
  kernel_axes: tuple
  kernel_init: nn.initializers.Initializer = nn.initializers.variance_scaling(
      1.0, "fan_in", "truncated_normal")
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", param_with_axes(self.kernel_init, self.kernel_axes),
                        (x.shape[-1], self.features), jnp.float32)
    x = jnp.asarray(x, self.dtype)
    kernel = jnp.asarray(kernel, self.dtype)
    return dense_matmul(x, kernel)


class Embed(nn.Module):
  """The shared token embedding `[vocab, embed]`; gather or one-hot-matmul lookup (gin choice)."""
  num_embeddings: int
  features: int
  lookup: str = "gather"
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.embedding = self.param(
        "embedding", param_with_axes(_normal(1.0), ("vocab", "embed")),
        (self.num_embeddings, self.features), jnp.float32)

  def __call__(self, tokens):
    table = jnp.asarray(self.embedding, self.dtype)
    if self.lookup == "one_hot":
      one_hot = jax.nn.one_hot(tokens, self.num_embeddings, dtype=self.dtype)
      one_hot = constrain(one_hot, ("batch", "length", "vocab"))
      out = one_hot @ table
    else:
      out = jnp.take(table, tokens, axis=0)
    return constrain(out, BATCH_LENGTH_EMBED)


def relative_position_bucket(relative_position, bidirectional, num_buckets, max_distance):
  """T5's bucketing of `memory_position - query_position` (exact below num_buckets/2, log above)."""
  ret = 0
  n = -relative_position
  if bidirectional:
    num_buckets //= 2
    ret += (n < 0).astype(np.int32) * num_buckets
    n = np.abs(n)
  else:
    n = np.maximum(n, 0)
  max_exact = num_buckets // 2
  is_small = n < max_exact
  val_if_large = max_exact + (
      np.log(n.astype(np.float32) / max_exact + np.finfo(np.float32).eps) /
      np.log(max_distance / max_exact) * (num_buckets - max_exact)).astype(np.int32)
  val_if_large = np.minimum(val_if_large, num_buckets - 1)
  return ret + np.where(is_small, n, val_if_large)


class RelativePositionBias(nn.Module):
  """One `[heads, buckets]` table per stack, shared by its layers (T5X's `relpos_bias`)."""
  num_buckets: int
  max_distance: int
  num_heads: int
  bidirectional: bool
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, qlen, klen, query_offset=None):
    """Bias `[1, heads, qlen, klen]`; `query_offset` (traced) shifts query positions when decoding."""
    table = self.param(
        "rel_embedding",
        param_with_axes(nn.initializers.variance_scaling(1.0, "fan_avg", "uniform"),
                        ("heads", "relpos_buckets")),
        (self.num_heads, self.num_buckets), jnp.float32)
    if query_offset is None:
      rel = np.arange(klen)[None, :] - np.arange(qlen)[:, None]
      buckets = jnp.asarray(relative_position_bucket(
          rel, self.bidirectional, self.num_buckets, self.max_distance))
    else:
      # Decoding one step at a time: all possible relative positions are precomputed in numpy,
      # then the row of the current query position is selected.
      rel_all = np.arange(klen)[None, :] - np.arange(klen)[:, None]
      all_buckets = jnp.asarray(relative_position_bucket(
          rel_all, self.bidirectional, self.num_buckets, self.max_distance))
      buckets = jax.lax.dynamic_slice_in_dim(all_buckets, query_offset, qlen, axis=0)
    bias = jnp.take(jnp.asarray(table, self.dtype), buckets, axis=1)  # [heads, q, k]
    return bias[None]


def attention_mask(query_ok, key_ok, query_segments=None, key_segments=None, causal=False):
  """Boolean mask `[batch, 1, q, k]` from validity, packing segments and causality."""
  mask = query_ok[:, :, None] & key_ok[:, None, :]
  if query_segments is not None:
    mask &= query_segments[:, :, None] == key_segments[:, None, :]
  if causal:
    q, k = query_ok.shape[1], key_ok.shape[1]
    mask &= jnp.tril(jnp.ones((q, k), jnp.bool_))[None]
  return mask[:, None]


def mask_to_bias(mask, dtype):
  return jnp.where(mask, 0.0, -1e10).astype(dtype)


class MultiHeadAttention(nn.Module):
  """T5 attention: no scaling of logits (folded into the query init), softmax in float32.

  With `decode=True` the keys and values of earlier steps live in the 'cache' collection
  (`cached_key`, `cached_value` `[batch, max_length, heads, kv]`, and `cache_index`).
  """
  num_heads: int
  head_dim: int
  dropout_rate: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs_q, inputs_kv, bias, *, deterministic, decode=False):
    joined = self.num_heads * self.head_dim
    emb = inputs_q.shape[-1]
    dense = functools.partial(Dense, dtype=self.dtype)
    q_init = nn.initializers.variance_scaling(1.0 / self.head_dim, "fan_in", "normal")
    kv_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal")
    query = dense(joined, ("embed", "joined_kv"), q_init, name="query")(inputs_q)
    key = dense(joined, ("embed", "joined_kv"), kv_init, name="key")(inputs_kv)
    value = dense(joined, ("embed", "joined_kv"), kv_init, name="value")(inputs_kv)
    split = lambda x: constrain(x.reshape(x.shape[:2] + (self.num_heads, self.head_dim)),
                                BATCH_LENGTH_HEADS_KV)
    query, key, value = split(query), split(key), split(value)

    if decode:
      is_initialized = self.has_variable("cache", "cached_key")
      cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
      cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
      cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
      if is_initialized:
        idx = cache_index.value
        key = jax.lax.dynamic_update_slice_in_dim(cached_key.value, key, idx, axis=1)
        value = jax.lax.dynamic_update_slice_in_dim(cached_value.value, value, idx, axis=1)
        cached_key.value, cached_value.value = key, value
        cache_index.value = idx + inputs_q.shape[1]

    logits = jnp.einsum("bqhd,bkhd->bhqk", query, key, preferred_element_type=jnp.float32)
    if bias is not None:
      logits = logits + jnp.asarray(bias, jnp.float32)
    weights = jax.nn.softmax(logits, axis=-1)
    if not deterministic and self.dropout_rate > 0:
      keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.dropout_rate, weights.shape)
      weights = weights * keep / (1.0 - self.dropout_rate)
    weights = weights.astype(self.dtype)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, value)
    out = out.reshape(out.shape[:2] + (joined,))
    out = dense(emb, ("joined_kv", "embed"), kv_init, name="out")(out)
    return constrain(out, BATCH_LENGTH_EMBED)


class GatedMlp(nn.Module):
  """T5.1.1's gated-GELU MLP: wo(gelu(wi_0 x) * wi_1 x), GELU in its tanh form."""
  mlp_dim: int
  dropout_rate: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, deterministic):
    init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
    dense = functools.partial(Dense, dtype=self.dtype, kernel_init=init)
    gate = dense(self.mlp_dim, ("embed", "mlp"), name="wi_0")(x)
    lin = dense(self.mlp_dim, ("embed", "mlp"), name="wi_1")(x)
    h = nn.gelu(gate, approximate=True) * lin
    h = constrain(h, BATCH_LENGTH_MLP)
    h = nn.Dropout(self.dropout_rate, broadcast_dims=(-2,))(h, deterministic=deterministic)
    return dense(x.shape[-1], ("mlp", "embed"), name="wo")(h)
