"""Scoring (rank classification), mean-pooled embeddings, and padding invariance of the logits."""
import jax.numpy as jnp
import numpy as np

from tests.model.model_helpers import copy_batch, jitted


def test_score_batch_is_sum_of_target_log_softmax(random_model):
  model, params = random_model
  batch = copy_batch(np.random.default_rng(0), 5)
  scores = jitted(model, "score_batch")(params, batch)
  logits = np.asarray(jitted(model, "logits")(params, batch), np.float64)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  targets = np.asarray(batch["decoder_target_tokens"])
  expected = np.zeros(len(targets))
  for b, row in enumerate(targets):
    for i, tok in enumerate(row):
      if tok > 0:  # padding does not count
        expected[b] += logp[b, i, tok]
  np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
  # No z-loss in it: the loss (which has z-loss) differs from minus the score sum.
  loss, _ = jitted(model, "loss_fn")(params, batch)
  assert float(loss) > -float(np.sum(scores))


def test_score_batch_ranks_the_right_target_first(trained):
  """Rank classification on the copy model: the copy outscores corrupted targets."""
  model, params = trained
  batch = copy_batch(np.random.default_rng(11), 8)
  right = np.asarray(jitted(model, "score_batch")(params, batch))
  targets = np.asarray(batch["decoder_target_tokens"]).copy()
  targets[:, 0] = np.where(targets[:, 0] == 2, 3, 2)
  wrong_batch = dict(batch, decoder_target_tokens=jnp.asarray(targets),
                     decoder_input_tokens=jnp.pad(jnp.asarray(targets)[:, :-1], ((0, 0), (1, 0))))
  wrong = np.asarray(jitted(model, "score_batch")(params, wrong_batch))
  assert np.all(right > wrong)


def test_embed_batch_mean_pools_over_real_tokens_only(random_model):
  model, params = random_model
  inputs = np.asarray(copy_batch(np.random.default_rng(1), 4)["encoder_input_tokens"])
  emb = np.asarray(jitted(model, "embed_batch")(params, jnp.asarray(inputs)))
  encoded = np.asarray(jitted(model, "encode")(params, jnp.asarray(inputs)))
  assert emb.shape == (4, model.config.emb_dim)
  for b in range(4):
    real = inputs[b] > 0
    assert 0 < real.sum() < inputs.shape[1], "rows should have padding"
    np.testing.assert_allclose(emb[b], encoded[b, real].mean(0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(emb[b], encoded[b].mean(0), rtol=1e-3), "padding must not count"
  # More padding leaves the embedding alone; a middle layer pools its own hidden states.
  padded = np.pad(inputs, ((0, 0), (0, 5)))
  np.testing.assert_allclose(jitted(model, "embed_batch")(params, jnp.asarray(padded)), emb,
                             rtol=1e-5, atol=1e-6)
  mid = np.asarray(jitted(model, "embed_batch", output_layer=1)(params, jnp.asarray(inputs)))
  hidden = np.asarray(jitted(model, "encode", output_layer=1)(params, jnp.asarray(inputs)))
  np.testing.assert_allclose(mid[0], hidden[0, inputs[0] > 0].mean(0), rtol=1e-5, atol=1e-6)


def test_padding_does_not_change_real_logits(random_model):
  model, params = random_model
  batch = copy_batch(np.random.default_rng(2), 4)
  logits = np.asarray(jitted(model, "logits")(params, batch))
  real = np.asarray(batch["decoder_target_tokens"]) > 0
  pad = lambda x, n: jnp.pad(x, ((0, 0), (0, n)))
  more_inputs = dict(batch, encoder_input_tokens=pad(batch["encoder_input_tokens"], 6))
  logits_fn = jitted(model, "logits")
  np.testing.assert_allclose(np.asarray(logits_fn(params, more_inputs))[real], logits[real],
                             rtol=1e-5, atol=1e-6)
  more_targets = {k: pad(v, 4) if k.startswith("decoder") else v for k, v in batch.items()}
  np.testing.assert_allclose(np.asarray(logits_fn(params, more_targets))[:, :8][real],
                             logits[real], rtol=1e-5, atol=1e-6)
  # ... while a real token does change them (the comparison is not vacuous).
  changed = np.asarray(batch["encoder_input_tokens"]).copy()
  changed[:, 0] = np.where(changed[:, 0] == 2, 3, 2)
  other = np.asarray(logits_fn(params, dict(batch, encoder_input_tokens=jnp.asarray(changed))))
  assert not np.allclose(other[real], logits[real], rtol=1e-3, atol=1e-4)
