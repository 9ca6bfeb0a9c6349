"""T5X checkpoints: the real one T5X wrote, our writers, Orbax layouts, and refusals."""
import os

import msgpack
import numpy as np
import pytest
from flax import serialization

from tests.interop.hf_helpers import tiny_config
from xfer_t5x.interop import t5x, writers
from xfer_t5x.interop.shapes import CheckpointShapeError
from xfer_t5x.model import scan


def _assert_equal(flat, expected):
  assert set(flat) == set(expected), sorted(set(flat) ^ set(expected))[:5]
  for k, v in expected.items():
    assert flat[k].dtype == np.float32
    np.testing.assert_array_equal(flat[k], v, err_msg=k)


def test_real_t5x_checkpoint_loads_exactly(real_checkpoint):
  path, expected = real_checkpoint
  _assert_equal(scan.flatten(t5x.load_t5x_checkpoint(path, tiny_config())), expected)
  # The model dir (highest checkpoint_<step>) and the msgpack file name work too.
  model_dir = os.path.dirname(path)
  assert t5x.find_checkpoint(model_dir) == ("legacy", path)
  assert t5x.find_checkpoint(os.path.join(path, "checkpoint")) == ("legacy", path)


def test_real_t5x_checkpoint_loads_into_the_scanned_model(real_checkpoint):
  path, expected = real_checkpoint
  got = scan.flatten(t5x.load_t5x_checkpoint(path, tiny_config(scan_layers=True)))
  assert got["encoder/layers/mlp/wi_0/kernel"].shape == (64, 2, 128)
  _assert_equal(got, scan.scan_params(expected))
  _assert_equal(scan.unscan_params(got), expected)


def test_real_checkpoint_into_another_size_names_the_size_it_looks_like(real_checkpoint):
  path, _ = real_checkpoint
  small = tiny_config(emb_dim=512, num_heads=6, head_dim=64, mlp_dim=1024,
                      num_encoder_layers=8, num_decoder_layers=8)
  with pytest.raises(CheckpointShapeError) as e:
    t5x.load_t5x_checkpoint(path, small)
  msg = str(e.value)
  assert path in msg and "mt5_tiny" in msg and "--model_size tiny" in msg
  assert "has shape (64,) in the checkpoint but (512,) in the model" in msg
  with pytest.raises(CheckpointShapeError, match="Only the vocabulary differs"):
    t5x.load_t5x_checkpoint(path, tiny_config(vocab_size=512))


def test_legacy_writer_round_trips_and_matches_t5x_layout(real_checkpoint, tmp_path):
  path, expected = real_checkpoint
  params = scan.unflatten(expected)
  out = str(tmp_path / "checkpoint_20")
  writers.save_t5x_checkpoint(params, out, step=20)
  _assert_equal(scan.flatten(t5x.load_t5x_checkpoint(out, tiny_config())), expected)
  # Same files and same msgpack structure (keys of every target spec) as T5X's own checkpoint.
  ours = {n for n in os.listdir(out) if n.startswith("target.")}
  theirs = {n for n in os.listdir(path) if n.startswith("target.")}
  assert ours == theirs
  read = lambda p: serialization.msgpack_restore(open(os.path.join(p, "checkpoint"), "rb").read())
  mine, real = read(out), read(path)
  assert mine["version"] == real["version"] and int(mine["optimizer"]["state"]["step"]) == 20
  spec_keys = lambda tree: {k: sorted(v) for k, v in t5x._flatten_specs(tree["optimizer"]["target"]).items()}  # pylint: disable=protected-access
  assert spec_keys(mine) == spec_keys(real)
  with pytest.raises(FileExistsError):
    writers.save_t5x_checkpoint(params, out)


