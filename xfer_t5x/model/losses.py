"""Cross-entropy with z-loss and label smoothing, normalised as T5X does it."""
import functools
import math
from typing import Optional, Union

import jax
import jax.numpy as jnp

NUM_REAL_TARGET_TOKENS = "NUM_REAL_TARGET_TOKENS"


def _soft_target_terms(vocab, label_smoothing):
  """(weight of the target token, weight of every other token, entropy of that distribution)."""
  confidence = 1.0 - label_smoothing
  low = label_smoothing / (vocab - 1)
  if not label_smoothing:
    return confidence, low, 0.0
  entropy = -(confidence * math.log(confidence) + (vocab - 1) * low * math.log(low + 1e-20))
  return confidence, low, entropy


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _nll_and_log_z(logits, targets, label_smoothing):
  """Per token: the cross-entropy against the (smoothed) one-hot target, less that
  distribution's entropy, and log Z = logsumexp(logits). float32 logits `[..., vocab]`.

  The gradient is written out, as T5X's `cross_entropy_with_logits` does: d/dlogits =
  softmax * (g_nll + g_log_z) - g_nll * soft_target, one fused pass over the logits instead of
  the derived gradient's scatter into a zero `[..., vocab]` buffer and its separate softmax.
  """
  vocab = logits.shape[-1]
  confidence, low, entropy = _soft_target_terms(vocab, label_smoothing)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_log_p = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0] - log_z
  if label_smoothing:
    # sum_v soft_v log p_v with soft = low everywhere and `confidence` at the target.
    sum_log_p = jnp.sum(logits, axis=-1) - vocab * log_z
    nll = -(low * sum_log_p + (confidence - low) * target_log_p) - entropy
  else:
    nll = -target_log_p
  return nll, log_z


def _nll_and_log_z_fwd(logits, targets, label_smoothing):
  nll, log_z = _nll_and_log_z(logits, targets, label_smoothing)
  return (nll, log_z), (logits, targets, log_z)


def _nll_and_log_z_bwd(label_smoothing, residuals, grads):
  logits, targets, log_z = residuals
  g_nll, g_log_z = grads
  confidence, low, _ = _soft_target_terms(logits.shape[-1], label_smoothing)
  is_target = jnp.arange(logits.shape[-1]) == targets[..., None]
  soft = jnp.where(is_target, confidence, low)
  probs = jnp.exp(logits - log_z[..., None])
  d_logits = probs * (g_nll + g_log_z)[..., None] - g_nll[..., None] * soft
  return d_logits, None


_nll_and_log_z.defvjp(_nll_and_log_z_fwd, _nll_and_log_z_bwd)


def cross_entropy_with_z_loss(logits, targets, weights, *, z_loss=1e-4, label_smoothing=0.0):
  """Per-token loss `[batch, length]` (weighted) and its z-loss part.

  loss = -sum_v soft_target_v * log_softmax(logits)_v + z_loss * logsumexp(logits)^2, minus the
  entropy of the smoothed target distribution (so a perfect prediction has zero loss, as T5X).
  """
  nll, log_z = _nll_and_log_z(logits.astype(jnp.float32), targets, float(label_smoothing))
  z = z_loss * jnp.square(log_z)
  w = weights.astype(jnp.float32)
  return (nll + z) * w, z * w


def normalizing_factor(loss_normalizing_factor: Optional[Union[float, str]], weights):
  """The divisor of the summed loss: 1 (None: T5X's mT5 default), a constant, or the count of
  real target tokens in the (global) batch."""
  if loss_normalizing_factor is None:
    return jnp.float32(1.0)
  if loss_normalizing_factor == NUM_REAL_TARGET_TOKENS:
    return jnp.sum(weights.astype(jnp.float32))
  if isinstance(loss_normalizing_factor, str):
    raise ValueError(f"loss_normalizing_factor={loss_normalizing_factor!r}: use None, a number, "
                     f"or {NUM_REAL_TARGET_TOKENS!r}")
  return jnp.float32(loss_normalizing_factor)
