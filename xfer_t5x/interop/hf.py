"""Hugging Face `MT5ForConditionalGeneration` checkpoints <-> this model's parameters.

Reads a checkpoint directory in any of HF's formats (`model.safetensors`, sharded safetensors
with `model.safetensors.index.json`, PyTorch `pytorch_model.bin` (+ index), and the old Flax
`flax_model.msgpack`) and writes `model.safetensors` plus a `config.json` that
`MT5ForConditionalGeneration.from_pretrained` loads. Values are float32 numpy arrays.

`WEIGHT_TABLE` below is the one place that says how every weight maps. PyTorch `nn.Linear`
stores `[out, in]`; T5X kernels are `[in, out]`, hence the transposes. HF keeps the
relative-position table in block 0 of each stack as an embedding `[buckets, heads]`; T5X keeps
one `[heads, buckets]` table per stack. `shared.weight` is the input embedding of both stacks
(`encoder.embed_tokens` / `decoder.embed_tokens` are the same tensor); `lm_head.weight` is mT5's
untied output layer. HF's attention has no 1/sqrt(d) scaling either (T5 folds it into the query
initialisation), so no values change, only names and layouts.

transformers 5 forces `MT5Config.tie_word_embeddings=True`. A model made from a config therefore
has `lm_head` tied to `shared` (give it its own weight before comparing with mT5), while
`from_pretrained` of a checkpoint holding both (different) tensors keeps them separate; the
exported `config.json` says `tie_word_embeddings: false` for older transformers versions.
"""
import json
import logging
import os
import re
import struct
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from xfer_t5x import fileio
from xfer_t5x.interop import regions
from xfer_t5x.interop import shapes as shapes_lib
from xfer_t5x.model import scan
from xfer_t5x.model.config import T5Config

