"""Does a checkpoint fit the chosen model? Shape checks with errors that say what to do.

A checkpoint of another size is the most common restore failure in T5X's issue tracker. Every
loader here compares the checkpoint's parameter shapes with the model's before reading any
values, and on a mismatch raises `CheckpointShapeError` naming the parameter, both shapes, and
the known size (from `gin/models/mt5_*.gin`) that the checkpoint looks like, if any.
"""
import functools
import pathlib
import re
from typing import Dict, Mapping, Optional, Sequence, Tuple

from xfer_t5x.model import scan
from xfer_t5x.model.config import T5Config

Shapes = Mapping[str, Tuple[int, ...]]
ARCH_FIELDS = ("emb_dim", "num_heads", "head_dim", "mlp_dim", "num_encoder_layers",
               "num_decoder_layers")


class CheckpointShapeError(ValueError):
  """A checkpoint's parameters do not fit the model it is being loaded into."""


def _gin_models_dir() -> pathlib.Path:
  from xfer_t5x.runtime import gin_utils  # pylint: disable=g-import-not-at-top
  return gin_utils.gin_dir() / "models"


@functools.lru_cache(maxsize=None)
def known_sizes(models_dir: Optional[str] = None) -> Dict[str, Dict[str, int]]:
  """{"base": {"emb_dim": 768, ...}, ...} read from the `T5Config.X = N` lines of mt5_*.gin."""
  folder = pathlib.Path(models_dir) if models_dir else _gin_models_dir()
  out = {}
  for path in sorted(folder.glob("mt5_*.gin")):
    fields = dict(re.findall(r"^T5Config\.(\w+)\s*=\s*(\d+)\s*$", path.read_text(), re.M))
    arch = {k: int(v) for k, v in fields.items() if k in ARCH_FIELDS}
    if set(arch) == set(ARCH_FIELDS):
      out[path.stem[len("mt5_"):]] = arch
  return out


def model_shapes(config: T5Config, scanned: Optional[bool] = None) -> Dict[str, Tuple[int, ...]]:
  """{path: shape} of the model's parameters (eval_shape: nothing allocated), in the scanned or
  unrolled layout (default: the config's own)."""
  from xfer_t5x.model.api import EncoderDecoderModel  # pylint: disable=g-import-not-at-top
  scanned = config.scan_layers if scanned is None else scanned
  abstract = EncoderDecoderModel(config.replace(scan_layers=scanned)).abstract_params()
  return {k: tuple(v.shape) for k, v in scan.flatten(abstract).items()}


def architecture_of(shapes: Shapes) -> Dict[str, int]:
  """What the parameter shapes say about the architecture (either layer layout).

  Keys: vocab_size, emb_dim, num_heads, head_dim, mlp_dim, num_encoder_layers,
  num_decoder_layers, relative_attention_num_buckets; a key is absent where the shapes do not
  tell (e.g. a parameter is missing).
  """
  arch = {}
  emb = shapes.get("token_embedder/embedding")
  if emb is not None and len(emb) == 2:
    arch["vocab_size"], arch["emb_dim"] = emb
  rel = shapes.get("encoder/relpos_bias/rel_embedding")
  if rel is not None and len(rel) == 2:
    arch["num_heads"], arch["relative_attention_num_buckets"] = rel
  for name, shape in shapes.items():
    last = shape[-1] if shape else None
    if name.endswith("attention/query/kernel") and "num_heads" in arch and last:
      arch["head_dim"] = last // arch["num_heads"]
    if name.endswith("mlp/wi_0/kernel") and last:
      arch["mlp_dim"] = last
  for stack, key in (("encoder", "num_encoder_layers"), ("decoder", "num_decoder_layers")):
    n = scan.num_layers(shapes, stack)
    if n:
      arch[key] = n
  return arch


def matching_sizes(arch: Mapping[str, int]) -> Sequence[str]:
  """Known size names whose architecture equals `arch` (vocabulary not compared)."""
  return [name for name, fields in known_sizes().items()
          if all(arch.get(k) == v for k, v in fields.items())]


def describe(arch: Mapping[str, int]) -> str:
  keys = ("vocab_size",) + ARCH_FIELDS
  return ", ".join(f"{k}={arch[k]}" for k in keys if k in arch)


def _advice(ckpt_arch: Mapping[str, int], model_config: Optional[T5Config]) -> str:
  lines = [f"The checkpoint's architecture: {describe(ckpt_arch)}."]
  if model_config is not None:
    model_arch = {k: getattr(model_config, k) for k in ("vocab_size",) + ARCH_FIELDS}
    lines.append(f"The model's: {describe(model_arch)}.")
    if all(ckpt_arch.get(k) in (None, model_arch[k]) for k in ARCH_FIELDS):
      lines.append("Only the vocabulary differs: bind the vocabulary the checkpoint was trained "
                   "with (mT5's has 250,112 entries) or set T5Config.vocab_size.")
      return " ".join(lines)
  sizes = matching_sizes(ckpt_arch)
  if sizes:
    lines.append(f"It looks like mt5_{sizes[0]} (gin/models/mt5_{sizes[0]}.gin): choose that "
                 f"size (--model_size {sizes[0]} or --gin_file models/mt5_{sizes[0]}.gin).")
  else:
    lines.append("It matches none of the known sizes (" + ", ".join(known_sizes()) +
                 "); bind T5Config's fields to these values in a gin file of your own.")
  return " ".join(lines)


def check_shapes(found: Shapes, expected: Shapes, source: str,
                 model_config: Optional[T5Config] = None) -> None:
  """Raises CheckpointShapeError unless `found` has exactly the parameters and shapes `expected`.

  Both are flat {"encoder/layers_0/mlp/wi_0/kernel": shape} dicts in the same layer layout.
  `source` names the checkpoint in the message.
  """
  missing = sorted(set(expected) - set(found))
  extra = sorted(set(found) - set(expected))
  wrong = [(k, tuple(found[k]), tuple(expected[k])) for k in sorted(expected)
           if k in found and tuple(found[k]) != tuple(expected[k])]
  if not (missing or extra or wrong):
    return
  parts = [f"checkpoint {source} does not fit the model:"]
  if wrong:
    name, got, want = wrong[0]
    parts.append(f"parameter {name} has shape {got} in the checkpoint but {want} in the model"
                 + (f" (and {len(wrong) - 1} more parameters differ)." if len(wrong) > 1 else "."))
  if missing:
    parts.append(f"{len(missing)} parameters of the model are not in the checkpoint "
                 f"(first: {', '.join(missing[:3])}).")
  if extra:
    parts.append(f"{len(extra)} checkpoint parameters are not in the model "
                 f"(first: {', '.join(extra[:3])}).")
  parts.append(_advice(architecture_of(found), model_config))
  raise CheckpointShapeError(" ".join(parts))


def config_from_shapes(shapes: Shapes, base: Optional[T5Config] = None) -> T5Config:
  """A T5Config with the architecture the shapes show (other fields from `base`)."""
  arch = architecture_of(shapes)
  needed = ("vocab_size",) + ARCH_FIELDS
  absent = [k for k in needed if k not in arch]
  if absent:
    raise CheckpointShapeError(
        f"cannot tell {absent} from the checkpoint's parameters: is it an mT5 / T5.1.1 "
        "checkpoint? Choose the size explicitly (--model_size or --gin_file).")
  fields = {k: arch[k] for k in needed}
  fields["relative_attention_num_buckets"] = arch.get("relative_attention_num_buckets", 32)
  return (base or T5Config()).replace(**fields)
