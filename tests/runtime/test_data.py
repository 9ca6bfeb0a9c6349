"""Training data: host shards, packing, seeded order, iterator position and restore, global arrays."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import seqio
import tensorflow as tf

from xfer_t5x.runtime import data

TASK = "xfer_t5x_test_runtime_data_task"
TASK_B = "xfer_t5x_test_runtime_data_task_b"
MIXTURE = "xfer_t5x_test_runtime_data_mixture"
N_EXAMPLES = 48
LENGTHS = {"inputs": 16, "targets": 12}


def _examples(offset):
  """Example i has inputs [offset+i] * (1 + i % 5) and targets [offset+i, 3]: ids name examples."""
  inputs = tf.ragged.constant([[offset + i] * (1 + i % 5) for i in range(N_EXAMPLES)], tf.int32)
  targets = tf.ragged.constant([[offset + i, 3] for i in range(N_EXAMPLES)], tf.int32)
  return tf.data.Dataset.from_tensor_slices({"inputs": inputs, "targets": targets})


def _register(name, offset):
  vocab = seqio.PassThroughVocabulary(size=512, eos_id=1)
  seqio.TaskRegistry.add(
      name,
      source=seqio.FunctionDataSource(
          lambda split, shuffle_files, seed=None: _examples(offset), splits=["train"]),
      output_features={
          "inputs": seqio.Feature(vocab, add_eos=True, dtype=tf.int32),
          "targets": seqio.Feature(vocab, add_eos=True, dtype=tf.int32)},
      preprocessors=[seqio.preprocessors.append_eos_after_trim])


@pytest.fixture(scope="module", autouse=True)
def tiny_tasks():
  for name in (MIXTURE,):
    seqio.MixtureRegistry.remove(name)
  for name in (TASK, TASK_B):
    seqio.TaskRegistry.remove(name)
  _register(TASK, 10)
  _register(TASK_B, 200)
  seqio.MixtureRegistry.add(MIXTURE, [(TASK, 1.0), (TASK_B, 1.0)])
  yield
  seqio.MixtureRegistry.remove(MIXTURE)
  seqio.TaskRegistry.remove(TASK)
  seqio.TaskRegistry.remove(TASK_B)


def _batches(ds, n):
  return [b for _, b in zip(range(n), ds.as_numpy_iterator())]


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def _example_ids(batches):
  """The example ids in the batches (the first token of each packed segment's targets)."""
  ids = []
  for b in batches:
    tgt = b["decoder_target_tokens"]
    seg = b.get("decoder_segment_ids", (tgt > 0).astype(np.int32))  # unpacked: one per row
    for row in range(tgt.shape[0]):
      for s in np.unique(seg[row][seg[row] > 0]):
        ids.append(int(tgt[row][seg[row] == s][0]))
  return ids


def test_packed_batches_per_host():
  ds = data.get_dataset(TASK, LENGTHS, "train", global_batch_size=8, shuffle=True, seed=0,
                        pack=True, shard_id=0, num_shards=2)
  (b,) = _batches(ds, 1)
  assert set(b) == {"encoder_input_tokens", "encoder_segment_ids", "encoder_positions",
                    "decoder_target_tokens", "decoder_input_tokens", "decoder_loss_weights",
                    "decoder_segment_ids", "decoder_positions"}
  assert b["encoder_input_tokens"].shape == (4, 16)   # 8 global rows over 2 hosts
  assert b["decoder_target_tokens"].shape == (4, 12)
  assert b["encoder_segment_ids"].max() > 1            # packed: several examples in a row


def test_batch_must_divide_over_hosts():
  with pytest.raises(ValueError, match="not divisible by the 3 data shards"):
    data.get_dataset(TASK, LENGTHS, "train", global_batch_size=8, shard_id=0, num_shards=3)
  with pytest.raises(ValueError, match="shard_id 3"):
    data.get_dataset(TASK, LENGTHS, "train", global_batch_size=8, shard_id=3, num_shards=2)


@pytest.mark.parametrize("name", [TASK, pytest.param(MIXTURE, marks=pytest.mark.slow)])
def test_same_seed_same_order_other_seed_other_order(name):
  def first(seed):
    return _batches(data.get_dataset(name, LENGTHS, "train", global_batch_size=4, shuffle=True,
                                     seed=seed, pack=True, num_epochs=None), 6)
  _assert_batches_equal(first(1), first(1))
  ids1, ids2 = _example_ids(first(1)), _example_ids(first(2))
  assert ids1 != ids2
  if name == MIXTURE:  # both tasks are sampled
    assert any(i < 200 for i in ids1) and any(i >= 200 for i in ids1)


def test_hosts_read_disjoint_shards_that_cover_the_data():
  seen = []
  for shard in range(2):
    ds = data.get_dataset(TASK, LENGTHS, "train", global_batch_size=4, shuffle=False, seed=0,
                          pack=False, num_epochs=1, shard_id=shard, num_shards=2)
    seen.append(_example_ids(list(ds.as_numpy_iterator())))
  assert not set(seen[0]) & set(seen[1])
  assert sorted(seen[0] + seen[1]) == [10 + i for i in range(N_EXAMPLES)]


def _iterator(seed=3):
  return data.DataIterator.from_task(TASK, LENGTHS, "train", global_batch_size=4, shuffle=True,
                                     seed=seed, pack=True, shard_id=0, num_shards=1)


@pytest.mark.slow
def test_iterator_restore_equals_continuing():
  it = _iterator()
  for _ in range(7):
    next(it)
  assert it.position == 7
  state = json.loads(json.dumps(it.state()))  # it travels as JSON in the checkpoint
  assert state["position"] == 7
  expected = [next(it) for _ in range(5)]
  resumed = _iterator()
  resumed.restore(state)
  assert resumed.position == 7
  _assert_batches_equal([next(resumed) for _ in range(5)], expected)
  assert resumed.position == 12


def test_iterator_state_is_the_same_on_every_host():
  # The primary host's saved state restores every host (each continues through its own shard).
  states = [data.DataIterator.from_task(TASK, LENGTHS, "train", 4, seed=3, shard_id=i,
                                        num_shards=2).state() for i in range(2)]
  assert states[0] == states[1]


def test_iterator_refuses_another_streams_state():
  it = _iterator(seed=3)
  next(it)
  with pytest.raises(ValueError, match="seed saved=3 now=4"):
    _iterator(seed=4).restore(it.state())


def test_data_layout_single_process():
  import jax  # pylint: disable=g-import-not-at-top
  from jax.sharding import Mesh, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
  assert data.data_layout(mesh, P("data"), 8) == data.DataLayout(0, 1, 8)


def test_layout_when_hosts_share_batch_rows():
  # 4 processes; the model axis spans pairs of processes, so pairs hold the same rows.
  rows = {0: set(range(0, 8)), 1: set(range(0, 8)), 2: set(range(8, 16)), 3: set(range(8, 16))}
  assert [data.layout_from_rows(rows, p) for p in range(4)] == [(0, 2), (0, 2), (1, 2), (1, 2)]
  # One process per shard: (process_index, process_count), ordered by rows.
  rows = {0: {4, 5}, 1: {0, 1}, 2: {2, 3}}
  assert [data.layout_from_rows(rows, p) for p in range(3)] == [(2, 3), (0, 3), (1, 3)]
  with pytest.raises(ValueError, match="non-contiguous"):
    data.layout_from_rows({0: {0, 2}, 1: {1, 3}}, 0)
  with pytest.raises(ValueError, match="unequal"):
    data.layout_from_rows({0: {0, 1, 2}, 1: {3}}, 0)


_GLOBAL_SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from xfer_t5x.runtime import data

    assert jax.device_count() == 8
    for shape, spec in [((4, 2), P("data")), ((8, 1), P("data")), ((2, 4), P(("data", "model")))]:
      mesh = Mesh(np.array(jax.devices()).reshape(*shape), ("data", "model"))
      layout = data.data_layout(mesh, spec, 16)
      assert layout == data.DataLayout(0, 1, 16), layout   # one process holds every row
      local = {"encoder_input_tokens": np.arange(16 * 5, dtype=np.int32).reshape(16, 5),
               "decoder_loss_weights": np.ones((16, 3), np.float32)}
      out = data.to_global(local, mesh, spec)
      for name, arr in out.items():
        assert arr.shape == local[name].shape, (name, arr.shape)
        assert arr.sharding == NamedSharding(mesh, P(*spec[:1])), arr.sharding
        np.testing.assert_array_equal(np.asarray(arr), local[name])
        rows = set()
        for shard in arr.addressable_shards:
          np.testing.assert_array_equal(np.asarray(shard.data), local[name][shard.index])
          rows.add(shard.index[0].indices(16)[:2])
        n_batch_shards = 16 // (shard.data.shape[0])
        assert len(rows) == n_batch_shards
      want = shape[0] if spec == P("data") else 8
      assert n_batch_shards == want, (shape, spec, n_batch_shards)
    print("OK")
""")


@pytest.mark.slow
def test_to_global_on_8_fake_devices():
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
  res = subprocess.run([sys.executable, "-c", _GLOBAL_SCRIPT], env=env, capture_output=True,
                       text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-4000:]
  assert res.stdout.strip().endswith("OK")
