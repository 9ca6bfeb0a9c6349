"""Orbax checkpoints: layout, keep-N, complete-only, model mismatch, preemption, other meshes."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from xfer_t5x.runtime import checkpoints as ckpt


@flax.struct.dataclass
class _State:
  step: Any
  params: Any
  opt_state: Any


def _state(seed=0, w_shape=(4, 6)):
  rng = np.random.default_rng(seed)
  params = {"encoder": {"w": jnp.asarray(rng.normal(size=w_shape), jnp.float32),
                        "scale": jnp.asarray(rng.normal(size=(w_shape[1],)), jnp.float32)},
            "decoder": {"logits": jnp.asarray(rng.normal(size=(w_shape[1], 5)), jnp.float32)}}
  return _State(step=jnp.asarray(seed, jnp.int32), params=params,
                opt_state=optax.adafactor(1e-3).init(params))


def _abstract(tree):
  dev = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=dev), tree)


def _assert_same(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert np.asarray(x).dtype == np.asarray(y).dtype


def test_roundtrip_layout_and_extra_json(tmp_path):
  state = _state(3)
  with ckpt.Checkpointer(tmp_path, keep=3) as c:
    assert c.save(7, state, {"data": {"position": 7}, "config_sha256": "abc"})
    c.wait()
    assert (tmp_path / "checkpoint_7" / "state").is_dir()
    assert (tmp_path / "checkpoint_7" / "extra").exists()
    assert c.latest_step() == 7
  with ckpt.Checkpointer(tmp_path) as c:  # a new process would do this
    restored, extra = c.restore(None, _abstract(state))
  _assert_same(restored, state)
  assert extra == {"data": {"position": 7}, "config_sha256": "abc"}
  assert isinstance(restored, _State)


def test_keep_n_and_save_interval(tmp_path):
  with ckpt.Checkpointer(tmp_path, keep=2, save_interval_steps=2, async_save=False) as c:
    assert not c.save(1, _state(1))          # not on the interval
    assert c.save(2, _state(2))
    assert c.save(3, _state(3), force=True)  # forced (preemption, last step)
    assert c.save(4, _state(4))
    assert not c.save(4, _state(4), force=True)  # already saved: nothing to do
    c.wait()
    assert c.all_steps() == [3, 4]
  assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("checkpoint")) == [
      "checkpoint_3", "checkpoint_4"]


def test_latest_step_ignores_incomplete_checkpoints(tmp_path):
  with ckpt.Checkpointer(tmp_path, async_save=False) as c:
    c.save(1, _state(1))
    c.save(2, _state(2))
  # A save killed mid-write (Orbax's temporary name) and a step folder without commit markers.
  shutil.copytree(tmp_path / "checkpoint_2", tmp_path / "checkpoint_5.orbax-checkpoint-tmp-123")
  shutil.copytree(tmp_path / "checkpoint_2" / "state", tmp_path / "checkpoint_6" / "state")
  with ckpt.Checkpointer(tmp_path, async_save=False) as c:
    assert c.latest_step() == 2
    assert c.all_steps() == [1, 2]
    restored, _ = c.restore(None, _abstract(_state(0)))
    _assert_same(restored, _state(2))
    with pytest.raises(FileNotFoundError, match="checkpoint_6"):
      c.restore(6, _abstract(_state(0)))
    # The run goes on and saves the step whose write was interrupted.
    assert c.save(5, _state(5))
    assert c.latest_step() == 5


def test_no_checkpoint(tmp_path):
  with ckpt.Checkpointer(tmp_path) as c:
    assert c.latest_step() is None
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
      c.restore(None, _abstract(_state(0)))


def test_another_models_checkpoint_is_refused(tmp_path):
  with ckpt.Checkpointer(tmp_path, async_save=False) as c:
    c.save(10, _state(1, w_shape=(4, 6)))
    bigger = _abstract(_state(1, w_shape=(8, 6)))
    with pytest.raises(ckpt.CheckpointMismatchError) as e:
      c.restore(None, bigger)
  msg = str(e.value)
  assert "'params/encoder/w'" in msg
  assert "(4, 6) in the checkpoint but (8, 6) in the model" in msg
  assert "another model" in msg and "--gin.MODEL_DIR" in msg
  assert str(tmp_path / "checkpoint_10") in msg


def test_missing_variable_is_refused(tmp_path):
  with ckpt.Checkpointer(tmp_path, async_save=False) as c:
    state = _state(1)
    c.save(1, state)
    more = state.replace(params={**state.params, "extra_layer": {"w": jnp.zeros((2, 2))}})
    with pytest.raises(ckpt.CheckpointMismatchError, match="'params/extra_layer/w' of the model"):
      c.restore(1, _abstract(more))


def test_partial_restore_of_params(tmp_path):
  state = _state(4)
  with ckpt.Checkpointer(tmp_path, async_save=False) as c:
    c.save(1, state)
    got, _ = c.restore(1, {"params": _abstract(state.params)}, partial=True)
  _assert_same(got["params"], state.params)


def test_compare_trees_orders_parameters_first():
  with pytest.raises(ckpt.CheckpointMismatchError, match="'params/a' has shape"):
    ckpt.compare_trees({"opt/v": (1,), "params/a": (2,)}, {"opt/v": (3,), "params/a": (4,)}, "x")
  ckpt.compare_trees({"a": (1,), "b": (2,)}, {"a": (1,)}, "x", partial=True)
  with pytest.raises(ckpt.CheckpointMismatchError, match="only in the checkpoint"):
    ckpt.compare_trees({"a": (1,), "b": (2,)}, {"a": (1,)}, "x")


def test_preemption_flag_on_sigterm(tmp_path):
  before = signal.getsignal(signal.SIGTERM)
  flag = ckpt.PreemptionFlag().install()
  try:
    assert not flag.requested(0)
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.time() + 5
    while not flag.requested(1) and time.time() < deadline:
      time.sleep(0.01)
    assert flag.requested(1)
    with ckpt.Checkpointer(tmp_path, save_interval_steps=1000) as c:
      assert ckpt.save_on_preemption(flag, c, 3, _state(3), {"data": {"position": 3}})
      assert c.latest_step() == 3  # on disk when the helper returns
  finally:
    flag.uninstall()
  assert signal.getsignal(signal.SIGTERM) == before  # the old handler is back


_MESH_SCRIPT = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from xfer_t5x.runtime import checkpoints as ckpt

    assert jax.device_count() == 8, jax.devices()
    model_dir = sys.argv[1]
    specs = {"w": P("data", "model"), "v": P(None, "model"), "e": P("model", None), "s": P()}

    def mesh(a, b):
      return Mesh(np.array(jax.devices()).reshape(a, b), ("data", "model"))

    def values():
      rng = np.random.default_rng(0)
      return {"w": rng.normal(size=(8, 16)).astype(np.float32),
              "v": rng.normal(size=(3, 8)).astype(np.float32),
              "e": rng.normal(size=(16, 4)).astype(np.float32),
              "s": np.asarray(5, np.int32)}

    m = mesh(4, 2)
    state = {k: jax.device_put(v, NamedSharding(m, specs[k])) for k, v in values().items()}
    with ckpt.Checkpointer(model_dir) as c:
      c.save(1, {"params": state}, {"mesh": [4, 2]})
    for shape in [(2, 4), (8, 1)]:
      m2 = mesh(*shape)
      abstract = {"params": {k: jax.ShapeDtypeStruct(v.shape, v.dtype,
                                                     sharding=NamedSharding(m2, specs[k]))
                             for k, v in values().items()}}
      with ckpt.Checkpointer(model_dir) as c:
        got, extra = c.restore(None, abstract)
      assert extra == {"mesh": [4, 2]}
      for k, v in values().items():
        arr = got["params"][k]
        assert arr.sharding == NamedSharding(m2, specs[k]), (k, arr.sharding)
        np.testing.assert_array_equal(np.asarray(arr), v)
        for shard in arr.addressable_shards:
          np.testing.assert_array_equal(np.asarray(shard.data), v[shard.index])
    print("OK")
""")


@pytest.mark.slow
def test_restore_under_another_mesh(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
  res = subprocess.run([sys.executable, "-c", _MESH_SCRIPT, str(tmp_path / "run")], env=env,
                       capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-4000:]
  assert res.stdout.strip().endswith("OK")
