"""One process of the input-resume test. argv: num_processes process_id port model_dir phase
out_json, phase "save" or "resume". One fake CPU device per process; processes join through
jax.distributed. "save": read SAVE_AT batches of this host's shard, checkpoint (a small array
state, the position, every host's tf.data iterator), then record the next batches. "resume":
restore the checkpoint and the iterator, count the examples the source yields up to the first
batch, record the batches and how the iterator resumed."""
import json
import os
import sys

num_processes, process_id, port, model_dir, phase, out_json = (
    int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6])
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

from xfer_t5x.runtime import distributed  # noqa: E402

if num_processes > 1:
  distributed.initialize(f"localhost:{port}", num_processes, process_id, local_device_count=1)

from xfer_t5x.runtime import checkpoints, data  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import counting_task  # noqa: E402

SAVE_AT = 30
GLOBAL_BATCH = 8
NEXT = 3


def main():
  counting_task.register()
  it = data.DataIterator.from_task(counting_task.NAME, counting_task.LENGTHS, "train",
                                   GLOBAL_BATCH, shuffle=True, seed=5, pack=True, prefetch=0)
  mesh = Mesh(np.array(jax.devices()), ("data",))
  sharding = NamedSharding(mesh, P())
  state = {"w": jax.make_array_from_callback((4,), sharding,
                                             lambda idx: np.arange(4.0, dtype=np.float32)[idx])}
  ckpt = checkpoints.Checkpointer(model_dir, async_save=False)
  out = {"process": jax.process_index(), "processes": jax.process_count(),
         "shard": [it.shard_id, it.num_shards]}
  if phase == "save":
    for _ in range(SAVE_AT):
      next(it)
    out["read_before_save"] = counting_task.READ[0]
    ckpt.save(SAVE_AT, state, extra_json={"data": it.state()}, force=True, input_iterator=it)
    ckpt.wait()
    out["next"] = [counting_task.example_ids(next(it)) for _ in range(NEXT)]
  else:
    restored, extra = ckpt.restore(None, jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state))
    np.testing.assert_array_equal(np.asarray(restored["w"]), np.arange(4.0))
    counting_task.READ[0] = 0
    out["message"] = it.restore(extra["data"], ckpt.input_iterator_dir(ckpt.latest_step()))
    out["resumed_by"] = it.resumed_by
    first = next(it)
    out["read_to_first_batch"] = counting_task.READ[0]
    out["examples_in_first_batch"] = len(counting_task.example_ids(first))
    out["next"] = [counting_task.example_ids(first)] + [
        counting_task.example_ids(next(it)) for _ in range(NEXT - 1)]
    out["position"] = it.position
  ckpt.close()
  with open(out_json, "w") as f:
    json.dump(out, f)


if __name__ == "__main__":
  main()
