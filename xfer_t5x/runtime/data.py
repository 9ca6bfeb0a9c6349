"""Training data in: a registered SeqIO task or mixture -> this host's batches -> global arrays.

  ds = get_dataset("xnli_train", {"inputs": 128, "targets": 8}, "train", global_batch_size=32,
                   shuffle=True, seed=0, pack=True)
  it = DataIterator.from_task("xnli_train", {"inputs": 128, "targets": 8}, "train", 32,
                              shuffle=True, seed=0, pack=True)
  batch = next(it)                               # dict of numpy arrays, this host's rows
  arrays = to_global(batch, mesh, P("data"))     # dict of global jax.Arrays

Each host reads its own shard of the data (`seqio.ShardInfo`), packs with the encoder-decoder
feature converter and batches to its share of the global batch. The order is fixed by the seed:
the same seed gives the same batches, run after run, and `DataIterator.restore` puts an iterator
back at the batch it had reached: from the host's own tf.data iterator checkpoint when there is
one (nothing is read again), else by recreating the dataset and skipping whole batches.
"""
import dataclasses
import logging
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple

import jax
import numpy as np
import seqio
import tensorflow as tf
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from xfer_t5x.runtime import input_checkpoint


@dataclasses.dataclass(frozen=True)
class DataLayout:
  """How the global batch is split across hosts: this host reads shard `shard_id` of `num_shards`.

  Hosts whose devices hold the same rows of the batch (when the mesh's model axis spans hosts)
  share a shard and must read the same data.
  """
  shard_id: int
  num_shards: int
  per_host_batch_size: int


def _batch_axis_size(mesh: Mesh, spec: PartitionSpec) -> int:
  first = spec[0] if len(spec) else None
  if first is None:
    return 1
  names = (first,) if isinstance(first, str) else tuple(first)
  size = 1
  for n in names:
    size *= mesh.shape[n]
  return size


