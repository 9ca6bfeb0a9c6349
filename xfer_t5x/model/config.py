"""The mT5 (T5.1.1) architecture as one frozen dataclass, bound by gin model files."""
import dataclasses
from typing import Optional

import gin
import jax.numpy as jnp

REMAT_POLICIES = ("none", "full", "dots_saveable")
EMBEDDING_LOOKUPS = ("gather", "one_hot")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class T5Config:
  """Architecture of a T5.1.1 / mT5 encoder-decoder.

  Model gin files bind only these fields (architecture), e.g. `gin/models/mt5_base.gin`.
  `vocab_size=None` takes the size of the bound vocabulary, rounded up to a multiple of 128
  as T5X does.
  """
  vocab_size: Optional[int] = None
  emb_dim: int = 512
  num_heads: int = 6
  head_dim: int = 64
  mlp_dim: int = 1024
  num_encoder_layers: int = 8
  num_decoder_layers: int = 8
  dropout_rate: float = 0.1
  dtype: str = "bfloat16"  # activations; parameters are always float32
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  layer_norm_epsilon: float = 1e-6
  scan_layers: bool = False
  remat_policy: str = "none"
  embedding_lookup: str = "gather"  # "one_hot" is T5X's choice for TPU SPMD

  def __post_init__(self):
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(f"T5Config.remat_policy={self.remat_policy!r}: choose one of {REMAT_POLICIES}")
    if self.embedding_lookup not in EMBEDDING_LOOKUPS:
      raise ValueError(
          f"T5Config.embedding_lookup={self.embedding_lookup!r}: choose one of {EMBEDDING_LOOKUPS}")

  @property
  def activation_dtype(self):
    return jnp.dtype(self.dtype)

  def with_vocab(self, vocab_size: int) -> "T5Config":
    """This config with the vocabulary size fixed (padded to a multiple of 128, as T5X)."""
    if self.vocab_size is not None:
      return self
    padded = -(-vocab_size // 128) * 128
    return dataclasses.replace(self, vocab_size=padded)

  def replace(self, **kw) -> "T5Config":
    return dataclasses.replace(self, **kw)
