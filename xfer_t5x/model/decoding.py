"""Generation for evaluation: greedy search, beam search (T5X's algorithm) and sampling.

Every function here is pure JAX: batched, jit-able under a mesh (`max_decode_length`,
`num_beams`, `method`, `temperature`, `topk` and `alpha` are static Python values; the loops are
`lax.while_loop`s), and uses the decoder's key/value cache (one token per step).

Conventions (T5's): the decoder starts from token 0, EOS is 1, padding is 0. Decoded sequences
are `[batch, max_decode_length]` int32 holding the generated tokens, EOS included, and 0 after
EOS; a sequence that reaches `max_decode_length` without EOS is returned as it stands.

Scores:
- greedy and sampling: the sum of the model's log-probabilities (temperature 1, no top-k filter)
  of the generated tokens up to and including EOS;
- beam search: T5X's, the summed log-probability divided by the length penalty
  `((5 + length) / 6) ** alpha` with EOS counted in `length`; for an example where no beam
  reached EOS within `max_decode_length`, the raw summed log-probability of the live beams.

Beam search with `num_beams >= 2` follows T5X's algorithm (the top 2k candidates per step, split
into k live and k finished sequences). With `num_beams=1` it is greedy search (T5X's keeps two
candidates and differs; ours is what users expect, see CONTRACTS.md).
"""
from typing import Any, Callable, Mapping, NamedTuple, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from xfer_t5x.model.network import Transformer
from xfer_t5x.model.per_example import on_batch, per_example, top_k_over_vocab

DECODER_START_ID = 0
NEG_INF = -np.inf
METHODS = ("greedy", "beam", "sample")
_CACHE_ARRAYS = ("cached_key", "cached_value")


# --- the model as a one-step function ---------------------------------------------------------
def init_cache(model, encoded, encoder_input_tokens, max_decode_length: int):
  """An empty key/value cache for `encoded.shape[0]` sequences of `max_decode_length` tokens.

  Its structure comes from `jax.eval_shape` of the decoder's init (nothing is initialised); the
  empty cache is all zeros (positions and keys alike).
  """
  batch = encoded.shape[0]

  def init(enc, tokens):
    return model.module.init(
        jax.random.PRNGKey(0), enc, tokens, jnp.zeros((batch, max_decode_length), jnp.int32),
        decode=True, max_decode_length=max_decode_length, method=Transformer.decode)["cache"]

  shapes = jax.eval_shape(init, encoded, encoder_input_tokens)
  return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def make_step_fn(model, params, encoded, encoder_input_tokens, max_decode_length: int):
  """`step(tokens [n], cache) -> (float32 logits [n, vocab], new cache)`: one decoder step."""

  def step(tokens, cache):
    logits, mutated = model.module.apply(
        {"params": params, "cache": cache}, encoded, encoder_input_tokens, tokens[:, None],
        decode=True, max_decode_length=max_decode_length, method=Transformer.decode,
        mutable=["cache"])
    return logits[:, 0].astype(jnp.float32), mutated["cache"]

  return step


def gather_cache(cache, beam_indices):
  """Reorders the beams of the key/value cache within each example: beam j of example b in
  the result is beam `beam_indices[b, j]` of example b in `cache`.

  The cache holds `batch * beams` sequences, example-major (rows b*k .. b*k+k-1 are example b's
  beams). Each example's rows are gathered along its own beam axis, so under a mesh with the
  batch on 'data' every example's cache stays on its shard (a flat gather over batch x beams
  made the partitioner all-gather the whole cache every step). The batch axis is 0, or 1 under
  the scanned layers' leading `layers` axis; step counters are shared and left alone.
  """
  batch, k = beam_indices.shape
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(cache))
  out = {}
  for path, x in flat.items():
    if path[-1] in _CACHE_ARRAYS:
      axis = 1 if "layers" in path else 0
      x = jnp.moveaxis(x, axis, 0)
      rows = on_batch(x.reshape((batch, k) + x.shape[1:]))
      x = on_batch(_take_beams(rows, beam_indices)).reshape(x.shape)
      x = jnp.moveaxis(x, 0, axis)
    out[path] = x
  return flax.traverse_util.unflatten_dict(out)


def length_penalty(alpha: float, length):
  """T5X's brevity penalty `((5 + length) / 6) ** alpha` (`length` counts EOS)."""
  return jnp.power((5.0 + jnp.asarray(length, jnp.float32)) / 6.0, alpha)