# (HF name, our parameter path, "T" = transpose the 2-D array, "" = as is). "{i}": layer index.
WEIGHT_TABLE: Tuple[Tuple[str, str, str], ...] = (
    ("shared.weight", "token_embedder/embedding", ""),                                   # [vocab, embed]
    ("lm_head.weight", "decoder/logits_dense/kernel", "T"),                              # [vocab, embed] -> [embed, vocab]
    ("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
     "encoder/relpos_bias/rel_embedding", "T"),                                          # [buckets, heads] -> [heads, buckets]
    ("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
     "decoder/relpos_bias/rel_embedding", "T"),
    ("encoder.final_layer_norm.weight", "encoder/encoder_norm/scale", ""),
    ("decoder.final_layer_norm.weight", "decoder/decoder_norm/scale", ""),
    # Encoder block i: layer.0 = self-attention, layer.1 = MLP.
    ("encoder.block.{i}.layer.0.layer_norm.weight", "encoder/layers_{i}/pre_attention_layer_norm/scale", ""),
    ("encoder.block.{i}.layer.0.SelfAttention.q.weight", "encoder/layers_{i}/attention/query/kernel", "T"),
    ("encoder.block.{i}.layer.0.SelfAttention.k.weight", "encoder/layers_{i}/attention/key/kernel", "T"),
    ("encoder.block.{i}.layer.0.SelfAttention.v.weight", "encoder/layers_{i}/attention/value/kernel", "T"),
    ("encoder.block.{i}.layer.0.SelfAttention.o.weight", "encoder/layers_{i}/attention/out/kernel", "T"),
    ("encoder.block.{i}.layer.1.layer_norm.weight", "encoder/layers_{i}/pre_mlp_layer_norm/scale", ""),
    ("encoder.block.{i}.layer.1.DenseReluDense.wi_0.weight", "encoder/layers_{i}/mlp/wi_0/kernel", "T"),
    ("encoder.block.{i}.layer.1.DenseReluDense.wi_1.weight", "encoder/layers_{i}/mlp/wi_1/kernel", "T"),
    ("encoder.block.{i}.layer.1.DenseReluDense.wo.weight", "encoder/layers_{i}/mlp/wo/kernel", "T"),
    # Decoder block i: layer.0 = self-attention, layer.1 = cross-attention, layer.2 = MLP.
    ("decoder.block.{i}.layer.0.layer_norm.weight", "decoder/layers_{i}/pre_self_attention_layer_norm/scale", ""),
    ("decoder.block.{i}.layer.0.SelfAttention.q.weight", "decoder/layers_{i}/self_attention/query/kernel", "T"),
    ("decoder.block.{i}.layer.0.SelfAttention.k.weight", "decoder/layers_{i}/self_attention/key/kernel", "T"),
    ("decoder.block.{i}.layer.0.SelfAttention.v.weight", "decoder/layers_{i}/self_attention/value/kernel", "T"),
    ("decoder.block.{i}.layer.0.SelfAttention.o.weight", "decoder/layers_{i}/self_attention/out/kernel", "T"),
    ("decoder.block.{i}.layer.1.layer_norm.weight", "decoder/layers_{i}/pre_cross_attention_layer_norm/scale", ""),
    ("decoder.block.{i}.layer.1.EncDecAttention.q.weight", "decoder/layers_{i}/encoder_decoder_attention/query/kernel", "T"),
    ("decoder.block.{i}.layer.1.EncDecAttention.k.weight", "decoder/layers_{i}/encoder_decoder_attention/key/kernel", "T"),
    ("decoder.block.{i}.layer.1.EncDecAttention.v.weight", "decoder/layers_{i}/encoder_decoder_attention/value/kernel", "T"),
    ("decoder.block.{i}.layer.1.EncDecAttention.o.weight", "decoder/layers_{i}/encoder_decoder_attention/out/kernel", "T"),
    ("decoder.block.{i}.layer.2.layer_norm.weight", "decoder/layers_{i}/pre_mlp_layer_norm/scale", ""),
    ("decoder.block.{i}.layer.2.DenseReluDense.wi_0.weight", "decoder/layers_{i}/mlp/wi_0/kernel", "T"),
    ("decoder.block.{i}.layer.2.DenseReluDense.wi_1.weight", "decoder/layers_{i}/mlp/wi_1/kernel", "T"),
    ("decoder.block.{i}.layer.2.DenseReluDense.wo.weight", "decoder/layers_{i}/mlp/wo/kernel", "T"),
)
# Copies of `shared.weight` (read only when `shared.weight` itself is absent), and keys that old
# checkpoints carry but no model uses.
EMBEDDING_ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
IGNORED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)

SAFETENSORS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _rows(config: T5Config):
  """(hf_name, our_path, transform) for every parameter of `config`'s model (unrolled)."""
  for hf, ours, tr in WEIGHT_TABLE:
    if "{i}" not in hf:
      yield hf, ours, tr
      continue
    n = config.num_encoder_layers if hf.startswith("encoder") else config.num_decoder_layers
    for i in range(n):
      yield hf.format(i=i), ours.format(i=i), tr


def _apply(x: np.ndarray, transform: str) -> np.ndarray:
  """The table's transform, giving a float32 C-ordered array of its own (one copy)."""
  x = np.asarray(x)
  return np.array(x.T if transform == "T" else x, dtype=np.float32, order="C", copy=True)


