"""The `data/` item of a checkpoint: every host's input iterator, saved with the train state.

  checkpoint_<step>/data/process_<i>-of-<P>.shard_<s>-of-<N>.index   (+ .data-*)

Each process writes its own iterator (a tf.data iterator checkpoint, as T5X's
`checkpoint_dataset`: the position inside every stage, the shuffle and prefetch buffers), so a
restart continues each host's stream where it stopped without reading what came before. The file
is named by the process and by the data shard it read, so a run with another number of processes
or another split of the batch over hosts finds no file of its own and replays instead (see
`data.DataIterator.restore`).

The handler knows nothing of TensorFlow: the object it is given writes itself
(`save_native(prefix) -> bool`) and names its file (`native_name()`). Restores read the file
directly (`data.DataIterator.restore`), not through Orbax.
"""
import dataclasses
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp
from etils import epath

DATA_ITEM = "data"


def file_name(process_index: int, process_count: int, shard_id: int, num_shards: int) -> str:
  """The prefix of one host's iterator checkpoint inside the `data/` item."""
  return f"process_{process_index}-of-{process_count}.shard_{shard_id}-of-{num_shards}"


def this_process_file_name(shard_id: int, num_shards: int) -> str:
  return file_name(jax.process_index(), jax.process_count(), shard_id, num_shards)


class InputIteratorHandler(ocp.CheckpointHandler):
  """Writes this process's input iterator into the item's directory (every process calls it)."""

  def save(self, directory: epath.Path, args: "InputIteratorSave"):
    args.iterator.save_native(str(directory / args.iterator.native_name()))

  def restore(self, directory: epath.Path, args: Optional["InputIteratorRestore"] = None) -> Any:
    # Restoring goes through `data.DataIterator.restore`, which reads its own file and falls
    # back to replay when it is missing; Orbax only lists the directory.
    return str(directory)


@ocp.args.register_with_handler(InputIteratorHandler, for_save=True)
@dataclasses.dataclass
class InputIteratorSave(ocp.args.CheckpointArgs):
  """`iterator` has `save_native(prefix: str) -> bool` and `native_name() -> str`."""
  iterator: Any


# Never passed by this library, but Orbax takes a handler as its own item's only when both a save
# and a restore argument type are registered for it (else it wraps it as a legacy handler, and
# the save arguments above no longer match).
@ocp.args.register_with_handler(InputIteratorHandler, for_restore=True)
@dataclasses.dataclass
class InputIteratorRestore(ocp.args.CheckpointArgs):
  pass
