"""Greedy search, beam search and sampling (xfer_t5x.model.decoding) against references that
recompute the whole teacher-forced forward pass, and against brute force over a tiny vocabulary."""
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.model.model_helpers import (MARGIN, assert_clear_margins, copy_batch, decoded_mask,
                                       penalty, reference_beam_search, sequence_logprob,
                                       teacher_forced_logits, tiny_config)
from xfer_t5x.model import decoding
from xfer_t5x.model.api import EncoderDecoderModel

MAX_LEN = 8


def jit_decode(fn, model, **static):
  """`fn(model, params, inputs, **static)` jitted with its static options bound."""
  return jax.jit(functools.partial(fn, model, **static))


@functools.lru_cache(maxsize=None)
def greedy_fn(model, max_len=MAX_LEN, eos_id=1):
  return jit_decode(decoding.greedy_decode, model, max_decode_length=max_len, eos_id=eos_id)


@functools.lru_cache(maxsize=None)
def beam_fn(model, num_beams, max_len=MAX_LEN, alpha=0.6, eos_id=1, return_all_beams=False):
  return jit_decode(decoding.beam_search, model, max_decode_length=max_len, num_beams=num_beams,
                    alpha=alpha, eos_id=eos_id, return_all_beams=return_all_beams)


def inputs_for_test(n=6, seed=123):
  return copy_batch(np.random.default_rng(seed), n)["encoder_input_tokens"]


def naive_greedy(model, params, inputs, max_len, eos_id=1):
  """Greedy search without a cache: the full teacher-forced forward pass at every step."""
  inputs = np.asarray(inputs)
  out = np.zeros((inputs.shape[0], max_len), np.int32)
  done = np.zeros(inputs.shape[0], bool)
  for i in range(max_len):
    logits = teacher_forced_logits(model, params, inputs, out)  # position i sees out[:, :i]
    tok = np.where(done, 0, np.asarray(jnp.argmax(logits[:, i], -1)))
    out[:, i] = tok
    done |= tok == eos_id
  return out


# --- the cache ---------------------------------------------------------------------------------
def test_cached_step_logits_equal_teacher_forced(random_model):
  model, params = random_model
  batch = copy_batch(np.random.default_rng(0), 4)
  inputs, targets = batch["encoder_input_tokens"], batch["decoder_target_tokens"]
  expected = teacher_forced_logits(model, params, inputs, targets)
  encoded = jax.jit(model.encode)(params, inputs)
  cache = jax.jit(decoding.init_cache, static_argnums=(0, 3))(model, encoded, inputs, MAX_LEN)
  step = jax.jit(decoding.make_step_fn(model, params, encoded, inputs, MAX_LEN))
  feed = np.asarray(batch["decoder_input_tokens"])
  got = []
  for i in range(MAX_LEN):
    logits, cache = step(jnp.asarray(feed[:, i]), cache)
    got.append(logits)
  np.testing.assert_allclose(np.stack(got, 1), expected, rtol=1e-5, atol=1e-6)


def test_greedy_equals_decoding_without_cache(trained):
  model, params = trained
  inputs = inputs_for_test()
  tokens, scores = greedy_fn(model)(params, inputs)
  assert_clear_margins(model, params, inputs, tokens)
  np.testing.assert_array_equal(tokens, naive_greedy(model, params, inputs, MAX_LEN))
  np.testing.assert_allclose(scores, sequence_logprob(model, params, inputs, tokens), rtol=1e-5,
                             atol=1e-5)


def test_trained_model_copies(trained):
  """The trained fixture really learned the pattern (so the decoding tests exercise EOS)."""
  model, params = trained
  batch = copy_batch(np.random.default_rng(7), 32)
  tokens, _ = greedy_fn(model)(params, batch["encoder_input_tokens"])
  exact = np.mean(np.all(np.asarray(tokens) == np.asarray(batch["decoder_target_tokens"]), -1))
  assert exact >= 0.5, f"only {exact:.0%} of copies exact"
  assert np.all(np.any(np.asarray(tokens) == 1, -1)), "every decode should end with EOS"


# --- EOS and maximum length --------------------------------------------------------------------
def test_greedy_eos_handling(trained):
  model, params = trained
  inputs = inputs_for_test()
  tokens = np.asarray(greedy_fn(model)(params, inputs)[0])
  assert_clear_margins(model, params, inputs, tokens)
  for row in tokens:
    eos = np.flatnonzero(row == 1)
    assert eos.size, row
    assert np.all(row[eos[0] + 1:] == 0), f"tokens after EOS must be 0: {row}"

  # Another EOS id: the same decode, cut after the first occurrence of that token.
  row, pos = next((r, j) for r in range(len(tokens)) for j in range(1, 3)
                  if tokens[r, j] > 1 and tokens[r, j] not in tokens[r, :j])
  eos_id = int(tokens[row, pos])
  cut, cut_scores = greedy_fn(model, eos_id=eos_id)(params, inputs)
  expected = np.where(np.arange(MAX_LEN) <= pos, tokens[row], 0)
  np.testing.assert_array_equal(cut[row], expected)
  np.testing.assert_allclose(
      cut_scores[row], sequence_logprob(model, params, inputs, cut, eos_id=eos_id)[row],
      rtol=1e-5, atol=1e-5)


