"""One process of a multi-process training run on CPU (tests). argv: num_processes process_id
port out_dir. Each process has 4 fake CPU devices; the processes join through jax.distributed
with a local coordinator, train 3 steps on a (4, 2) mesh over all devices (each feeding its own
rows of the global batch), checkpoint, restore into a fresh layout, and write the parameters."""
import os
import sys

num_processes, process_id, port, out_dir = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                            sys.argv[4])
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={8 // num_processes}"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import traverse_util  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

from xfer_t5x.runtime import distributed  # noqa: E402

if num_processes > 1:
  distributed.initialize(f"localhost:{port}", num_processes, process_id,
                         local_device_count=8 // num_processes)

from xfer_t5x.model.api import EncoderDecoderModel  # noqa: E402
from xfer_t5x.model.config import T5Config  # noqa: E402
from xfer_t5x.runtime import checkpoints, data  # noqa: E402
from xfer_t5x.runtime.optimizer import Adafactor  # noqa: E402
from xfer_t5x.runtime.partitioning import Partitioner, make_mesh, standard_logical_axis_rules  # noqa: E402
from xfer_t5x.runtime import train_state as ts  # noqa: E402
from xfer_t5x.runtime.train_step import make_train_step  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from sharding_worker import TINY, batch  # noqa: E402


def main():
  assert jax.device_count() == 8, jax.devices()
  part = Partitioner(make_mesh(4, 2), standard_logical_axis_rules(parameter_partitioning_dims=2))
  model = EncoderDecoderModel(T5Config(**TINY), loss_normalizing_factor="NUM_REAL_TARGET_TOKENS")
  opt = Adafactor(model.logical_axes(), min_dim_size_to_factor=32)
  state = ts.init_state(model, opt, part, jax.random.PRNGKey(0))
  step = make_train_step(model, opt, part)
  rows = 16 // jax.process_count()
  lo = jax.process_index() * rows
  for i in range(3):
    full = batch(seed=i)
    local = {k: v[lo:lo + rows] for k, v in full.items()}  # this host's shard only
    state, metrics = step(state, data.to_global(local, part.mesh, part.batch_sharding().spec))
  ckpt = checkpoints.Checkpointer(os.path.join(out_dir, "model"), async_save=True)
  ckpt.save(3, state, extra_json={"processes": jax.process_count()}, force=True)
  ckpt.wait()
  restored, extra = ckpt.restore(3, ts.abstract_state(model, opt, part))
  ckpt.close()
  assert extra["processes"] == jax.process_count()
  same = jax.tree_util.tree_map(lambda a, b: bool(np.array_equal(
      multihost_utils.process_allgather(a, tiled=True),
      multihost_utils.process_allgather(b, tiled=True))),
                                state.params, restored.params)
  assert all(jax.tree_util.tree_leaves(same)), "restored parameters differ from the saved ones"
  params = multihost_utils.process_allgather(restored.params, tiled=True)
  if jax.process_index() == 0:
    flat = {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(params).items()}
    flat["loss"] = np.asarray(float(metrics["loss"]))
    np.savez(os.path.join(out_dir, "params.npz"), **flat)
  print("ok", jax.process_index(), float(metrics["loss"]), flush=True)


if __name__ == "__main__":
  main()