def test_inline_arrays_and_tensorflow_checkpoints(tmp_path, real_checkpoint):
  """T5X may keep small leaves inline in the msgpack; a Mesh-TF checkpoint is refused."""
  path, expected = real_checkpoint
  contents = serialization.msgpack_restore(open(os.path.join(path, "checkpoint"), "rb").read())
  target = contents["optimizer"]["target"]
  target["encoder"]["encoder_norm"]["scale"] = expected["encoder/encoder_norm/scale"] + 1.0
  for name in os.listdir(path):
    if name.startswith("target."):
      os.symlink(os.path.join(path, name), tmp_path / name)
  (tmp_path / "checkpoint").write_bytes(serialization.msgpack_serialize(contents))
  got = scan.flatten(t5x.load_t5x_checkpoint(str(tmp_path), tiny_config()))
  np.testing.assert_array_equal(got["encoder/encoder_norm/scale"],
                                expected["encoder/encoder_norm/scale"] + 1.0)
  tf_dir = tmp_path / "tf"
  tf_dir.mkdir()
  (tf_dir / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-100"\n')
  with pytest.raises(ValueError, match="TensorFlow"):
    t5x.load_t5x_checkpoint(str(tf_dir), tiny_config())


def test_scalable_t5_scanned_checkpoints_are_refused_with_the_reason(tmp_path):
  tree = {"version": 3, "optimizer": {"target": {"encoder": {"encoder": {
      "attention": {"query": {"kernel": {"driver": "zarr", "kvstore": {
          "driver": "file", "path": "target.encoder.encoder.attention.query.kernel"},
          "metadata": {"shape": [64, 2, 4, 16]}}}}}}}}}
  (tmp_path / "checkpoint").write_bytes(msgpack.packb(tree))
  with pytest.raises(ValueError, match="relative-position table per layer"):
    t5x.load_t5x_checkpoint(str(tmp_path), tiny_config())


def test_orbax_params_round_trip_in_both_layouts(real_checkpoint, tmp_path):
  _, expected = real_checkpoint
  dst = str(tmp_path / "model" / "checkpoint_5")
  writers.save_params_orbax(scan.unflatten(expected), dst, extra={"converted_from": "test"})
  assert t5x.find_checkpoint(str(tmp_path / "model")) == ("orbax", os.path.join(dst, "state"))
  _assert_equal(scan.flatten(t5x.load_t5x_checkpoint(dst, tiny_config())), expected)
  scanned = scan.flatten(t5x.load_t5x_checkpoint(dst, tiny_config(scan_layers=True)))
  _assert_equal(scanned, scan.scan_params(expected))
  with pytest.raises(FileExistsError):
    writers.save_params_orbax(scan.unflatten(expected), dst)
  with pytest.raises(ValueError, match="checkpoint_<step>"):
    writers.save_params_orbax(scan.unflatten(expected), str(tmp_path / "elsewhere"))


def test_runtime_checkpointer_starts_from_a_converted_checkpoint(real_checkpoint, tmp_path):
  """The runtime restores `{"params": ...}` (partial) from what save_params_orbax wrote."""
  import jax  # pylint: disable=g-import-not-at-top
  from xfer_t5x.model.api import EncoderDecoderModel  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime import checkpoints  # pylint: disable=g-import-not-at-top
  _, expected = real_checkpoint
  writers.save_params_orbax(scan.unflatten(expected), str(tmp_path / "checkpoint_9"),
                            extra={"converted_from": "t5x:test"})
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                          EncoderDecoderModel(tiny_config()).abstract_params())
  with checkpoints.Checkpointer(str(tmp_path), async_save=False) as ckptr:
    assert ckptr.latest_step() == 9
    state, extra = ckptr.restore(9, {"params": abstract}, partial=True)
  assert extra == {"converted_from": "t5x:test"}
  _assert_equal({k: np.asarray(v) for k, v in scan.flatten(state["params"]).items()}, expected)


def test_t5x_orbax_layout_loads(real_checkpoint, tmp_path):
  """T5X's Orbax checkpoints: checkpoint_<step>/state/ with params under `target`."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  _, expected = real_checkpoint
  state = {"target": scan.unflatten(expected),
           "state": {"step": np.int32(7), "param_states": {"token_embedder": {"embedding": {
               "v": np.ones((384, 64), np.float32)}}}}}
  ocp.PyTreeCheckpointer().save(str(tmp_path / "checkpoint_7" / "state"), state)
  assert t5x.find_checkpoint(str(tmp_path)) == ("orbax", str(tmp_path / "checkpoint_7" / "state"))
  _assert_equal(scan.flatten(t5x.load_t5x_checkpoint(str(tmp_path / "checkpoint_7"),
                                                     tiny_config())), expected)
  with pytest.raises(CheckpointShapeError, match="mt5_tiny"):
    t5x.load_t5x_checkpoint(str(tmp_path), tiny_config(mlp_dim=256))


def test_gcs_paths_map_to_the_gcs_driver_with_the_real_bucket():
  """Specs as T5X writes them, resolved against a gs:// folder (nothing is opened)."""
  spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": "target.a.kernel/"},
          "metadata": {"shape": [2]}}
  got = t5x.absolute_ts_spec(spec, "gs://my-bucket/models/mt5_base/checkpoint_5")
  assert got["kvstore"] == {"driver": "gcs", "bucket": "my-bucket",
                            "path": "models/mt5_base/checkpoint_5/target.a.kernel/"}
  old_style = {"driver": "zarr", "kvstore": {"driver": "gcs", "bucket": "t5x-dummy-bucket"},
               "path": "target.a.kernel", "metadata": {"shape": [2]}}
  got = t5x.absolute_ts_spec(old_style, "gs://b/ckpt")
  assert got["kvstore"] == {"driver": "gcs", "bucket": "b", "path": "ckpt/target.a.kernel"}
  assert "path" not in got
  local = t5x.absolute_ts_spec(spec, "/data/ckpt")
  assert local["kvstore"] == {"driver": "file", "path": "/data/ckpt/target.a.kernel/"}


def test_load_pretrained_dispatches_t5x_checkpoints(real_checkpoint):
  import xfer_t5x.interop as interop  # pylint: disable=g-import-not-at-top
  path, expected = real_checkpoint
  _assert_equal(scan.flatten(interop.load_pretrained(path, tiny_config())), expected)


def test_not_a_checkpoint_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="not a T5X checkpoint"):
    t5x.find_checkpoint(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="no such checkpoint"):
    t5x.find_checkpoint(str(tmp_path / "absent"))


@pytest.mark.slow
def test_independently_written_checkpoint_restores_sharded_on_a_4x2_mesh(run_on_8_devices):
  assert '"ok": true' in run_on_8_devices("sharded_restore_check.py")