def test_max_length_cuts_unfinished_sequences(trained):
  model, params = trained
  inputs = inputs_for_test()
  full = np.asarray(greedy_fn(model)(params, inputs)[0])
  assert_clear_margins(model, params, inputs, full)
  short, short_scores = greedy_fn(model, max_len=3)(params, inputs)
  np.testing.assert_array_equal(short, np.where(decoded_mask(full), full, 0)[:, :3])
  assert not np.any(np.asarray(short) == 1), "all copies are longer than 3 tokens"
  np.testing.assert_allclose(short_scores, sequence_logprob(model, params, inputs, short),
                             rtol=1e-5, atol=1e-5)
  # Beam search (T5X's rule): an example with a finished beam returns finished beams (scores
  # length-penalised); one without returns its live beams with raw log-probabilities.
  beam, beam_scores = beam_fn(model, 3, max_len=3)(params, inputs)
  beam = np.asarray(beam)
  finished = np.any(beam == 1, -1)
  assert finished.any() and not finished.all(), "both cases should occur in this batch"
  length = np.where(finished, np.argmax(beam == 1, -1) + 1, 1)
  logp = sequence_logprob(model, params, inputs, beam)
  expected = np.where(finished, logp / penalty(length), logp)
  np.testing.assert_allclose(beam_scores, expected, rtol=1e-5, atol=1e-5)


# --- beam search -------------------------------------------------------------------------------
def test_beam_search_with_one_beam_is_greedy(trained):
  model, params = trained
  inputs = inputs_for_test()
  greedy, greedy_scores = greedy_fn(model)(params, inputs)
  assert_clear_margins(model, params, inputs, greedy)
  beam, beam_scores = beam_fn(model, 1)(params, inputs)
  np.testing.assert_array_equal(beam, greedy)
  length = np.argmax(np.asarray(greedy) == 1, -1) + 1
  np.testing.assert_allclose(beam_scores, greedy_scores / penalty(length), rtol=1e-6)


def test_beam_scores_are_length_penalised_with_eos_counted(trained):
  model, params = trained
  inputs = inputs_for_test()
  seqs, scores = beam_fn(model, 3, return_all_beams=True)(params, inputs)
  seqs, scores = np.asarray(seqs), np.asarray(scores)
  assert np.all(np.diff(scores, axis=1) <= 0), "beams must come best first"
  flat = seqs.reshape(-1, MAX_LEN)
  assert np.all(np.any(flat == 1, -1)), "every beam of the trained model finishes"
  assert np.all(np.where(decoded_mask(flat), True, flat == 0)), "0 after EOS"
  length = np.argmax(flat == 1, -1) + 1
  logp = sequence_logprob(model, params, np.repeat(np.asarray(inputs), 3, 0), flat)
  np.testing.assert_allclose(scores.reshape(-1), logp / penalty(length), rtol=1e-5, atol=1e-5)


