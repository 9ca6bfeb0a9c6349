"""Input resume without replay: every host's tf.data iterator is saved with the checkpoint
(`checkpoint_<step>/data/`), and a restart continues it, reading about one batch's worth of
examples before the first batch instead of every example seen so far. Where the host count
changed, or no iterator of this host was saved, the iterator replays and says why.

The source counts the examples it yields (tests/runtime/counting_task.py)."""
import gc
import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import finish_all, free_port
from tests.runtime import counting_task
from xfer_t5x.runtime import checkpoints, data

WORKER = os.path.join(os.path.dirname(__file__), "input_resume_worker.py")
SAVE_AT = 30


@pytest.fixture(scope="module", autouse=True)
def counting_tasks():
  counting_task.register()


def _iterator(name=counting_task.NAME, shard_id=0, num_shards=1):
  return data.DataIterator.from_task(name, counting_task.LENGTHS, "train", 8, shuffle=True,
                                     seed=5, pack=True, shard_id=shard_id, num_shards=num_shards,
                                     prefetch=0)


def _save(model_dir, it, with_iterator=True):
  import numpy as np  # pylint: disable=g-import-not-at-top
  with checkpoints.Checkpointer(model_dir, async_save=False) as c:
    c.save(SAVE_AT, {"w": np.zeros(2, np.float32)}, extra_json={"data": it.state()}, force=True,
           input_iterator=it if with_iterator else None)
    return c.input_iterator_dir(SAVE_AT)


def _advance(it, n=SAVE_AT):
  for _ in range(n):
    next(it)


def _quiet_counter():
  """Zeroes the counter once no dropped iterator's background stage can still read."""
  gc.collect()
  time.sleep(0.5)
  counting_task.READ[0] = 0


def test_resume_reads_one_batch_not_everything_seen(tmp_path):
  it = _iterator()
  _advance(it)
  native_dir = _save(tmp_path, it)
  assert os.listdir(native_dir) and any(
      n.startswith("process_0-of-1.shard_0-of-1") for n in os.listdir(native_dir))
  expected = [counting_task.example_ids(next(it)) for _ in range(3)]
  state = it.state() | {"position": SAVE_AT}
  del it

  resumed = _iterator()
  _quiet_counter()
  message = resumed.restore(state, native_dir)
  assert counting_task.READ[0] == 0  # restoring reads nothing
  assert resumed.resumed_by == "iterator checkpoint", message
  assert "nothing replayed" in message and "process_0-of-1" in message
  first = next(resumed)
  read = counting_task.READ[0]
  in_batch = len(counting_task.example_ids(first))
  assert read <= in_batch, (read, in_batch)   # at most the batch itself
  got = [counting_task.example_ids(first)] + [
      counting_task.example_ids(next(resumed)) for _ in range(2)]
  assert got == expected
  assert resumed.position == SAVE_AT + 3

  # The counter sees the difference: a replay reads every example of the first 30 batches.
  del resumed, first
  replay = _iterator()
  _quiet_counter()
  message = replay.restore(state, None)
  assert replay.resumed_by == "replay" and "no input iterator was saved" in message
  assert [counting_task.example_ids(next(replay)) for _ in range(3)] == expected
  assert counting_task.READ[0] >= SAVE_AT * 8 + read


def test_checkpoint_without_this_hosts_iterator_replays_and_names_the_file(tmp_path):
  it = _iterator()
  _advance(it, 5)
  native_dir = _save(tmp_path, it, with_iterator=False)
  expected = counting_task.example_ids(next(it))
  resumed = _iterator()
  message = resumed.restore({"position": SAVE_AT, "description": it.description}, native_dir)
  assert resumed.resumed_by == "replay"
  assert "process_0-of-1.shard_0-of-1 is not there" in message, message
  assert "no input iterators" in message
  assert f"replaying {SAVE_AT} batches" in message


def test_changed_host_count_replays_and_says_so(tmp_path):
  it = _iterator(shard_id=1, num_shards=2)
  _advance(it)
  native_dir = _save(tmp_path, it)
  now = _iterator()  # one host now
  message = now.restore(it.state(), native_dir)
  assert now.resumed_by == "replay"
  assert "split over 2 hosts when saved and is split over 1 now" in message, message
  assert now.position == SAVE_AT
  # The replay continues the one-host stream at the saved step.
  fresh = _iterator()
  _advance(fresh)
  assert counting_task.example_ids(next(now)) == counting_task.example_ids(next(fresh))


def test_another_stream_is_still_refused(tmp_path):
  it = _iterator()
  next(it)
  other = data.DataIterator.from_task(counting_task.NAME, counting_task.LENGTHS, "train", 8,
                                      seed=6, shard_id=0, num_shards=1)
  with pytest.raises(ValueError, match="seed saved=5 now=6"):
    other.restore(it.state(), None)


def test_unserialisable_pipeline_saves_the_checkpoint_and_replays(tmp_path, caplog):
  it = _iterator(counting_task.UNSERIALISABLE)
  _advance(it, 4)
  with caplog.at_level("WARNING"):
    native_dir = _save(tmp_path, it)
  assert "cannot be checkpointed" in caplog.text
  assert (tmp_path / f"checkpoint_{SAVE_AT}" / "state").is_dir()  # the state is saved anyway
  expected = counting_task.example_ids(next(it))
  resumed = _iterator(counting_task.UNSERIALISABLE)
  message = resumed.restore(it.state() | {"position": 4}, native_dir)
  assert resumed.resumed_by == "replay" and "is not there" in message, message
  assert counting_task.example_ids(next(resumed)) == expected


def _run_processes(n, model_dir, phase, out_dir):
  port = free_port()
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  outs = [out_dir / f"{phase}-{n}-{i}.json" for i in range(n)]
  procs = [subprocess.Popen([sys.executable, WORKER, str(n), str(i), str(port), str(model_dir),
                             phase, str(outs[i])], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for i in range(n)]
  finish_all(procs)
  return [json.loads(o.read_text()) for o in outs]


@pytest.mark.slow
def test_two_processes_resume_from_their_own_iterators(tmp_path):
  model_dir = tmp_path / "model"
  saved = _run_processes(2, model_dir, "save", tmp_path)
  names = sorted(os.listdir(model_dir / f"checkpoint_{SAVE_AT}" / "data"))
  assert [n for n in names if n.endswith(".index")] == [
      "process_0-of-2.shard_0-of-2.index", "process_1-of-2.shard_1-of-2.index"]
  assert all(s["read_before_save"] >= SAVE_AT * 4 for s in saved)

  resumed = _run_processes(2, model_dir, "resume", tmp_path)
  for s, r in zip(saved, resumed):
    assert r["resumed_by"] == "iterator checkpoint", r["message"]
    assert r["read_to_first_batch"] <= r["examples_in_first_batch"], r
    assert r["next"] == s["next"]                     # each host continues its own shard
    assert r["position"] == SAVE_AT + 3
  assert not set(sum(resumed[0]["next"], [])) & set(sum(resumed[1]["next"], []))

  # One process now: the saved iterators belong to two shards; it replays and says so.
  (alone,) = _run_processes(1, model_dir, "resume", tmp_path)
  assert alone["resumed_by"] == "replay"
  assert "split over 2 hosts when saved and is split over 1 now" in alone["message"]
  assert alone["read_to_first_batch"] >= SAVE_AT * 8
