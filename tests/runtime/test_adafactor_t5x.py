"""Adafactor's state is laid out as T5X lays it out (t5x/adafactor.py `_parse_rule`,
`_factored_dims`): matrices factored by size, `v_row` averaging away the largest dim (the later
one on a tie); scanned parameters by the logical rules, with the update's RMS taken per layer."""
import gin
import jax
import numpy as np
import pytest

from xfer_t5x.model import scan
from xfer_t5x.model.api import EncoderDecoderModel
from xfer_t5x.model.config import T5Config
from xfer_t5x.runtime import gin_utils, train_state
from xfer_t5x.runtime.optimizer import Adafactor, Factored, Full, learning_rate_schedule


def _config(model_file, **overrides):
  gin.clear_config()
  gin_utils.setup_gin([model_file], finalize=False)
  try:
    return T5Config().with_vocab(250100 if "small" in model_file else 300).replace(**overrides)
  finally:
    gin.clear_config()


def _flat_stats(stats):
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(
      stats, is_leaf=lambda x: isinstance(x, (Factored, Full)))[0]:
    out["/".join(str(getattr(k, "key", k)) for k in path)] = leaf
  return out


def _later_largest(shape):
  """The dim T5X's v_row averages away: the largest, the later one on a tie."""
  return len(shape) - 1 - int(np.argmax(np.array(shape)[::-1]))


def test_mt5_small_state_shapes_follow_t5x():
  model = EncoderDecoderModel(_config("models/mt5_small.gin"))
  optimizer = Adafactor(model.logical_axes())
  shapes = train_state.state_shapes(model, optimizer)
  stats = _flat_stats(shapes.opt_state.stats)
  params = scan.flatten(shapes.params)
  expected = {  # (v_row, v_col) as T5X's mT5-small checkpoints hold them
      "encoder/layers_0/attention/query/kernel": ((384,), (512,)),
      "encoder/layers_0/attention/out/kernel": ((384,), (512,)),
      "decoder/layers_7/encoder_decoder_attention/value/kernel": ((384,), (512,)),
      "encoder/layers_0/mlp/wi_0/kernel": ((512,), (1024,)),
      "encoder/layers_0/mlp/wo/kernel": ((512,), (1024,)),
      "token_embedder/embedding": ((512,), (250112,)),
      "decoder/logits_dense/kernel": ((512,), (250112,)),
  }
  for name, (v_row, v_col) in expected.items():
    leaf = stats[name]
    assert isinstance(leaf, Factored), name
    assert (leaf.v_row.shape, leaf.v_col.shape) == (v_row, v_col), name
  for name, shape in params.items():
    leaf = stats[name]
    shape = tuple(shape.shape)
    if len(shape) < 2 or sorted(shape)[-2] < 128:  # scales, relative position biases
      assert isinstance(leaf, Full) and leaf.v.shape == shape, name
      continue
    largest = _later_largest(shape)
    other = 1 - largest
    assert leaf.v_row.shape == (shape[other],) and leaf.v_col.shape == (shape[largest],), name


def test_factored_contents_on_a_tiny_model_with_min_dim_32():
  model = EncoderDecoderModel(_config("models/mt5_tiny.gin"))
  optimizer = Adafactor(model.logical_axes(), min_dim_size_to_factor=32,
                        learning_rate=learning_rate_schedule("constant", 1e-3))
  params = model.init(jax.random.PRNGKey(0))
  grads = jax.tree_util.tree_map(
      lambda p: jax.random.normal(jax.random.PRNGKey(p.size), p.shape), params)
  updates, state = optimizer.update(grads, optimizer.init(params), params)
  stats, flat_g = _flat_stats(state.stats), scan.flatten(grads)
  flat_p, flat_u = scan.flatten(params), scan.flatten(updates)
  checked = 0
  for name, g in flat_g.items():
    g2 = np.square(np.asarray(g, np.float64)) + 1e-30  # step 0: decay 0, v = g^2 + eps1
    leaf = stats[name]
    if g.ndim < 2 or sorted(g.shape)[-2] < 32:
      np.testing.assert_allclose(leaf.v, g2, rtol=1e-5)
      continue
    largest = _later_largest(g.shape)
    v_row, v_col = g2.mean(axis=largest), g2.mean(axis=1 - largest)
    np.testing.assert_allclose(leaf.v_row, v_row, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(leaf.v_col, v_col, rtol=1e-5, err_msg=name)
    # The update, computed as t5x/adafactor.py writes it.
    row_factor = np.expand_dims((v_row / v_row.mean()) ** -0.5, largest)
    col_factor = np.expand_dims(v_col ** -0.5, 1 - largest)
    y = np.asarray(g, np.float64) * row_factor * col_factor
    y /= max(1.0, np.sqrt(np.mean(y * y)))
    scale = 1e-3 * max(1e-3, np.sqrt(np.mean(np.square(np.asarray(flat_p[name], np.float64)))))
    np.testing.assert_allclose(flat_u[name], -scale * y, rtol=1e-5, atol=1e-9, err_msg=name)
    checked += 1
  assert checked >= 20  # every kernel and the embedding of the tiny model


def test_a_scanned_step_equals_the_unrolled_step():
  """Scanned layers carry a batched `layers` axis: T5X factors them by the rules and takes the
  clipping and parameter-scale RMS per layer, so the update is the unrolled one, stacked."""
  unrolled = EncoderDecoderModel(_config("models/mt5_tiny.gin"))
  scanned = EncoderDecoderModel(_config("models/mt5_tiny.gin", scan_layers=True))
  lr = learning_rate_schedule("constant", 1e-2)
  params = unrolled.init(jax.random.PRNGKey(1))
  grads = jax.tree_util.tree_map(
      lambda p: 3.0 * jax.random.normal(jax.random.PRNGKey(p.size + 7), p.shape), params)
  opt_u = Adafactor(unrolled.logical_axes(), min_dim_size_to_factor=32, learning_rate=lr)
  opt_s = Adafactor(scanned.logical_axes(), min_dim_size_to_factor=32, learning_rate=lr)
  to_scanned = lambda tree: scan.unflatten(scan.scan_params(scan.flatten(tree)))
  upd_u, _ = opt_u.update(grads, opt_u.init(params), params)
  p_s, g_s = to_scanned(params), to_scanned(grads)
  upd_s, state_s = opt_s.update(g_s, opt_s.init(p_s), p_s)
  expected = scan.flatten(to_scanned(upd_u))
  got = scan.flatten(upd_s)
  assert expected.keys() == got.keys()
  for name in expected:
    np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-9, err_msg=name)
  kernel = _flat_stats(state_s.stats)["encoder/layers/mlp/wi_0/kernel"]
  assert isinstance(kernel, Factored)  # [embed, layers, mlp]: rows embed, columns mlp
  assert kernel.v_row.shape == (64, 2) and kernel.v_col.shape == (2, 128)


@pytest.fixture(autouse=True)
def _clear_gin():
  yield
  gin.clear_config()
