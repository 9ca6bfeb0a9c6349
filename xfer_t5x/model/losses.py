"""Cross-entropy with z-loss and label smoothing, normalised as T5X does it."""
from typing import Optional, Union

import jax
import jax.numpy as jnp

NUM_REAL_TARGET_TOKENS = "NUM_REAL_TARGET_TOKENS"


def cross_entropy_with_z_loss(logits, targets, weights, *, z_loss=1e-4, label_smoothing=0.0):
  """Per-token loss `[batch, length]` (weighted) and its z-loss part.

  loss = -sum_v soft_target_v * log_softmax(logits)_v + z_loss * logsumexp(logits)^2, minus the
  entropy of the smoothed target distribution (so a perfect prediction has zero loss, as T5X).
  """
  vocab = logits.shape[-1]
  logits = logits.astype(jnp.float32)
  confidence = 1.0 - label_smoothing
  low = label_smoothing / (vocab - 1)
  norm_const = -(confidence * jnp.log(confidence) + (vocab - 1) * low * jnp.log(low + 1e-20))
  norm_const = norm_const if label_smoothing else 0.0
  log_z = jax.nn.logsumexp(logits, axis=-1)
  log_p = logits - log_z[..., None]
  target_log_p = jnp.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]
  if label_smoothing:
    # sum_v soft_v log p_v with soft = low everywhere and `confidence` at the target.
    nll = -(low * jnp.sum(log_p, axis=-1) + (confidence - low) * target_log_p) - norm_const
  else:
    nll = -target_log_p
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
