"""Run in a subprocess with 8 fake CPU devices: a tiny dual encoder trained with the trainer's
step and Adafactor on synthetic pairs, on a (1, 1) and a (4, 2) mesh; prints one JSON line.

The pairs carry a learnable signal: a query is 6 random tokens from [3, 190) and its candidate
the same tokens shifted by 190 in reverse order, so a query's candidate is found only once the
embeddings of t and t + 190 line up.
"""
import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from xfer_t5x.model.config import T5Config  # noqa: E402
from xfer_t5x.model.dual_encoder import DualEncoderModel  # noqa: E402
from xfer_t5x.runtime.optimizer import Adafactor, learning_rate_schedule  # noqa: E402
from xfer_t5x.runtime.partitioning import Partitioner, make_mesh, standard_logical_axis_rules  # noqa: E402
from xfer_t5x.runtime.train_state import init_state  # noqa: E402
from xfer_t5x.runtime.train_step import make_train_step  # noqa: E402

TINY = dict(vocab_size=384, emb_dim=64, num_heads=4, head_dim=16, mlp_dim=128,
            num_encoder_layers=2, num_decoder_layers=2, dtype="float32", dropout_rate=0.0)
SHIFT = 190


def pairs(rng, n=32, length=8, pad_every=0):
  q = np.zeros((n, length), np.int32)
  c = np.zeros((n, length + 2), np.int32)
  q[:, :6] = rng.integers(3, SHIFT, (n, 6))
  c[:, :6] = q[:, 5::-1] + SHIFT
  c[:, 6] = 1  # EOS, as SeqIO's targets end
  if pad_every:
    q[::pad_every] = 0  # padding rows (an incomplete last batch)
    c[::pad_every] = 0
  return {"encoder_input_tokens": q, "decoder_target_tokens": c,
          "decoder_input_tokens": np.zeros_like(c)}


def run(data, model_axis, steps, seed=0, projection_dim=32, pad_every=0):
  devices = jax.devices()[:data * model_axis]
  part = Partitioner(make_mesh(data, model_axis, devices=devices),
                     standard_logical_axis_rules(parameter_partitioning_dims=2))
  model = DualEncoderModel(T5Config(**TINY), projection_dim=projection_dim, temperature=0.1)
  opt = Adafactor(model.logical_axes(), learning_rate=learning_rate_schedule(
      "constant", base_learning_rate=1e-2))
  state = init_state(model, opt, part, jax.random.PRNGKey(seed))
  step = make_train_step(model, opt, part)
  rng = np.random.default_rng(seed)
  losses, accuracies = [], []
  for _ in range(steps):
    state, metrics = step(state, pairs(rng, pad_every=pad_every))
    m = jax.device_get(metrics)
    losses.append(float(m["loss"]))
    accuracies.append(float(m["correct"] / m["weight_sum"]))
  # Held-out pairs: in-batch accuracy of the trained model, and the temperature it learnt.
  held = pairs(np.random.default_rng(1000 + seed))
  with part.activate():
    logits = jax.jit(model.similarity_logits)(state.params, held)
  held_acc = float(np.mean(np.argmax(np.asarray(logits), -1) == np.arange(logits.shape[0])))
  return {"loss": losses, "accuracy": accuracies, "held_out_accuracy": held_acc,
          "logit_scale": float(np.exp(jax.device_get(state.params["logit_scale"])))}


def main(which):
  if which == "learn":
    out = run(1, 1, 300)
  else:  # the same 5 steps on two meshes, with padding rows in the batch
    out = {"single": run(1, 1, 5, pad_every=5), "sharded": run(4, 2, 5, pad_every=5)}
  print("RESULT " + json.dumps(out))


if __name__ == "__main__":
  main(sys.argv[1])