def _check(encoder_input_tokens, max_decode_length):
  if encoder_input_tokens.ndim != 2:
    raise ValueError(f"encoder_input_tokens must be [batch, length]; got shape "
                     f"{encoder_input_tokens.shape}")
  if not isinstance(max_decode_length, (int, np.integer)) or max_decode_length < 1:
    raise ValueError(f"max_decode_length must be a positive Python int (a static shape); got "
                     f"{max_decode_length!r}")


# --- greedy search and sampling ---------------------------------------------------------------
def _token_by_token(model, params, encoder_input_tokens, max_decode_length, eos_id,
                    select: Callable, rng):
  """Decodes one token per step with `select(logits [b, vocab], rng) -> tokens [b]` until every
  sequence has emitted EOS or `max_decode_length` tokens exist."""
  _check(encoder_input_tokens, max_decode_length)
  tokens_in = jnp.asarray(encoder_input_tokens, jnp.int32)
  batch = tokens_in.shape[0]
  encoded = model.encode(params, tokens_in)
  cache = init_cache(model, encoded, tokens_in, max_decode_length)
  step = make_step_fn(model, params, encoded, tokens_in, max_decode_length)

  def cond(state):
    i, _, _, _, done, _, _ = state
    return (i < max_decode_length) & ~jnp.all(done)

  def body(state):
    i, last, cache, seqs, done, logp, key = state
    logits, cache = step(last, cache)
    key, sub = jax.random.split(key)
    tok = jnp.where(done, 0, select(logits, sub).astype(jnp.int32))
    tok_logp = jnp.take_along_axis(jax.nn.log_softmax(logits), tok[:, None], axis=-1)[:, 0]
    logp = logp + jnp.where(done, 0.0, tok_logp)
    seqs = lax.dynamic_update_slice(seqs, tok[:, None], (0, i))
    return i + 1, tok, cache, seqs, done | (tok == eos_id), logp, key

  state = (jnp.array(0, jnp.int32), jnp.full((batch,), DECODER_START_ID, jnp.int32), cache,
           jnp.zeros((batch, max_decode_length), jnp.int32), jnp.zeros((batch,), jnp.bool_),
           jnp.zeros((batch,), jnp.float32), rng)
  _, _, _, seqs, _, logp, _ = lax.while_loop(cond, body, state)
  return seqs, logp


def greedy_decode(model, params, encoder_input_tokens, max_decode_length: int,
                  eos_id: int = 1) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """Greedy search: (tokens `[batch, max_decode_length]`, summed log-probabilities `[batch]`)."""
  select = lambda logits, _: jnp.argmax(logits, axis=-1)
  return _token_by_token(model, params, encoder_input_tokens, max_decode_length, eos_id, select,
                         jax.random.PRNGKey(0))


def temperature_sample(model, params, encoder_input_tokens, max_decode_length: int, rng,
                       temperature: float = 1.0, topk: int = 0,
                       eos_id: int = 1) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """Ancestral sampling from softmax(logits / temperature), restricted to the `topk` most likely
  tokens when `topk > 0`; `temperature=0` is greedy. Returns (tokens, summed log-probabilities
  under the model's own distribution)."""
  if temperature < 0:
    raise ValueError(f"temperature must be >= 0; got {temperature}")
  if topk < 0:
    raise ValueError(f"topk must be >= 0 (0: no top-k filter); got {topk}")

  def select(logits, key):
    if temperature == 0:
      return jnp.argmax(logits, axis=-1)
    scaled = logits / temperature
    if topk:
      kth = lax.top_k(scaled, topk)[0][:, -1:]
      scaled = jnp.where(scaled < kth, NEG_INF, scaled)
    return jax.random.categorical(key, scaled, axis=-1)

  return _token_by_token(model, params, encoder_input_tokens, max_decode_length, eos_id, select,
                         rng)


# --- beam search ------------------------------------------------------------------------------
class BeamState(NamedTuple):
  """Loop state; beams of an example are sorted best first."""
  step: jnp.ndarray           # [] tokens decoded so far
  live_seqs: jnp.ndarray      # [batch, beams, max_len] sequences without EOS
  live_logp: jnp.ndarray      # [batch, beams] summed log-probabilities (-inf: empty slot)
  finished_seqs: jnp.ndarray  # [batch, beams, max_len] sequences ending in EOS
  finished_scores: jnp.ndarray  # [batch, beams] length-penalised scores (-inf: empty slot)
  finished_flags: jnp.ndarray  # [batch, beams] slot holds a real finished sequence
  cache: Any                  # key/value cache for batch * beams sequences