# --- config ------------------------------------------------------------------------------------
def config_from_hf(hf_config: Mapping[str, Any], base: Optional[T5Config] = None) -> T5Config:
  """The T5Config of an HF `config.json` (fields not in it come from `base`)."""
  proj = hf_config.get("feed_forward_proj", "gated-gelu")
  if proj != "gated-gelu":
    raise ValueError(f"config.json: feed_forward_proj={proj!r}; only mT5 / T5.1.1's 'gated-gelu' "
                     "is this model (T5 v1.0's 'relu' MLP is not)")
  heads = hf_config["num_heads"]
  return (base or T5Config()).replace(
      vocab_size=hf_config["vocab_size"], emb_dim=hf_config["d_model"], num_heads=heads,
      head_dim=hf_config["d_kv"], mlp_dim=hf_config["d_ff"],
      num_encoder_layers=hf_config["num_layers"],
      num_decoder_layers=hf_config.get("num_decoder_layers") or hf_config["num_layers"],
      relative_attention_num_buckets=hf_config.get("relative_attention_num_buckets", 32),
      relative_attention_max_distance=hf_config.get("relative_attention_max_distance", 128),
      layer_norm_epsilon=hf_config.get("layer_norm_epsilon", 1e-6))


def hf_config_dict(config: T5Config) -> Dict[str, Any]:
  """`config.json` for `MT5ForConditionalGeneration` (untied output layer, as mT5)."""
  return {
      "architectures": ["MT5ForConditionalGeneration"], "model_type": "mt5",
      "vocab_size": config.vocab_size, "d_model": config.emb_dim, "d_kv": config.head_dim,
      "d_ff": config.mlp_dim, "num_layers": config.num_encoder_layers,
      "num_decoder_layers": config.num_decoder_layers, "num_heads": config.num_heads,
      "relative_attention_num_buckets": config.relative_attention_num_buckets,
      "relative_attention_max_distance": config.relative_attention_max_distance,
      "dropout_rate": config.dropout_rate, "layer_norm_epsilon": config.layer_norm_epsilon,
      "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu",
      "dense_act_fn": "gelu_new", "is_gated_act": True, "is_encoder_decoder": True,
      "tie_word_embeddings": False, "use_cache": True, "pad_token_id": 0, "eos_token_id": 1,
      "decoder_start_token_id": 0, "torch_dtype": "float32", "dtype": "float32",
  }


# --- name mapping ------------------------------------------------------------------------------
def _template_regex(template: str):
  return re.compile("^" + re.escape(template).replace(re.escape("{i}"), r"(\d+)") + "$")


_TABLE_REGEXES = [(_template_regex(hf), ours, tr) for hf, ours, tr in WEIGHT_TABLE]


def _our_name(hf_name: str) -> Optional[Tuple[str, str]]:
  """(our path, transform) of an HF weight name, for any layer index; None if not in the table."""
  for regex, ours, tr in _TABLE_REGEXES:
    m = regex.match(hf_name)
    if m:
      return (ours.format(i=int(m.group(1))) if m.groups() else ours), tr
  return None


class _HFSource(regions.Source):
  """One HF tensor as our parameter: regions of the (memory-mapped) array, transposed for "T"."""

  def __init__(self, array, transform: str):
    self.array, self.transform = array, transform
    shape = tuple(np.shape(array))
    self.shape = tuple(reversed(shape)) if transform == "T" else shape

  def read(self, index):
    index = regions.full_index(index, len(self.shape))
    if self.transform == "T":
      return np.ascontiguousarray(_read_region(self.array, tuple(reversed(index))).T)
    return _read_region(self.array, index)


def _read_region(array, index) -> np.ndarray:
  """A float32 copy of one region of a checkpoint tensor (only its pages of a memory-mapped
  file are read); a function of its own so that tests can watch what is read."""
  return np.array(array[index], dtype=np.float32, order="C", copy=True)


