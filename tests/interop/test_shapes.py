"""Shape checks: known sizes from the gin files, architecture from shapes, error messages."""
import pytest

from xfer_t5x.interop import shapes
from xfer_t5x.model import scan
from xfer_t5x.model.config import T5Config


def _config(size, vocab=250112, **kw):
  return T5Config(vocab_size=vocab, **{**shapes.known_sizes()[size], **kw})


def test_known_sizes_come_from_the_model_gin_files():
  sizes = shapes.known_sizes()
  assert set(sizes) >= {"tiny", "mini", "small", "base", "large", "xl", "xxl"}
  assert sizes["base"] == dict(emb_dim=768, num_heads=12, head_dim=64, mlp_dim=2048,
                               num_encoder_layers=12, num_decoder_layers=12)
  assert sizes["xxl"]["mlp_dim"] == 10240 and sizes["tiny"]["emb_dim"] == 64


@pytest.mark.parametrize("size,scanned", [("tiny", False), ("small", True), ("xxl", True)])
def test_architecture_is_read_back_from_shapes(size, scanned):
  config = _config(size)
  found = shapes.model_shapes(config, scanned=scanned)  # eval_shape: nothing allocated
  arch = shapes.architecture_of(found)
  assert arch == dict(vocab_size=250112, relative_attention_num_buckets=32,
                      **shapes.known_sizes()[size])
  assert shapes.matching_sizes(arch)[0] == size
  assert shapes.config_from_shapes(found).mlp_dim == config.mlp_dim
  assert scan.is_scanned(found) == scanned


def test_mismatch_names_parameter_both_shapes_and_the_likely_size():
  found = shapes.model_shapes(_config("base"))
  with pytest.raises(shapes.CheckpointShapeError) as e:
    shapes.check_shapes(found, shapes.model_shapes(_config("small")), "gs://b/mt5_base",
                        _config("small"))
  msg = str(e.value)
  assert "gs://b/mt5_base" in msg
  assert "has shape (768,) in the checkpoint but (512,) in the model" in msg
  assert "mt5_base" in msg and "--model_size base" in msg
  assert "are not in the checkpoint" not in msg  # base has more layers, not fewer
  assert "checkpoint parameters are not in the model" in msg  # layers_8.. of base


def test_unknown_architecture_says_so():
  odd = shapes.model_shapes(_config("tiny", mlp_dim=96))
  with pytest.raises(shapes.CheckpointShapeError, match="matches none of the known sizes"):
    shapes.check_shapes(odd, shapes.model_shapes(_config("tiny")), "ckpt")


def test_matching_shapes_pass():
  s = shapes.model_shapes(_config("mini", vocab=384))
  shapes.check_shapes(s, dict(s), "ckpt")
