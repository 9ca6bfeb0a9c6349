"""A checkpoint's parameters, restored straight into the shardings of the evaluation mesh.

  params, step = restore_params(model_dir, step, model, partitioner)

Only the `params` of the saved train state are read (a partial restore: the optimizer state
stays on disk), placed as the partitioner's logical axis rules say, which may be another mesh
than the one that trained. A checkpoint of another model is refused with the variable named
(runtime.checkpoints does the comparison).
"""
from typing import Any, Optional, Tuple

import jax

from xfer_t5x.runtime import checkpoints as ckpt_lib
from xfer_t5x.runtime.partitioning import Partitioner


def param_shardings(model, partitioner: Partitioner):
  """NamedSharding of every parameter on the partitioner's mesh (uneven dims replicated)."""
  return partitioner.shardings(model.logical_axes(), model.abstract_params())


def abstract_params(model, partitioner: Partitioner):
  """ShapeDtypeStructs of the parameters carrying their shardings (nothing allocated)."""
  shardings = param_shardings(model, partitioner)
  return jax.tree_util.tree_map(
      lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
      model.abstract_params(), shardings)


def restore_params(model_dir, step: Optional[int], model,
                   partitioner: Partitioner) -> Tuple[Any, int]:
  """(params, step) of `model_dir/checkpoint_<step>` (None: the latest complete checkpoint).

  Raises:
    FileNotFoundError: no complete checkpoint (at that step) in model_dir.
    CheckpointMismatchError: the checkpoint holds another model.
  """
  checkpointer = ckpt_lib.Checkpointer(model_dir, keep=None, async_save=False)
  try:
    if step is None:
      step = checkpointer.latest_step()
      if step is None:
        raise FileNotFoundError(
            f"no complete checkpoint in {ckpt_lib.as_path(model_dir)}: train first, or pass the "
            "model dir that holds checkpoint_<step>/")
    restored, _ = checkpointer.restore(int(step), {"params": abstract_params(model, partitioner)},
                                       partial=True)
  finally:
    checkpointer.close()
  return restored["params"], int(step)


def place_params(params, model, partitioner: Partitioner):
  """Given params (any placement) put on the evaluation mesh's shardings."""
  return jax.device_put(params, param_shardings(model, partitioner))