def hf_sources(state: Mapping[str, Any], config: T5Config,
               source: str = "checkpoint") -> Dict[str, regions.Source]:
  """HF state dict (name -> array, e.g. memory-mapped) -> {our flat path: region source} in
  `config`'s layer layout, shapes checked against `config`; nothing is read yet.

  Raises CheckpointShapeError if the weights do not fit `config`, ValueError for names that are
  not MT5 weights.
  """
  state = dict(state)
  if "shared.weight" not in state:
    alias = next((a for a in EMBEDDING_ALIASES if a in state), None)
    if alias:
      state["shared.weight"] = state[alias]
  if "lm_head.weight" not in state and "shared.weight" in state:
    # A tied checkpoint: transformers 5's MT5 then computes logits with the embedding (unscaled).
    logging.warning("%s has no lm_head.weight: using shared.weight as the output layer, as a "
                    "tied HF model does (mT5 checkpoints have their own lm_head)", source)
    state["lm_head.weight"] = state["shared.weight"]
  sources, unknown = {}, []
  for name in state:
    if name in EMBEDDING_ALIASES or name in IGNORED:
      continue
    ours = _our_name(name)
    if ours is None:
      unknown.append(name)
    else:
      sources[ours[0]] = _HFSource(state[name], ours[1])
  if unknown:
    raise ValueError(f"{source}: weights {sorted(unknown)[:5]} are not MT5ForConditionalGeneration "
                     "weights (see WEIGHT_TABLE in xfer_t5x/interop/hf.py)")
  shapes_lib.check_shapes({k: v.shape for k, v in sources.items()},
                          shapes_lib.model_shapes(config, scanned=False), source, config)
  return regions.to_layout(sources, config.scan_layers)


def hf_to_params(state: Mapping[str, Any], config: T5Config, source: str = "checkpoint",
                 shardings: Optional[Mapping[str, Any]] = None):
  """HF state dict (name -> array) -> our nested float32 params, in `config`'s layer layout.

  With `shardings` (a params-shaped pytree of jax.sharding.Sharding) every parameter is a global
  jax.Array built from the regions this host's devices hold: a memory-mapped safetensors file is
  then read one region per device, never a whole sharded tensor. Without, numpy arrays.
  """
  flat_shardings = None if shardings is None else scan.flatten(shardings)
  return scan.unflatten(regions.materialise(hf_sources(state, config, source), flat_shardings,
                                            np.float32))


def params_to_hf(params: Mapping[str, Any], config: T5Config) -> Dict[str, np.ndarray]:
  """Our params (either layer layout) -> HF state dict, float32, contiguous."""
  flat = scan.to_layout(scan.flatten(params), scanned=False)
  return {hf: _apply(flat[ours], tr) for hf, ours, tr in _rows(config)}


