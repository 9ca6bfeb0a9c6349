"""Run in a subprocess with 8 fake CPU devices: train a tiny float32 model 3 steps on one mesh
and save loss, gradients and updated parameters to an npz (tests compare them)."""
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import traverse_util  # noqa: E402

from xfer_t5x.model.api import EncoderDecoderModel  # noqa: E402
from xfer_t5x.model.config import T5Config  # noqa: E402
from xfer_t5x.runtime.optimizer import Adafactor  # noqa: E402
from xfer_t5x.runtime.partitioning import Partitioner, make_mesh, standard_logical_axis_rules  # noqa: E402
from xfer_t5x.runtime.train_state import init_state, state_shardings  # noqa: E402
from xfer_t5x.runtime.train_step import make_train_step  # noqa: E402

TINY = dict(vocab_size=384, emb_dim=64, num_heads=4, head_dim=16, mlp_dim=128,
            num_encoder_layers=2, num_decoder_layers=2, dtype="float32", dropout_rate=0.0)


def batch(n=16, li=12, lt=8, seed=0):
  rng = np.random.RandomState(seed)
  tgt = rng.randint(2, 384, (n, lt)).astype(np.int32)
  tgt[:, lt - 2:] = 0  # padding in the targets
  enc = rng.randint(2, 384, (n, li)).astype(np.int32)
  enc[::3, li - 3:] = 0  # and in some inputs
  return {"encoder_input_tokens": enc, "decoder_target_tokens": tgt,
          "decoder_input_tokens": np.concatenate([np.zeros((n, 1), np.int32), tgt[:, :-1]], 1)}


def flat(tree, prefix):
  return {f"{prefix}/{'/'.join(k)}": np.asarray(v)
          for k, v in traverse_util.flatten_dict(jax.device_get(tree)).items()}


def main(data, model_axis, dims, microbatches, out):
  devices = jax.devices()[:data * model_axis]
  part = Partitioner(make_mesh(data, model_axis, devices=devices),
                     standard_logical_axis_rules(parameter_partitioning_dims=dims))
  # Loss per real target token keeps gradients O(1e-2), so atol 1e-6 stays meaningful; the
  # microbatch test then also checks that k microbatches share the global batch's normaliser.
  model = EncoderDecoderModel(T5Config(**TINY), loss_normalizing_factor="NUM_REAL_TARGET_TOKENS")
  opt = Adafactor(model.logical_axes(), min_dim_size_to_factor=32)  # factor the tiny kernels
  state = init_state(model, opt, part, jax.random.PRNGKey(0))
  b = batch()
  shard = state_shardings(model, opt, part)
  with part.activate():
    grads = jax.jit(jax.grad(lambda p, x: model.loss_fn(p, x)[0]),
                    in_shardings=(shard.params, part.batch_sharding()))(state.params, b)
  results = flat(grads, "grad")
  step = make_train_step(model, opt, part, num_microbatches=microbatches)
  losses = []
  for _ in range(3):
    state, metrics = step(state, b)
    losses.append(float(metrics["loss"]))
  results.update(flat(state.params, "param"))
  stats = jax.tree_util.tree_leaves(state.opt_state.stats)
  results.update({f"opt/{i}": np.asarray(jax.device_get(s)) for i, s in enumerate(stats)})
  results["loss"] = np.array(losses)
  np.savez(out, **results)


if __name__ == "__main__":
  d, m, dims, k = (int(x) for x in sys.argv[1:5])
  main(d, m, dims, k, sys.argv[5])
