"""The jit'd train step: gradient accumulation over microbatches, Adafactor, metrics.

The loss of every microbatch is divided by the normaliser of the whole global batch, so k
microbatches give the same update as one full batch.
"""
import functools

import jax
import jax.numpy as jnp
import optax

from xfer_t5x.model import losses
from xfer_t5x.runtime.train_state import TrainState, state_shardings


def _split_microbatches(batch, k):
  """Strided split: microbatch i takes rows i, i+k, ... so each keeps its share on every
  data-parallel device."""
  def split(x):
    b = x.shape[0]
    if b % k:
      raise ValueError(f"batch size {b} is not divisible by num_microbatches={k}")
    return jnp.swapaxes(x.reshape((b // k, k) + x.shape[1:]), 0, 1)
  return jax.tree_util.tree_map(split, batch)


def train_step(state: TrainState, batch, *, model, optimizer, num_microbatches=1,
               dropout_seed=0, use_dropout=True):
  """One optimizer step. Returns (new state, metric sums)."""
  dropout_rng = None
  if use_dropout and model.config.dropout_rate > 0:
    dropout_rng = jax.random.fold_in(jax.random.PRNGKey(dropout_seed), state.step)
  normalizer = losses.normalizing_factor(model.loss_normalizing_factor, model.loss_weights(batch))
  grad_fn = jax.value_and_grad(
      lambda p, b, r: model.loss_fn(p, b, r, normalizer=normalizer), has_aux=True)

  if num_microbatches <= 1:
    (loss, metrics), grads = grad_fn(state.params, batch, dropout_rng)
  else:
    micro = _split_microbatches(batch, num_microbatches)

    def body(i, carry):
      grads, loss, metrics = carry
      mb = jax.tree_util.tree_map(lambda x: x[i], micro)
      rng = None if dropout_rng is None else jax.random.fold_in(dropout_rng, i)
      (l, m), g = grad_fn(state.params, mb, rng)
      add = lambda a, b: jax.tree_util.tree_map(jnp.add, a, b)
      return add(grads, g), loss + l, add(metrics, m)

    zeros = jax.tree_util.tree_map(jnp.zeros_like, state.params)
    _, m_shape = jax.eval_shape(lambda: model.loss_fn(
        state.params, jax.tree_util.tree_map(lambda x: x[0], micro), None, normalizer))
    m0 = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), m_shape)
    grads, loss, metrics = jax.lax.fori_loop(0, num_microbatches, body,
                                             (zeros, jnp.float32(0.0), m0))

  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(metrics, loss=loss, grad_norm=optax.global_norm(grads),
                 learning_rate=optimizer.learning_rate(state.step))
  return TrainState(state.step + 1, params, opt_state), metrics


def make_train_step(model, optimizer, partitioner, num_microbatches=1, dropout_seed=0,
                    use_dropout=True, donate=True):
  """The jit'd step with the state sharded by its logical axes, the batch over 'batch', and
  the old state donated."""
  shardings = state_shardings(model, optimizer, partitioner)
  fn = functools.partial(train_step, model=model, optimizer=optimizer,
                         num_microbatches=num_microbatches, dropout_seed=dropout_seed,
                         use_dropout=use_dropout)
  jitted = jax.jit(fn, in_shardings=(shardings, partitioner.batch_sharding()),
                   out_shardings=(shardings, partitioner.replicated()),
                   donate_argnums=(0,) if donate else ())

  def step(state, batch):
    with partitioner.activate():
      return jitted(state, batch)
  step.jitted = jitted
  return step