def data_layout(mesh: Mesh, spec: PartitionSpec = PartitionSpec("data"),
                global_batch_size: Optional[int] = None) -> DataLayout:
  """This process's data shard for batches laid out as `spec` (batch dim first) on `mesh`.

  With one process per data shard this is (process_index, process_count); it differs when
  several processes hold the same batch rows.
  """
  parts = _batch_axis_size(mesh, spec)
  probe = global_batch_size if global_batch_size else parts
  if probe % parts:
    raise ValueError(f"global batch size {probe} is not divisible by the {parts} batch shards of "
                     f"mesh {dict(mesh.shape)} under {spec}")
  sharding = NamedSharding(mesh, PartitionSpec(*spec[:1]))
  rows_by_process: Dict[int, set] = {}
  for device, index in sharding.devices_indices_map((probe,)).items():
    start, stop, _ = index[0].indices(probe)
    rows_by_process.setdefault(device.process_index, set()).update(range(start, stop))
  shard_id, num_shards = layout_from_rows(rows_by_process, jax.process_index(),
                                          f"mesh {dict(mesh.shape)} under {spec}")
  per_host = (global_batch_size // num_shards) if global_batch_size else 0
  return DataLayout(shard_id=shard_id, num_shards=num_shards, per_host_batch_size=per_host)


def layout_from_rows(rows_by_process: Mapping[int, set], process: int,
                     what: str = "the mesh") -> Tuple[int, int]:
  """(shard_id, num_shards) of `process`, given the batch rows each process's devices hold.

  Processes holding the same rows share a shard; shards are numbered by their first row.
  """
  blocks = {}
  for proc, rows in rows_by_process.items():
    lo, hi = min(rows), max(rows) + 1
    if len(rows) != hi - lo:
      raise ValueError(f"process {proc} holds non-contiguous batch rows under {what}; order the "
                       "mesh devices by process")
    blocks[proc] = (lo, hi)
  distinct = sorted(set(blocks.values()))
  if len({hi - lo for lo, hi in distinct}) != 1:
    raise ValueError(f"processes hold unequal parts of the batch under {what}")
  for (_, hi), (lo, _) in zip(distinct, distinct[1:]):
    if lo < hi:
      raise ValueError(f"processes hold overlapping, unequal parts of the batch under {what}")
  return distinct.index(blocks[process]), len(distinct)


def per_host_batch_size(global_batch_size: int, num_shards: int) -> int:
  if global_batch_size % num_shards:
    raise ValueError(
        f"global batch size {global_batch_size} is not divisible by the {num_shards} data shards "
        f"(hosts); choose a multiple of {num_shards}")
  return global_batch_size // num_shards


def get_dataset(mixture_or_task_name: str, task_feature_lengths: Mapping[str, int], split: str,
                global_batch_size: int, shuffle: bool = True, seed: Optional[int] = 0,
                pack: bool = True, num_epochs: Optional[int] = None,
                shard_id: Optional[int] = None, num_shards: Optional[int] = None,
                feature_converter: Optional[seqio.FeatureConverter] = None,
                use_cached: bool = False) -> tf.data.Dataset:
  """This host's batches of a registered SeqIO task or mixture, model features (packed).

  Args:
    mixture_or_task_name: a registered seqio task or mixture.
    task_feature_lengths: e.g. {"inputs": 512, "targets": 114}.
    split: the split, e.g. "train".
    global_batch_size: examples (or packed rows) per step over all hosts.
    shuffle: shuffle examples (seeded by `seed`).
    seed: fixes the order (shuffle, mixture sampling, stochastic preprocessors).
    pack: pack several examples per row (the encoder-decoder converter's packing).
    num_epochs: passes over the data; None repeats forever.
    shard_id, num_shards: this host's data shard; default (process_index, process_count).
    feature_converter: override the default `seqio.EncDecFeatureConverter(pack=pack)`.
    use_cached: read seqio's offline cache of the task.

  Returns:
    A tf.data.Dataset of dicts (encoder_input_tokens, decoder_target_tokens, ...), each batch of
    `global_batch_size // num_shards` rows; an incomplete last batch is dropped.
  """
  if shard_id is None:
    shard_id = jax.process_index()
  if num_shards is None:
    num_shards = jax.process_count()
  if not 0 <= shard_id < num_shards:
    raise ValueError(f"shard_id {shard_id} is not in [0, {num_shards})")
  batch = per_host_batch_size(global_batch_size, num_shards)
  if feature_converter is None:
    feature_converter = seqio.EncDecFeatureConverter(pack=pack)
  ds = seqio.get_dataset(
      mixture_or_task_name,
      task_feature_lengths=dict(task_feature_lengths),
      feature_converter=feature_converter,
      dataset_split=split,
      use_cached=use_cached,
      shuffle=shuffle,
      num_epochs=num_epochs,
      shard_info=seqio.ShardInfo(index=shard_id, num_shards=num_shards),
      verbose=False,
      seed=seed,
      batch_size=None,
  )
  ds = ds.batch(batch, drop_remainder=True)
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options)


class ResumeMismatchError(ValueError):
  """A checkpoint's data position belongs to another data stream (task, batch size, seed, ...)."""