def test_beam_search_equals_plain_reference(trained):
  model, params = trained
  inputs = np.asarray(inputs_for_test(n=3, seed=1))
  k, alpha = 3, 0.6
  seqs, scores = beam_fn(model, k, alpha=alpha, return_all_beams=True)(params, inputs)
  for b in range(len(inputs)):
    finished, gap = reference_beam_search(model, params, inputs[b], MAX_LEN, k, alpha)
    assert gap > MARGIN, f"near-tie ({gap:.2e}) in the reference's choices"
    assert len(finished) == k
    for r, (score, seq) in enumerate(finished):
      np.testing.assert_array_equal(seqs[b, r, :len(seq)], seq)
      assert np.all(np.asarray(seqs[b, r, len(seq):]) == 0)
      np.testing.assert_allclose(scores[b, r], score, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_wide_beam_finds_brute_force_best():
  """On a 3-token vocabulary every sequence can be enumerated: with beams to spare the search is
  exhaustive, and its ranked finished list must equal brute force's."""
  model = EncoderDecoderModel(tiny_config(vocab_size=3))
  params = model.init(jax.random.PRNGKey(3))
  max_len, k, alpha = 5, 32, 0.6
  inputs = jnp.asarray([[2, 2, 1, 0], [2, 1, 2, 2]], jnp.int32)
  # Every finished sequence: non-EOS tokens (0 or 2), then EOS, padded with 0.
  cands = [p + (1,) for n in range(max_len) for p in itertools.product((0, 2), repeat=n)]
  padded = np.array([list(c) + [0] * (max_len - len(c)) for c in cands], np.int32)
  seqs, scores = beam_fn(model, k, max_len=max_len, alpha=alpha, return_all_beams=True)(
      params, inputs)
  greedy = np.asarray(greedy_fn(model, max_len=max_len)(params, inputs)[0])
  differs_from_greedy = 0
  for b in range(len(inputs)):
    x = np.repeat(np.asarray(inputs)[b:b + 1], len(cands), 0)
    lengths = np.array([len(c) for c in cands])
    brute = sequence_logprob(model, params, x, padded) / penalty(lengths, alpha)
    order = np.argsort(-brute)
    assert brute[order[0]] - brute[order[1]] > MARGIN, "near-tie at the top"
    n = len(cands)
    np.testing.assert_array_equal(seqs[b, 0], padded[order[0]])
    np.testing.assert_allclose(scores[b, :n], brute[order], rtol=1e-5, atol=1e-5)
    assert np.all(np.isneginf(np.asarray(scores[b, n:])))
    differs_from_greedy += not np.array_equal(greedy[b], padded[order[0]])
  assert differs_from_greedy, "pick inputs where greedy misses the best sequence"


# --- sampling ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def sample_fn(model, temperature, topk, max_len=MAX_LEN):
  return jit_decode(decoding.temperature_sample, model, max_decode_length=max_len,
                    temperature=temperature, topk=topk)


def test_sampling_degenerate_cases_are_greedy(trained):
  model, params = trained
  inputs = inputs_for_test()
  greedy = greedy_fn(model)(params, inputs)[0]
  assert_clear_margins(model, params, inputs, greedy)
  rng = jax.random.PRNGKey(0)
  np.testing.assert_array_equal(sample_fn(model, 0.0, 0)(params, inputs, rng=rng)[0], greedy)
  np.testing.assert_array_equal(sample_fn(model, 5.0, 1)(params, inputs, rng=rng)[0], greedy)


def test_sampling_respects_rng_topk_and_scores(random_model):
  model, params = random_model
  inputs = inputs_for_test()
  topk = 3
  fn = sample_fn(model, 2.0, topk)
  a, a_scores = fn(params, inputs, rng=jax.random.PRNGKey(1))
  b, _ = fn(params, inputs, rng=jax.random.PRNGKey(1))
  c, _ = fn(params, inputs, rng=jax.random.PRNGKey(2))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c), "another key should give other samples"
  logits = teacher_forced_logits(model, params, inputs, a)
  top = np.asarray(jax.lax.top_k(logits, topk + 1)[0])
  mask = decoded_mask(a)
  assert (top[..., topk - 1] - top[..., topk])[mask].min() > MARGIN, "near-tie at the k-th"
  chosen = np.asarray(jnp.take_along_axis(logits, jnp.asarray(a)[..., None], -1)[..., 0])
  assert np.all((chosen >= top[..., topk - 1])[mask]), "a token outside the top-k was sampled"
  np.testing.assert_allclose(a_scores, sequence_logprob(model, params, inputs, a), rtol=1e-5,
                             atol=1e-5)


# --- predict_batch -----------------------------------------------------------------------------
def test_predict_batch_dispatches(trained):
  model, params = trained
  batch = copy_batch(np.random.default_rng(123), 6)
  predict = lambda **kw: jax.jit(functools.partial(decoding.predict_batch, model, **kw))
  greedy, g_scores = predict(method="greedy")(params, batch)
  assert greedy.shape == batch["decoder_target_tokens"].shape
  np.testing.assert_array_equal(greedy, greedy_fn(model)(params, batch["encoder_input_tokens"])[0])
  beam, _ = predict(method="beam", num_beams=1, max_decode_length=MAX_LEN)(params, batch)
  np.testing.assert_array_equal(beam, greedy)
  sample, _ = predict(method="sample", temperature=0.0)(params, batch, rng=jax.random.PRNGKey(0))
  np.testing.assert_array_equal(sample, greedy)
  with pytest.raises(ValueError, match="choose one of"):
    decoding.predict_batch(model, params, batch, method="nucleus")
  with pytest.raises(ValueError, match="rng"):
    decoding.predict_batch(model, params, batch, method="sample")
  with pytest.raises(ValueError, match="max_decode_length"):
    decoding.predict_batch(model, params, {"encoder_input_tokens": batch["encoder_input_tokens"]})
  with pytest.raises(ValueError, match="num_beams"):
    decoding.beam_search(model, params, batch["encoder_input_tokens"], MAX_LEN, num_beams=0)