def _take_beams(x, indices):
  """x [batch, n, ...], indices [batch, m] -> [batch, m, ...]."""
  return jax.vmap(lambda a, i: jnp.take(a, i, axis=0))(x, indices)


def beam_search(model, params, encoder_input_tokens, max_decode_length: int, num_beams: int,
                alpha: float = 0.6, eos_id: int = 1, return_all_beams: bool = False):
  """Beam search with T5X's length penalty and finished/live bookkeeping.

  Returns (tokens `[batch, max_decode_length]`, scores `[batch]`) of the best beam, or with
  `return_all_beams=True` all of them, best first: `[batch, num_beams, max_decode_length]` and
  `[batch, num_beams]` (unused slots score -inf).
  """
  _check(encoder_input_tokens, max_decode_length)
  if not isinstance(num_beams, (int, np.integer)) or num_beams < 1:
    raise ValueError(f"num_beams must be a positive Python int; got {num_beams!r}")
  if num_beams == 1:
    seqs, logp = greedy_decode(model, params, encoder_input_tokens, max_decode_length, eos_id)
    is_eos = seqs == eos_id
    length = jnp.argmax(is_eos, axis=-1) + 1
    scores = jnp.where(jnp.any(is_eos, axis=-1), logp / length_penalty(alpha, length), logp)
    return (seqs[:, None], scores[:, None]) if return_all_beams else (seqs, scores)

  k, max_len = num_beams, max_decode_length
  tokens_in = jnp.asarray(encoder_input_tokens, jnp.int32)
  batch = tokens_in.shape[0]
  # Encode once; every beam of an example reads the same encoding (rows b*k .. b*k+k-1).
  encoded = jnp.repeat(model.encode(params, tokens_in), k, axis=0)
  tokens_k = jnp.repeat(tokens_in, k, axis=0)
  step_fn = make_step_fn(model, params, encoded, tokens_k, max_len)
  max_penalty = length_penalty(alpha, max_len)

  def cond(s: BeamState):
    # Stop early once no live beam can still beat the worst finished one in any example: its
    # score can only fall, and the best penalty it can get is at length step+1 or max_len.
    live_bound = jnp.maximum(s.live_logp[:, 0] / max_penalty,
                             s.live_logp[:, 0] / length_penalty(alpha, s.step + 1))
    worst_finished = jnp.where(jnp.all(s.finished_flags, axis=1), s.finished_scores[:, -1],
                               NEG_INF)
    settled = jnp.all(worst_finished > live_bound)
    return (s.step < max_len) & ~settled

  def select(logp, live_seqs, live_logp, finished_seqs, finished_scores, finished_flags,
             step, vocab_axes=()):
    """One step's choice for each example, from its beams' log-probabilities `[b, k, vocab]`
    (the vocabulary possibly split over `vocab_axes`); returns the new beams and, for the cache,
    which old beam each live one extends."""
    i = step[0]
    logp = logp + live_logp[:, :, None]
    # The top 2k extensions: at most k of them end in EOS, so k live ones always remain. Taken
    # per beam first (over the vocabulary), then over the k x 2k survivors: the same candidates,
    # ties in the same order (lower beam, then lower token), as one top-k over k x vocab.
    beam_logp, beam_tok = top_k_over_vocab(logp, 2 * k, vocab_axes)  # [b, k, m], m <= 2k
    b, m = logp.shape[0], beam_logp.shape[-1]
    cand_logp, pick = lax.top_k(beam_logp.reshape(b, k * m), 2 * k)
    cand_beam = pick // m
    cand_tok = jnp.take_along_axis(beam_tok.reshape(b, k * m), pick, axis=1)
    cand_tok = cand_tok.astype(jnp.int32)
    cand_seqs = lax.dynamic_update_slice(_take_beams(live_seqs, cand_beam),
                                         cand_tok[:, :, None], (0, 0, i))
    cand_eos = cand_tok == eos_id

    live_logp, pick = lax.top_k(jnp.where(cand_eos, NEG_INF, cand_logp), k)
    live_seqs = _take_beams(cand_seqs, pick)
    beams = jnp.take_along_axis(cand_beam, pick, axis=1)

    new_scores = jnp.where(cand_eos, cand_logp / length_penalty(alpha, i + 1), NEG_INF)
    all_scores = jnp.concatenate([finished_scores, new_scores], axis=1)
    all_seqs = jnp.concatenate([finished_seqs, cand_seqs], axis=1)
    all_flags = jnp.concatenate([finished_flags, cand_eos & (cand_logp > NEG_INF)], axis=1)
    finished_scores, pick = lax.top_k(all_scores, k)
    return (live_seqs, live_logp, _take_beams(all_seqs, pick), finished_scores,
            jnp.take_along_axis(all_flags, pick, axis=1), beams)

  def body(s: BeamState):
    i = s.step
    prev = lax.dynamic_index_in_dim(s.live_seqs, jnp.maximum(i - 1, 0), axis=2, keepdims=False)
    feed = jnp.where(i == 0, DECODER_START_ID, prev).reshape(-1)
    logits, cache = step_fn(feed, s.cache)
    logp = jax.nn.log_softmax(logits).reshape(batch, k, logits.shape[-1])
    # Every example's choice on its own shard: no step gathers the batch's log-probabilities.
    step = jnp.broadcast_to(i, (batch,))
    (live_seqs, live_logp, finished_seqs, finished_scores, finished_flags,
     beams) = per_example(select, logp, s.live_seqs, s.live_logp, s.finished_seqs,
                          s.finished_scores, s.finished_flags, step, vocab_arg=0)
    return BeamState(i + 1, live_seqs, live_logp, finished_seqs, finished_scores,
                     finished_flags, gather_cache(cache, beams))

  empty = jnp.zeros((batch, k, max_len), jnp.int32)
  init = BeamState(
      step=jnp.array(0, jnp.int32), live_seqs=empty,
      live_logp=jnp.tile(jnp.array([0.0] + [NEG_INF] * (k - 1), jnp.float32), (batch, 1)),
      finished_seqs=empty, finished_scores=jnp.full((batch, k), NEG_INF, jnp.float32),
      finished_flags=jnp.zeros((batch, k), jnp.bool_),
      cache=init_cache(model, encoded, tokens_k, max_len))
  final = lax.while_loop(cond, body, init)

  # An example none of whose beams reached EOS returns its live beams (raw log-probabilities).
  any_finished = jnp.any(final.finished_flags, axis=1)
  seqs = jnp.where(any_finished[:, None, None], final.finished_seqs, final.live_seqs)
  scores = jnp.where(any_finished[:, None], final.finished_scores, final.live_logp)
  return (seqs, scores) if return_all_beams else (seqs[:, 0], scores[:, 0])