class DataIterator:
  """Numpy batches of a tf.data.Dataset, counting how many it has handed out.

  Two records of where it is, both written with every checkpoint:
  - `state()`: the position (batches handed out) and what defines the stream; the same on every
    host (hosts step together, each through its own shard), saved once as JSON;
  - `save_native(prefix)`: this host's tf.data iterator itself (each stage's position, the
    shuffle and prefetch buffers), one file per host.
  `restore(state, native_dir)` continues from the host's own iterator file, reading nothing that
  was read before; it replays (recreates the dataset and skips `position` batches, reading and
  discarding them), saying why, where that file is missing or unreadable, or where the data is
  now split over another number of hosts.

  Args:
    make_dataset: builds the dataset from the start (called again by `restore`).
    description: what defines the stream (task, split, seed, batch, shards, ...); stored in
      `state()` and checked by `restore`, so a checkpoint cannot resume into other data.
    shard_id: this host's data shard (names its iterator file).
    prefetch: batches prepared ahead of the train step (tf.data.AUTOTUNE, or 0 for none).
  """

  def __init__(self, make_dataset: Callable[[], tf.data.Dataset],
               description: Optional[Mapping[str, Any]] = None, shard_id: int = 0,
               prefetch: int = tf.data.AUTOTUNE):
    self._make_dataset = make_dataset
    self.description = dict(description or {})
    self.shard_id = int(shard_id)
    self.num_shards = int(self.description.get("num_shards", 1))
    self._prefetch = prefetch
    self._position = 0
    self._iter = None  # built on the first batch (a restore right away builds it only once)
    self._cannot_save = ""  # why this pipeline's iterator cannot be checkpointed, once known
    self.resumed_by = "start"  # "start", "iterator checkpoint" or "replay"

  @classmethod
  def from_task(cls, mixture_or_task_name: str, task_feature_lengths: Mapping[str, int],
                split: str, global_batch_size: int, shuffle: bool = True,
                seed: Optional[int] = 0, pack: bool = True, num_epochs: Optional[int] = None,
                shard_id: Optional[int] = None, num_shards: Optional[int] = None,
                prefetch: int = tf.data.AUTOTUNE, **kwargs) -> "DataIterator":
    """An iterator over `get_dataset(...)` with the same arguments."""
    shard_id = jax.process_index() if shard_id is None else shard_id
    num_shards = jax.process_count() if num_shards is None else num_shards
    args = dict(mixture_or_task_name=mixture_or_task_name,
                task_feature_lengths=dict(task_feature_lengths), split=split,
                global_batch_size=global_batch_size, shuffle=shuffle, seed=seed, pack=pack,
                num_epochs=num_epochs, shard_id=shard_id, num_shards=num_shards)
    # The same on every host (the shard id is left out): every host consumes the same number of
    # batches, so the primary host's saved state restores every host.
    description = {k: v for k, v in args.items() if k != "shard_id"}
    description["task_feature_lengths"] = [
        list(kv) for kv in sorted(description["task_feature_lengths"].items())]
    return cls(lambda: get_dataset(**args, **kwargs), description, shard_id=shard_id,
               prefetch=prefetch)

  def _start(self, skip: int):
    ds = self._make_dataset()
    if skip:
      ds = ds.skip(skip)  # whole batches: the dataset is already batched
    if self._prefetch:
      ds = ds.prefetch(self._prefetch)
    return iter(ds)

  def _tf_iterator(self):
    if self._iter is None:
      self._iter = self._start(self._position)
    return self._iter

  @property
  def position(self) -> int:
    """Batches handed out so far."""
    return self._position

  def __iter__(self):
    return self

  def __next__(self) -> Dict[str, np.ndarray]:
    batch = next(self._tf_iterator())
    self._position += 1
    return tf.nest.map_structure(lambda t: t.numpy(), batch)

  def state(self) -> Dict[str, Any]:
    """JSON-serialisable position: {"position": n, "description": {...}}."""
    return {"position": self._position, "description": self.description}

  # -- this host's iterator file ---------------------------------------------------------------

  def native_name(self) -> str:
    """This process's file name inside a checkpoint's `data/` item."""
    return input_checkpoint.this_process_file_name(self.shard_id, self.num_shards)

  def save_native(self, prefix: str) -> bool:
    """Writes this host's tf.data iterator to `prefix` (.index and .data-* files).

    A pipeline that tf.data cannot serialise (a stateful op such as `tf.py_function` under the
    default external-state policy) is logged once and not written: a resume then replays.
    """
    if self._cannot_save:
      return False
    try:
      tf.train.Checkpoint(iterator=self._tf_iterator()).write(prefix)
      return True
    except (tf.errors.FailedPreconditionError, tf.errors.UnimplementedError) as e:
      self._cannot_save = str(e).splitlines()[0]
      logging.warning(
          "input: this pipeline's tf.data iterator cannot be checkpointed (%s); checkpoints hold "
          "only its position, and a resume will replay the batches read so far. Make the "
          "pipeline serialisable (no stateful Python ops) to resume without replay.",
          self._cannot_save)
      return False

  # -- restore ---------------------------------------------------------------------------------

  def check_resumable(self, state: Mapping[str, Any], where: str = "") -> None:
    """Raises ResumeMismatchError unless `state` (from `state()`) is a position in this stream."""
    saved = dict(state.get("description") or {})
    saved.pop("num_shards", None)
    now = {k: v for k, v in self.description.items() if k != "num_shards"}
    if saved and now and _normalise(saved) != _normalise(now):
      diffs = sorted(k for k in set(saved) | set(now)
                     if _normalise(saved.get(k)) != _normalise(now.get(k)))
      raise ResumeMismatchError(
          f"{where or 'the checkpoint'} was written by a run reading another data stream, so "
          "this run cannot continue it; differing fields: "
          + ", ".join(f"{k} saved={saved.get(k)!r} now={now.get(k)!r}" for k in diffs)
          + ". Resume with the same task, split, seed, batch size and feature lengths, or give "
          "a new MODEL_DIR (with INITIAL_CHECKPOINT set to this checkpoint to start from its "
          "parameters).")

  def open(self) -> None:
    """Builds the pipeline now (reading and checking the data files) without handing out a
    batch, so that bad data is refused before a run writes anything."""
    self._tf_iterator()

  def restore(self, state: Mapping[str, Any], native_dir: Optional[str] = None,
              where: str = "") -> str:
    """Continues from `state` (from `state()`): the next batch is the one after `position`.

    Args:
      state: the JSON state saved with the checkpoint.
      native_dir: the checkpoint's `data/` directory: this host's iterator file there, when
        present, is restored instead of replaying.
      where: the checkpoint, named in a ResumeMismatchError.

    Returns:
      One line saying how the iterator resumed; `resumed_by` is then "iterator checkpoint" or
      "replay".
    """
    position = int(state["position"])
    if position < 0:
      raise ValueError(f"data iterator position {position} is negative")
    saved_shards = (state.get("description") or {}).get("num_shards", self.num_shards)
    self.check_resumable(state, where)
    self._iter = None
    self._position = position
    self.resumed_by = "replay"
    if int(saved_shards) != self.num_shards:
      reason = (f"the data was split over {saved_shards} hosts when saved and is split over "
                f"{self.num_shards} now, so this host's shard is another one and the order after "
                "the resume differs from an uninterrupted run's")
    elif native_dir is None:
      reason = "no input iterator was saved with the checkpoint"
    else:
      reason = self._restore_native(native_dir)
    if reason:
      return (f"input: replaying {position} batches of shard {self.shard_id} of "
              f"{self.num_shards} (read and discarded) because {reason}")
    self.resumed_by = "iterator checkpoint"
    return (f"input: restored this host's iterator at batch {position} from "
            f"{native_dir}/{self.native_name()} (nothing replayed)")

  def _restore_native(self, native_dir: str) -> str:
    """Restores this host's iterator file; '' on success, else why not (then nothing changed)."""
    prefix = f"{native_dir}/{self.native_name()}"
    if not tf.io.gfile.exists(prefix + ".index"):
      others = (sorted(tf.io.gfile.listdir(native_dir))
                if tf.io.gfile.isdir(native_dir) else [])
      names = sorted({n.split(".index")[0] for n in others if n.endswith(".index")})
      return (f"{prefix} is not there (the checkpoint holds "
              f"{', '.join(names) if names else 'no input iterators'}: saved by a run with "
              "another number of processes, or by one whose pipeline could not be checkpointed)")
    iterator = self._start(0)
    try:
      tf.train.Checkpoint(iterator=iterator).read(prefix).assert_consumed()
    except (tf.errors.OpError, AssertionError, ValueError) as e:
      return f"{prefix} could not be read ({type(e).__name__}: {str(e).splitlines()[0]})"
    self._iter = iterator
    return ""


