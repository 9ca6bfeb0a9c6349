"""Checkpoint interop: Hugging Face MT5 (`hf`), T5X legacy and Orbax (`t5x`), shape checks
(`shapes`) and the `xfer-t5x convert` command (`convert_cmd`).

`load_pretrained(path, config, shardings)` is what the runtime calls for a gin-bound pretrained
checkpoint path: it recognises an HF folder (config.json) or a T5X / Orbax checkpoint.
"""
import os
from typing import Any, Mapping, Optional


def load_pretrained(path: str, config, shardings: Optional[Mapping[str, Any]] = None):
  """This model's params from an HF, T5X (legacy or Orbax) or xfer_t5x Orbax checkpoint.

  With `shardings` (a params-shaped pytree of jax.sharding.Sharding) every parameter is a global
  jax.Array, read region by region (each host reads only what its devices hold). Raises
  `shapes.CheckpointShapeError` when the checkpoint does not fit `config`.
  """
  from xfer_t5x.interop import hf, t5x  # pylint: disable=g-import-not-at-top
  path = str(path)
  if not path.startswith("gs://") and os.path.exists(os.path.join(path, hf.CONFIG_FILE)):
    return hf.load_hf(path, config, shardings)[0]
  return t5x.load_t5x_checkpoint(path, config, shardings)
