"""T5X's optimizer state (step and Adafactor statistics) imported from the real T5X checkpoint
and from a factored T5X Orbax checkpoint the test writes in T5X's layout, exported back to T5X's
legacy layout, and refused with the parameter named where it does not fit."""
import jax
import numpy as np
import pytest

from tests.interop.hf_helpers import tiny_config
from xfer_t5x.interop import t5x, t5x_state, writers
from xfer_t5x.model import scan
from xfer_t5x.model.api import EncoderDecoderModel
from xfer_t5x.runtime import train_state
from xfer_t5x.runtime.optimizer import Adafactor, Factored, Full


def _run(min_dim=128, **overrides):
  model = EncoderDecoderModel(tiny_config(**overrides))
  optimizer = Adafactor(model.logical_axes(), min_dim_size_to_factor=min_dim)
  return model, optimizer, train_state.state_shapes(model, optimizer)


def _real_stats(ckpt_dir):
  """{param path: {stat: array}} read straight from the checkpoint's zarr files and msgpack."""
  step, sources = t5x_state._legacy_state(ckpt_dir)  # pylint: disable=protected-access
  out = {}
  for name, src in sources.items():
    param, stat = name.rsplit("/", 1)
    out.setdefault(param, {})[stat] = np.asarray(src.read(()))
  return step, out


def test_real_t5x_checkpoint_state_is_imported_exactly(real_checkpoint):
  path, _ = real_checkpoint
  _, optimizer, shapes = _run()
  step, state = t5x_state.load_optimizer_state(path, optimizer, shapes.opt_state)
  assert step == 20 and int(state.count) == 20
  real_step, real = _real_stats(path)
  assert real_step == 20 and len(real) == 52
  flat, _ = t5x_state._flatten(state.stats)  # pylint: disable=protected-access
  assert sorted(flat) == sorted(real)
  for name, leaf in flat.items():
    assert isinstance(leaf, Full), name  # the tiny model is not factored at 128
    np.testing.assert_array_equal(leaf.v, real[name]["v"], err_msg=name)
    assert real[name]["v_row"].shape == real[name]["v_col"].shape == (1,)
    assert float(np.abs(leaf.v).max()) > 0  # real statistics, not zeros


def _t5x_orbax_checkpoint(folder, params, stats, step):
  """A T5X Orbax checkpoint (checkpoint_<step>/state/: `target` and `state`), as T5X lays it
  out: every parameter has v_row, v_col, v and m, the unused ones shape-(1,) placeholders."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  placeholder = np.zeros((1,), np.float32)
  param_states = {}
  for name, leaf in stats.items():
    entry = {"v_row": placeholder, "v_col": placeholder, "v": placeholder, "m": placeholder}
    entry.update({k: np.asarray(v) for k, v in leaf.items()})
    param_states[name] = entry
  tree = {"target": scan.unflatten({k: np.asarray(v) for k, v in params.items()}),
          "state": {"step": np.int32(step), "param_states": scan.unflatten(
              {f"{p}/{k}": v for p, e in param_states.items() for k, v in e.items()})}}
  path = folder / f"checkpoint_{step}" / "state"
  ocp.PyTreeCheckpointer().save(str(path), tree)
  return str(folder / f"checkpoint_{step}")


def _random_stats(shapes, rng):
  """{param path: {stat: array}} of random positive statistics of this optimizer's shapes."""
  flat, _ = t5x_state._flatten(shapes.opt_state.stats)  # pylint: disable=protected-access
  out = {}
  for name, leaf in flat.items():
    names = ("v_row", "v_col") if isinstance(leaf, Factored) else ("v",)
    out[name] = {k: rng.uniform(0.1, 2.0, s.shape).astype(np.float32) for k, s in zip(names, leaf)}
  return out


def test_factored_orbax_state_imports_and_exports_back(real_checkpoint, tmp_path):
  _, expected_params = real_checkpoint
  _, optimizer, shapes = _run(min_dim=32)
  stats = _random_stats(shapes, np.random.default_rng(0))
  assert sum("v_row" in s for s in stats.values()) >= 20  # kernels and embeddings factored
  path = _t5x_orbax_checkpoint(tmp_path / "t5x", expected_params, stats, step=1000)
  step, state = t5x_state.load_optimizer_state(path, optimizer, shapes.opt_state)
  assert step == 1000
  flat, _ = t5x_state._flatten(state.stats)  # pylint: disable=protected-access
  for name, leaf in flat.items():
    for stat, value in stats[name].items():
      np.testing.assert_array_equal(getattr(leaf, stat), value, err_msg=f"{name}/{stat}")
  # Exported to T5X's legacy layout and read back: the same values, T5X's placeholders.
  out = str(tmp_path / "exported" / "checkpoint_1000")
  writers.save_t5x_checkpoint(scan.unflatten(expected_params), out, step=1000, opt_state=state)
  step2, state2 = t5x_state.load_optimizer_state(out, optimizer, shapes.opt_state)
  assert step2 == 1000
  for (name, a), b in zip(flat.items(), t5x_state._flatten(state2.stats)[0].values()):  # pylint: disable=protected-access
    for x, y in zip(a, b):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
  _, raw = _real_stats(out)
  kernel = raw["encoder/layers_0/mlp/wi_0/kernel"]
  assert kernel["v"].shape == kernel["m"].shape == (1,) and kernel["v_row"].shape == (64,)
  params = scan.flatten(t5x.load_t5x_checkpoint(out, tiny_config()))
  for name, value in expected_params.items():
    np.testing.assert_array_equal(params[name], value)


def test_sharded_import_on_the_run_mesh(real_checkpoint):
  from xfer_t5x.runtime.partitioning import make_partitioner  # pylint: disable=g-import-not-at-top
  path, _ = real_checkpoint
  model, optimizer, shapes = _run()
  partitioner = make_partitioner()
  shardings = train_state.state_shardings(model, optimizer, partitioner).opt_state
  _, state = t5x_state.load_optimizer_state(path, optimizer, shapes.opt_state, shardings)
  _, real = _real_stats(path)
  leaf = t5x_state._flatten(state.stats)[0]["decoder/logits_dense/kernel"]  # pylint: disable=protected-access
  assert isinstance(leaf.v, jax.Array)
  np.testing.assert_array_equal(np.asarray(leaf.v), real["decoder/logits_dense/kernel"]["v"])


def test_state_that_does_not_fit_names_the_parameter(real_checkpoint):
  path, _ = real_checkpoint
  _, optimizer, shapes = _run(min_dim=32)  # factored here, unfactored in the checkpoint
  with pytest.raises(t5x_state.OptimizerStateError,
                     match=r"decoder/.*: its v_row is a placeholder .*min_dim_size_to_factor=32"):
    t5x_state.load_optimizer_state(path, optimizer, shapes.opt_state)
  _, optimizer, shapes = _run(scan_layers=True)
  with pytest.raises(t5x_state.OptimizerStateError, match="scanned model"):
    t5x_state.load_optimizer_state(path, optimizer, shapes.opt_state)