# --- one entry point for evaluation -----------------------------------------------------------
def predict_batch(model, params, batch: Mapping[str, jnp.ndarray], method: str = "greedy",
                  max_decode_length: Optional[int] = None, **kw):
  """Decodes `batch["encoder_input_tokens"]` with `method` ("greedy", "beam" or "sample").

  `max_decode_length` defaults to the length of the batch's `decoder_target_tokens` (or
  `decoder_input_tokens`). Keyword arguments go to the method: `eos_id` (all), `num_beams` and
  `alpha` (beam), `rng`, `temperature` and `topk` (sample). Returns (token ids
  `[batch, max_decode_length]`, 0 after EOS; scores `[batch]`). Jit it with the method and its
  options bound, e.g. `jax.jit(functools.partial(predict_batch, model, method="beam",
  num_beams=4))(params, batch)`.
  """
  if "encoder_input_tokens" not in batch:
    raise ValueError(f"predict_batch: the batch has no 'encoder_input_tokens' (keys: "
                     f"{sorted(batch)})")
  if max_decode_length is None:
    for key in ("decoder_target_tokens", "decoder_input_tokens"):
      if key in batch:
        max_decode_length = int(batch[key].shape[1])
        break
    else:
      raise ValueError("predict_batch: pass max_decode_length, or a batch with "
                       "'decoder_target_tokens' whose length sets it")
  inputs = batch["encoder_input_tokens"]
  if method == "greedy":
    return greedy_decode(model, params, inputs, max_decode_length, **kw)
  if method == "beam":
    kw.setdefault("num_beams", 4)
    return beam_search(model, params, inputs, max_decode_length, **kw)
  if method == "sample":
    if "rng" not in kw:
      raise ValueError("predict_batch(method='sample') needs rng=<a jax.random key>")
    return temperature_sample(model, params, inputs, max_decode_length, **kw)
  raise ValueError(f"predict_batch: method={method!r}; choose one of {METHODS}")
