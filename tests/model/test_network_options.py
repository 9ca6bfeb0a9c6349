"""The network's gin choices: scan over layers, rematerialisation, dropout, embedding lookup and
activation dtype. Each must leave the function the model computes unchanged (or, for dropout,
change it only when asked)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.model.model_helpers import (assert_clear_margins, copy_batch, jitted,
                                       tiny_config)
from xfer_t5x.model import decoding, scan
from xfer_t5x.model.api import EncoderDecoderModel

TOL = dict(rtol=1e-5, atol=1e-6)


def assert_trees_close(a, b, **tol):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(x, y, err_msg=jax.tree_util.keystr(path), **(tol or TOL))


def stack(params):
  """Unrolled parameters -> the scanned layout (xfer_t5x.model.scan)."""
  return scan.unflatten(scan.scan_params(scan.flatten(params)))


def unstack(params):
  return scan.unflatten(scan.unscan_params(scan.flatten(params)))


def loss_and_grads(model, params, batch, dropout_rng=None):
  fn = lambda p: model.loss_fn(p, batch, dropout_rng)[0]
  return jax.jit(jax.value_and_grad(fn))(params)


# --- scan over layers --------------------------------------------------------------------------
def test_stack_unstack_round_trip(random_model):
  _, params = random_model
  stacked = stack(params)
  assert "layers" in stacked["encoder"] and "layers_0" not in stacked["decoder"]
  jax.tree_util.tree_map(np.testing.assert_array_equal, unstack(stacked), params)
  scanned_model = EncoderDecoderModel(tiny_config(scan_layers=True))
  shapes = lambda t: jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), t)
  assert shapes(stacked) == shapes(scanned_model.abstract_params())


def test_scanned_layers_give_the_same_logits(random_model):
  model, params = random_model
  batch = copy_batch(np.random.default_rng(0), 4)
  scanned = EncoderDecoderModel(tiny_config(scan_layers=True))
  expected = jitted(model, "logits")(params, batch)
  np.testing.assert_allclose(jitted(scanned, "logits")(stack(params), batch),
                             expected, **TOL)


@pytest.mark.slow
def test_scanned_layers_decode_the_same(trained):
  """The scanned decoder's cache has its batch at axis 1: greedy and beam search must agree."""
  model, params = trained
  scanned = EncoderDecoderModel(tiny_config(scan_layers=True))
  stacked = stack(params)
  inputs = copy_batch(np.random.default_rng(123), 6)["encoder_input_tokens"]
  greedy = jax.jit(functools.partial(decoding.greedy_decode, max_decode_length=8),
                   static_argnums=0)
  tokens, _ = greedy(model, params, inputs)
  assert_clear_margins(model, params, inputs, tokens)
  np.testing.assert_array_equal(greedy(scanned, stacked, inputs)[0], tokens)
  beam = jax.jit(functools.partial(decoding.beam_search, max_decode_length=8, num_beams=2),
                 static_argnums=0)
  b_tokens, b_scores = beam(model, params, inputs)
  s_tokens, s_scores = beam(scanned, stacked, inputs)
  np.testing.assert_array_equal(s_tokens, b_tokens)
  np.testing.assert_allclose(s_scores, b_scores, rtol=1e-5, atol=1e-5)


# --- rematerialisation -------------------------------------------------------------------------
@pytest.mark.parametrize("policy,scan_layers", [("full", False), ("dots_saveable", False),
                                                ("full", True)])
def test_remat_policies_keep_loss_and_gradients(random_model, policy, scan_layers):
  model, params = random_model
  batch = copy_batch(np.random.default_rng(3), 4)
  loss, grads = loss_and_grads(model, params, batch)
  remat = EncoderDecoderModel(tiny_config(remat_policy=policy, scan_layers=scan_layers))
  restack = stack if scan_layers else (lambda t: t)
  r_loss, r_grads = loss_and_grads(remat, restack(params), batch)
  np.testing.assert_allclose(r_loss, loss, **TOL)
  assert_trees_close(r_grads, restack(grads))


# --- dropout -----------------------------------------------------------------------------------
def test_dropout_only_when_asked(random_model):
  _, params = random_model
  model = EncoderDecoderModel(tiny_config(dropout_rate=0.1))
  batch = copy_batch(np.random.default_rng(4), 4)
  logits = jax.jit(model.logits)
  off = logits(params, batch)
  np.testing.assert_array_equal(logits(params, batch), off)
  # Dropout off computes the same function as a model without dropout.
  np.testing.assert_array_equal(off, jitted(random_model[0], "logits")(params, batch))
  on = logits(params, batch, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(logits(params, batch, jax.random.PRNGKey(0)), on)
  assert not np.allclose(on, off, rtol=1e-3, atol=1e-3)
  assert not np.allclose(logits(params, batch, jax.random.PRNGKey(1)), on, rtol=1e-3, atol=1e-3)


# --- embedding lookup and activation dtype -----------------------------------------------------
def test_one_hot_and_gather_embedding_agree(random_model):
  model, params = random_model
  batch = copy_batch(np.random.default_rng(5), 4)
  one_hot = EncoderDecoderModel(tiny_config(embedding_lookup="one_hot"))
  loss, grads = loss_and_grads(model, params, batch)
  o_loss, o_grads = loss_and_grads(one_hot, params, batch)
  np.testing.assert_allclose(o_loss, loss, **TOL)
  assert_trees_close(o_grads, grads)
  np.testing.assert_allclose(jitted(one_hot, "logits")(params, batch),
                             jitted(model, "logits")(params, batch), **TOL)


def test_bfloat16_activations_give_float32_logits_close_to_float32(random_model):
  model, params = random_model
  batch = copy_batch(np.random.default_rng(6), 4)
  bf16 = EncoderDecoderModel(tiny_config(dtype="bfloat16"))
  logits = jitted(bf16, "logits")(params, batch)
  assert logits.dtype == jnp.float32
  reference = jitted(model, "logits")(params, batch)
  np.testing.assert_allclose(logits, reference, rtol=0.1, atol=0.1)
