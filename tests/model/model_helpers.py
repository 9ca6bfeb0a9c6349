"""Model-test helpers: a tiny float32 config, copy-task batches, a few training steps, and the
logit-margin check CONTRACTS.md asks of token-identity tests."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from xfer_t5x.model.config import T5Config

VOCAB = 64
MARGIN = 1e-3  # CONTRACTS.md: top-1/top-2 logit margin at every compared position


def tiny_config(**overrides) -> T5Config:
  """vocab 64, d_model 32, 2 heads x 16, d_ff 64, 2+2 layers, float32, no dropout."""
  kw = dict(vocab_size=VOCAB, emb_dim=32, num_heads=2, head_dim=16, mlp_dim=64,
            num_encoder_layers=2, num_decoder_layers=2, dropout_rate=0.0, dtype="float32")
  kw.update(overrides)
  return T5Config(**kw)


def shift_right(targets):
  """Decoder inputs from targets: start token 0, then the targets shifted by one."""
  targets = jnp.asarray(targets)
  return jnp.pad(targets[:, :-1], ((0, 0), (1, 0)))


def copy_batch(rng: np.random.Generator, n: int, length: int = 8, vocab: int = VOCAB):
  """The copy task: inputs of 3..length-2 random tokens (2..vocab-1), padded with 0; targets
  the same tokens then EOS (1), padded."""
  lens = rng.integers(3, length - 1, n)
  x = rng.integers(2, vocab, (n, length))
  x[np.arange(length)[None] >= lens[:, None]] = 0
  y = x.copy()
  y[np.arange(n), lens] = 1
  return {"encoder_input_tokens": jnp.asarray(x, jnp.int32),
          "decoder_target_tokens": jnp.asarray(y, jnp.int32),
          "decoder_input_tokens": shift_right(y).astype(jnp.int32)}


def train(model, params, steps, seed=0, lr=1e-2, batch_size=64):
  """A few Adam steps on the copy task (cosine-decayed learning rate)."""
  opt = optax.adam(optax.cosine_decay_schedule(lr, steps))
  state = opt.init(params)

  @jax.jit
  def step(params, state, batch):
    grads = jax.grad(lambda p: model.loss_fn(p, batch)[0])(params)
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  rng = np.random.default_rng(seed)
  for _ in range(steps):
    params, state = step(params, state, copy_batch(rng, batch_size))
  return params


@functools.lru_cache(maxsize=None)
def jitted(model, method, **static):
  """`jax.jit(model.<method>)` with keyword options bound as static, cached per model."""
  return jax.jit(functools.partial(getattr(model, method), **static))


def teacher_forced_logits(model, params, inputs, targets):
  """float32 logits `[batch, length, vocab]` of the decoder fed `targets` shifted right; every
  target position counts as real (so generated 0 tokens are attended like any other token, as
  in cached decoding)."""
  targets = jnp.asarray(targets, jnp.int32)
  batch = {"encoder_input_tokens": jnp.asarray(inputs, jnp.int32),
           "decoder_input_tokens": shift_right(targets),
           "decoder_target_tokens": jnp.ones_like(targets)}
  return jitted(model, "logits")(params, batch)


def top2_margin(logits):
  """top-1 minus top-2 logit, `[...]`."""
  top = jax.lax.top_k(jnp.asarray(logits, jnp.float32), 2)[0]
  return np.asarray(top[..., 0] - top[..., 1])


def decoded_mask(tokens, eos_id=1):
  """True up to and including the first EOS of each row (the positions a decode chose)."""
  tokens = np.asarray(tokens)
  after_eos = np.cumsum(tokens == eos_id, axis=-1) - (tokens == eos_id) > 0
  return ~after_eos


def assert_clear_margins(model, params, inputs, tokens, eos_id=1):
  """Greedy choices along `tokens` are separated from the runner-up by more than MARGIN."""
  margins = top2_margin(teacher_forced_logits(model, params, inputs, tokens))
  mask = decoded_mask(tokens, eos_id)
  assert margins[mask].min() > MARGIN, (
      f"near-tie in the model's logits (min margin {margins[mask].min():.2e}): the comparison "
      "would be meaningless; train longer or change the inputs")


def sequence_logprob(model, params, inputs, tokens, eos_id=1):
  """Sum of the model's log-probabilities of `tokens` up to and including the first EOS."""
  logp = jax.nn.log_softmax(teacher_forced_logits(model, params, inputs, tokens))
  tok = np.asarray(jnp.take_along_axis(logp, jnp.asarray(tokens)[..., None], axis=-1)[..., 0])
  return (tok * decoded_mask(tokens, eos_id)).sum(-1)


def penalty(length, alpha=0.6):
  return ((5.0 + length) / 6.0) ** alpha


def reference_beam_search(model, params, inputs, max_len, k, alpha=0.6, eos_id=1):
  """T5X's beam search for one example (`inputs` [length]) written plainly over Python tuples,
  recomputing the whole forward pass for every prefix. Returns the finished (score, seq) list,
  best first, and the smallest gap between two scores whose order decided anything (near-ties
  make a comparison with it moot)."""
  inputs = np.asarray(inputs)

  def logprob_fn(prefixes):
    padded = np.zeros((len(prefixes), max_len), np.int32)
    for r, p in enumerate(prefixes):
      padded[r, :len(p)] = p
    x = np.repeat(inputs[None], len(prefixes), 0)
    logits = teacher_forced_logits(model, params, x, padded)
    return np.asarray(jax.nn.log_softmax(logits[:, len(prefixes[0])]))

  live = [((), 0.0)]
  finished = []
  gaps = [np.inf]
  for i in range(max_len):
    logp = logprob_fn([seq for seq, _ in live])
    cands = sorted(((lp + float(logp[j, v]), seq + (v,)) for j, (seq, lp) in enumerate(live)
                    for v in range(logp.shape[1])), key=lambda c: -c[0])
    if eos_id in (cands[2 * k - 1][1][-1], cands[2 * k][1][-1]):
      gaps.append(cands[2 * k - 1][0] - cands[2 * k][0])  # an EOS candidate kept or dropped
    top = cands[:2 * k]
    new_fin = [(lp / penalty(i + 1, alpha), seq) for lp, seq in top if seq[-1] == eos_id]
    pool = sorted(finished + new_fin, key=lambda c: -c[0])
    if len(pool) > k:
      gaps.append(pool[k - 1][0] - pool[k][0])
    finished = pool[:k]
    alive = [(lp, seq) for lp, seq in cands if seq[-1] != eos_id]
    gaps.append(alive[k - 1][0] - alive[k][0])
    live = [(seq, lp) for lp, seq in alive[:k]]
  gaps += [a[0] - b[0] for a, b in zip(finished, finished[1:])]
  return finished, min(gaps)