# --- file formats ------------------------------------------------------------------------------
_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
              "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _st_dtype(name):
  if name == "BF16":
    import ml_dtypes  # pylint: disable=g-import-not-at-top
    return ml_dtypes.bfloat16
  if name not in _ST_DTYPES:
    raise ValueError(f"safetensors dtype {name} is not supported")
  return _ST_DTYPES[name]


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
  """Every tensor of a .safetensors file as numpy (memory-mapped; bfloat16 via ml_dtypes)."""
  with open(path, "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
  data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    start, end = info["data_offsets"]
    out[name] = data[start:end].view(_st_dtype(info["dtype"])).reshape(info["shape"])
  return out


def write_safetensors(tensors: Mapping[str, np.ndarray], path: str) -> None:
  """Writes float32/other numpy tensors in the safetensors format (names sorted, 8-byte header
  alignment, little-endian, C order)."""
  names = sorted(tensors)
  rev = {np.dtype(v): k for k, v in _ST_DTYPES.items()}
  header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
  for name in names:
    a = np.ascontiguousarray(tensors[name])
    if a.dtype not in rev:
      raise ValueError(f"{name}: dtype {a.dtype} cannot be written to safetensors here")
    blob = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    header[name] = {"dtype": rev[a.dtype], "shape": list(a.shape),
                    "data_offsets": [offset, offset + len(blob)]}
    offset += len(blob)
    blobs.append(blob)
  text = json.dumps(header, separators=(",", ":")).encode()
  text += b" " * (-len(text) % 8)
  with fileio.atomic_open(path, "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for blob in blobs:
      f.write(blob)


def _read_torch_bin(path: str) -> Dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"{path} is a PyTorch checkpoint: reading it needs torch "
                      "(pip install torch), or convert it to safetensors first") from e
  state = torch.load(path, map_location="cpu", weights_only=True)
  return {k: v.detach().to(torch.float32).numpy() if v.is_floating_point() else v.numpy()
          for k, v in state.items()}


def _read_flax_msgpack(path: str) -> Dict[str, np.ndarray]:
  """The old HF Flax format: nested {module: {param: array}} with `kernel` [in, out] and
  `embedding`; renamed here to PyTorch names and layouts so one table serves both."""
  from flax import serialization  # pylint: disable=g-import-not-at-top
  with open(path, "rb") as f:
    tree = serialization.msgpack_restore(f.read())
  if set(tree) == {"params"}:
    tree = tree["params"]
  out = {}
  for path_, value in scan.flatten(tree).items():
    parts = path_.split("/")
    leaf = parts[-1]
    name = ".".join(parts[:-1] + ["weight"])
    value = np.asarray(value)
    out[name] = value.T if leaf == "kernel" else value
  return out


def _sharded(folder: str, index_file: str, reader) -> Dict[str, np.ndarray]:
  with open(os.path.join(folder, index_file)) as f:
    weight_map = json.load(f)["weight_map"]
  out = {}
  for shard in sorted(set(weight_map.values())):
    out.update(reader(os.path.join(folder, shard)))
  return out


def read_hf_checkpoint(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
  """(state dict of numpy arrays, config.json dict) from an HF checkpoint directory."""
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{path}: not a directory (an HF checkpoint is a folder with "
                            f"{CONFIG_FILE} and model.safetensors or pytorch_model.bin)")
  cfg_path = os.path.join(path, CONFIG_FILE)
  if not os.path.exists(cfg_path):
    raise FileNotFoundError(f"{cfg_path} is missing: an HF checkpoint folder needs its config")
  with open(cfg_path) as f:
    hf_config = json.load(f)
  candidates = (
      (SAFETENSORS_FILE, read_safetensors),
      ("model.safetensors.index.json", lambda p: _sharded(path, p, read_safetensors)),
      ("pytorch_model.bin", _read_torch_bin),
      ("pytorch_model.bin.index.json", lambda p: _sharded(path, p, _read_torch_bin)),
      ("flax_model.msgpack", _read_flax_msgpack),
  )
  for name, reader in candidates:
    full = os.path.join(path, name)
    if os.path.exists(full):
      state = reader(name if name.endswith(".index.json") else full)
      return state, hf_config
  raise FileNotFoundError(f"{path}: no weights found; expected one of "
                          f"{[c[0] for c in candidates]}")


def load_hf(path: str, config: Optional[T5Config] = None,
            shardings: Optional[Mapping[str, Any]] = None):
  """(params, config): an HF MT5 checkpoint folder as this model's float32 params.

  Without `config`, the architecture comes from the checkpoint's config.json; with one, the
  checkpoint must fit it (CheckpointShapeError otherwise). With `shardings`, global jax.Arrays
  read region by region (safetensors are memory-mapped; a PyTorch `.bin` is loaded whole by
  torch first, so convert large ones to safetensors); without, numpy arrays.
  """
  state, hf_config = read_hf_checkpoint(path)
  if config is None:
    config = config_from_hf(hf_config)
  elif config.vocab_size is None:
    config = config.replace(vocab_size=hf_config["vocab_size"])
  return hf_to_params(state, config, source=path, shardings=shardings), config


def save_hf(params: Mapping[str, Any], config: T5Config, path: str) -> None:
  """Writes `model.safetensors` and `config.json` into the folder `path` (created)."""
  os.makedirs(path, exist_ok=True)
  write_safetensors(params_to_hf(params, config), os.path.join(path, SAFETENSORS_FILE))
  with open(os.path.join(path, CONFIG_FILE), "w") as f:
    json.dump(hf_config_dict(config), f, indent=2, sort_keys=True)
