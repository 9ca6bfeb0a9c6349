"""Helpers of the interop tests: a random tiny HF MT5 with an untied output layer, copy-task
batches, a few Adam steps, and a plain greedy loop over teacher-forced logits."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from xfer_t5x.model.config import T5Config

VOCAB = 384
TINY = dict(vocab_size=VOCAB, emb_dim=64, num_heads=4, head_dim=16, mlp_dim=128,
            num_encoder_layers=2, num_decoder_layers=2, dropout_rate=0.0, dtype="float32")
MARGIN = 1e-3  # CONTRACTS.md: top-1/top-2 logit margin at every compared position


def tiny_config(**overrides) -> T5Config:
  return T5Config(**{**TINY, **overrides})


def hf_tiny_model(seed=0):
  """MT5ForConditionalGeneration (d_model 64, 4 x 16 heads, d_ff 128, 2+2 layers, gated-gelu,
  vocab 384) at a random init, its lm_head given its own random weight (transformers 5 ties it
  to the embedding for a model built from a config; mT5's is untied)."""
  import torch  # pylint: disable=g-import-not-at-top
  from transformers import MT5Config, MT5ForConditionalGeneration  # pylint: disable=g-import-not-at-top
  torch.manual_seed(seed)
  config = MT5Config(vocab_size=VOCAB, d_model=64, d_kv=16, num_heads=4, d_ff=128, num_layers=2,
                     num_decoder_layers=2, feed_forward_proj="gated-gelu", dropout_rate=0.0)
  model = MT5ForConditionalGeneration(config).eval()
  model.lm_head.weight = torch.nn.Parameter(torch.randn(VOCAB, 64) * 0.05)
  assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()
  return model


def state_dict_numpy(model):
  return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def shift_right(targets):
  return np.pad(np.asarray(targets)[:, :-1], ((0, 0), (1, 0)))


def copy_batch(rng, n, length=8, low=2, high=40):
  """Inputs of 3..length-2 tokens in [low, high), padded with 0; targets the same then EOS."""
  lens = rng.integers(3, length - 1, n)
  x = rng.integers(low, high, (n, length))
  x[np.arange(length)[None] >= lens[:, None]] = 0
  y = x.copy()
  y[np.arange(n), lens] = 1
  return {"encoder_input_tokens": x.astype(np.int32), "decoder_target_tokens": y.astype(np.int32),
          "decoder_input_tokens": shift_right(y).astype(np.int32)}


def train(model, params, steps=300, lr=3e-3, seed=0, batch_size=32):
  """Adam on the copy task so that greedy decodes have clear margins."""
  opt = optax.adam(lr)
  state = opt.init(params)

  @jax.jit
  def step(params, state, batch):
    loss, grads = jax.value_and_grad(lambda p: model.loss_fn(p, batch)[0])(params)
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss

  rng = np.random.default_rng(seed)
  for _ in range(steps):
    params, state, _ = step(params, state, copy_batch(rng, batch_size))
  return jax.tree.map(np.asarray, params)


def greedy_by_logits(model, params, inputs, max_len, eos_id=1):
  """Greedy search by re-running the teacher-forced model on the prefix at each step (no cache).

  Returns (tokens [batch, max_len] with 0 after EOS, the smallest top-1/top-2 logit margin seen
  at any compared position)."""
  inputs = jnp.asarray(inputs, jnp.int32)
  b = inputs.shape[0]
  out = np.zeros((b, max_len), np.int32)
  done = np.zeros(b, bool)
  min_margin = np.inf
  logits_fn = jax.jit(model.logits)
  for i in range(max_len):
    dec_in = np.pad(out[:, :i], ((0, 0), (1, max_len - 1 - i)))
    batch = {"encoder_input_tokens": inputs, "decoder_input_tokens": jnp.asarray(dec_in),
             "decoder_target_tokens": jnp.ones((b, max_len), jnp.int32)}
    logits = np.asarray(logits_fn(params, batch))[:, i]
    top2 = np.sort(logits, axis=-1)[:, -2:]
    live = ~done
    if live.any():
      min_margin = min(min_margin, float(np.min(top2[live, 1] - top2[live, 0])))
    tok = np.where(done, 0, np.argmax(logits, -1))
    out[:, i] = tok
    done |= tok == eos_id
    if done.all():
      break
  return out, min_margin
