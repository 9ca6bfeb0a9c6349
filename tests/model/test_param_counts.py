"""Parameter counts of the gin model sizes against RESEARCH.md's table (eval_shape only)."""
import pathlib

import gin
import jax
import numpy as np
import pytest

from xfer_t5x.model.api import EncoderDecoderModel
from xfer_t5x.model.config import T5Config

GIN_MODELS = pathlib.Path(__file__).resolve().parents[2] / "gin" / "models"
MT5_VOCAB = 250_112
# RESEARCH.md, "mT5": size -> (d_model, heads, head_dim, d_ff, layers, parameters).
TABLE = {
    "small": (512, 6, 64, 1024, 8, 300e6),
    "base": (768, 12, 64, 2048, 12, 582e6),
    "large": (1024, 16, 64, 2816, 24, 1.23e9),
    "xl": (2048, 32, 64, 5120, 24, 3.74e9),
    "xxl": (4096, 64, 64, 10240, 24, 12.9e9),
}


def config_from_gin(size, *bindings):
  gin.clear_config()
  try:
    gin.parse_config_files_and_bindings([str(GIN_MODELS / f"mt5_{size}.gin")], list(bindings))
    return T5Config()
  finally:
    gin.clear_config()


def count(config):
  abstract = EncoderDecoderModel(config).abstract_params()
  leaves = jax.tree_util.tree_leaves(abstract)
  assert all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves), "something was allocated"
  return sum(int(np.prod(x.shape)) for x in leaves)


@pytest.mark.parametrize("size", sorted(TABLE))
def test_parameter_count_matches_research_table(size):
  cfg = config_from_gin(size, f"T5Config.vocab_size={MT5_VOCAB}")
  d_model, heads, head_dim, d_ff, layers, expected = TABLE[size]
  assert (cfg.emb_dim, cfg.num_heads, cfg.head_dim, cfg.mlp_dim) == (d_model, heads, head_dim, d_ff)
  assert cfg.num_encoder_layers == cfg.num_decoder_layers == layers
  n = count(cfg)
  assert abs(n - expected) / expected < 0.01, f"mt5_{size}: {n:,} parameters vs {expected:,.0f}"


def test_parameter_count_formula_and_scan_agree():
  """The count is the T5.1.1 formula exactly, and scanning the layers does not change it."""
  cfg = config_from_gin("small", f"T5Config.vocab_size={MT5_VOCAB}")
  d, hd, f, n = cfg.emb_dim, cfg.num_heads * cfg.head_dim, cfg.mlp_dim, cfg.num_encoder_layers
  attn, mlp = 4 * d * hd, 3 * d * f
  enc_layer = attn + mlp + 2 * d
  dec_layer = 2 * attn + mlp + 3 * d
  expected = (2 * MT5_VOCAB * d + n * (enc_layer + dec_layer) + 2 * d
              + 2 * cfg.num_heads * cfg.relative_attention_num_buckets)
  assert count(cfg) == expected
  assert count(cfg.replace(scan_layers=True)) == expected
