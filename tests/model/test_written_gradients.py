"""The gradients written out for speed (layers.dense_matmul, losses' cross-entropy) equal the
ones JAX derives from the plain formulas: per function, and through the whole model."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.model.model_helpers import copy_batch
from xfer_t5x.model import layers, losses

TOL = dict(rtol=2e-5, atol=2e-6)


def plain_matmul(x, kernel):
  return jnp.einsum("...i,io->...o", x, kernel)


def plain_nll_and_log_z(logits, targets, label_smoothing):
  """The textbook formula, differentiated by JAX: -sum_v soft_v log_softmax_v less the soft
  target's entropy, and logsumexp."""
  vocab = logits.shape[-1]
  confidence = 1.0 - label_smoothing
  low = label_smoothing / (vocab - 1)
  soft = jnp.where(jnp.arange(vocab) == targets[..., None], confidence, low)
  entropy = 0.0
  if label_smoothing:
    entropy = -(confidence * np.log(confidence) + (vocab - 1) * low * np.log(low + 1e-20))
  nll = -jnp.sum(soft * jax.nn.log_softmax(logits, axis=-1), axis=-1) - entropy
  return nll, jax.nn.logsumexp(logits, axis=-1)


@pytest.mark.parametrize("shape", [(6, 7), (3, 5, 7)])
def test_dense_matmul_gradients_equal_the_derived_ones(shape):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(7, 4)), jnp.float32)
  probe = jnp.asarray(rng.normal(size=shape[:-1] + (4,)), jnp.float32)
  loss = lambda f: (lambda a, b: jnp.sum(jnp.sin(f(a, b)) * probe))
  written = jax.grad(loss(layers.dense_matmul), argnums=(0, 1))(x, kernel)
  derived = jax.grad(loss(plain_matmul), argnums=(0, 1))(x, kernel)
  np.testing.assert_allclose(layers.dense_matmul(x, kernel), plain_matmul(x, kernel), **TOL)
  for w, d in zip(written, derived):
    assert w.shape == d.shape and w.dtype == d.dtype
    np.testing.assert_allclose(w, d, **TOL)


def test_dense_matmul_keeps_bfloat16_gradients_in_bfloat16():
  x = jnp.ones((2, 3, 8), jnp.bfloat16)
  kernel = jnp.ones((8, 5), jnp.bfloat16)
  dx, dk = jax.grad(lambda a, b: jnp.sum(layers.dense_matmul(a, b).astype(jnp.float32)),
                    argnums=(0, 1))(x, kernel)
  assert dx.dtype == jnp.bfloat16 and dk.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(dk, np.float32), 6.0)  # 2*3 rows of ones


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_value_and_gradient_equal_the_derived_ones(label_smoothing):
  rng = np.random.default_rng(1)
  logits = jnp.asarray(rng.normal(size=(3, 5, 11)) * 3, jnp.float32)
  targets = jnp.asarray(rng.integers(0, 11, size=(3, 5)), jnp.int32)
  weights = jnp.asarray(rng.integers(0, 2, size=(3, 5)), jnp.float32)

  def total(fn):
    def f(lg):
      nll, log_z = fn(lg, targets, label_smoothing)
      return jnp.sum((nll + 1e-2 * jnp.square(log_z)) * weights)
    return jax.value_and_grad(f)

  value, grad = total(losses._nll_and_log_z)(logits)  # pylint: disable=protected-access
  ref_value, ref_grad = total(plain_nll_and_log_z)(logits)
  np.testing.assert_allclose(value, ref_value, **TOL)
  np.testing.assert_allclose(grad, ref_grad, **TOL)
  assert float(jnp.max(jnp.abs(grad))) > 0.01  # the check compares real gradients


def test_the_whole_models_loss_and_gradients_equal_the_derived_ones(random_model, monkeypatch):
  model, params = random_model
  batch = copy_batch(np.random.default_rng(2), 4)
  grad = lambda: jax.jit(jax.value_and_grad(lambda p: model.loss_fn(p, batch)[0]))(params)
  loss, grads = grad()
  monkeypatch.setattr(layers, "dense_matmul", plain_matmul)
  monkeypatch.setattr(losses, "_nll_and_log_z", plain_nll_and_log_z)
  ref_loss, ref_grads = grad()
  np.testing.assert_allclose(loss, ref_loss, **TOL)
  for (path, g), r in zip(jax.tree_util.tree_leaves_with_path(grads),
                          jax.tree_util.tree_leaves(ref_grads)):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))