def _normalise(value):
  """Tuples and lists compare equal (JSON turns tuples into lists)."""
  if isinstance(value, (list, tuple)):
    return [_normalise(v) for v in value]
  if isinstance(value, dict):
    return {k: _normalise(v) for k, v in value.items()}
  return value


def to_global(batch: Mapping[str, np.ndarray], mesh: Mesh,
              spec: PartitionSpec = PartitionSpec("data")) -> Dict[str, jax.Array]:
  """Global jax.Arrays from each host's rows of the batch, batch dim sharded as `spec[0]`.

  Every process calls it with its own rows (as `get_dataset` with `data_layout`'s shard gives
  them); the global batch has `rows * num_shards` rows.
  """
  layout = data_layout(mesh, spec)
  sharding = NamedSharding(mesh, PartitionSpec(*spec[:1]))
  out = {}
  for name, local in batch.items():
    local = np.asarray(local)
    if local.ndim == 0:
      raise ValueError(f"batch feature {name!r} is a scalar; every feature needs a batch dim")
    global_shape: Tuple[int, ...] = (local.shape[0] * layout.num_shards,) + local.shape[1:]
    out[name] = jax.make_array_from_process_local_data(sharding, local, global_shape)
  return out


def feature_shapes(ds: tf.data.Dataset) -> Dict[str, Sequence[int]]:
  """{feature: shape} of a batched dataset's elements (for logs)."""
  return {k: v.shape.as_list() for k, v in ds.element_spec.items()}
