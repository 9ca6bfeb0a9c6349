"""`xfer-t5x convert`: checkpoints between Hugging Face, T5X and this library's Orbax layout.

  xfer-t5x convert --from hf --to orbax --src ./mt5-small-hf --dst ./model/checkpoint_0 --model_size small
  xfer-t5x convert --from t5x --to hf --src gs://t5-data/pretrained_models/t5x/mt5_base/checkpoint_1000000 --dst ./mt5-base-hf
  xfer-t5x convert --from orbax --to t5x --src ./model/checkpoint_2000 --dst ./t5x/checkpoint_2000

Formats: `hf` = a folder with config.json and model.safetensors (read also: sharded safetensors,
pytorch_model.bin, flax_model.msgpack); `t5x` = T5X's legacy folder (msgpack `checkpoint` +
zarr arrays; reading also accepts T5X's Orbax layout); `orbax` = the runtime's checkpoint
`<model_dir>/checkpoint_<step>` (Orbax item `state` = `{"params": ...}`), which training can
start from. Converting to t5x keeps the source's train state where it has one (a training
run's checkpoint, or a T5X checkpoint): the step and the Adafactor statistics, as T5X writes
them, so T5X (or `train.initial_state = 'train_state'`) continues it.

The model size comes from `--model_size` or `--gin_file` (the checkpoint must fit it; the error
names the size it looks like), or, given neither, from the checkpoint itself. The vocabulary
size, unless bound, is the checkpoint's. `T5Config.scan_layers` chooses the layer layout written
to t5x/orbax (default: unrolled, as T5X and the public mT5 checkpoints).
"""
import argparse
import logging

import numpy as np

FORMATS = ("hf", "t5x", "orbax")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  from xfer_t5x.runtime import gin_utils  # pylint: disable=g-import-not-at-top
  parser.description = __doc__.split("\n\n")[0]
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.epilog = __doc__.split("\n\n", 1)[1]
  parser.add_argument("--from", dest="src_format", required=True, choices=FORMATS,
                      help="format of --src (t5x reads both T5X layouts)")
  parser.add_argument("--to", dest="dst_format", required=True, choices=FORMATS,
                      help="format to write at --dst")
  parser.add_argument("--src", required=True, help="checkpoint to read (local or gs://)")
  parser.add_argument("--dst", required=True,
                      help="folder to write (must not hold a checkpoint already)")
  parser.add_argument("--model_size", default=None,
                      help="a known size (gin/models/mt5_<size>.gin: tiny, mini, small, base, "
                      "large, xl, xxl); or use --gin_file")
  parser.add_argument("--step", type=int, default=None,
                      help="training step recorded in a t5x checkpoint (default: the source's "
                      "step where it holds a train state, else 0)")
  gin_utils.add_gin_arguments(parser)


def resolve_config(args, src_shapes=None, hf_config=None):
  """The T5Config to convert with: from gin (--model_size / --gin_file / --gin.*) when given,
  otherwise from the source checkpoint (its config.json, or its parameter shapes)."""
  import gin  # pylint: disable=g-import-not-at-top
  from xfer_t5x.interop import hf, shapes  # pylint: disable=g-import-not-at-top
  from xfer_t5x.model.config import T5Config  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime import gin_utils  # pylint: disable=g-import-not-at-top
  files = list(getattr(args, "gin_file", None) or [])
  bindings = list(getattr(args, "gin_bindings", None) or [])
  if args.model_size:
    sizes = shapes.known_sizes()
    if args.model_size not in sizes:
      raise ValueError(f"--model_size {args.model_size}: choose one of {sorted(sizes)} "
                       "(gin/models/mt5_<size>.gin), or give --gin_file")
    files.insert(0, f"models/mt5_{args.model_size}.gin")
  if files or bindings:
    gin.clear_config()
    gin_utils.setup_gin(files, bindings, getattr(args, "gin_search_paths", None) or (),
                        finalize=False)
    config = T5Config()
    if config.vocab_size is None:
      vocab = (hf_config or {}).get("vocab_size") or (
          (src_shapes or {}).get("token_embedder/embedding", (None,))[0])
      config = config.replace(vocab_size=vocab)
    return config
  if hf_config is not None:
    return hf.config_from_hf(hf_config)
  return shapes.config_from_shapes(src_shapes)


def optimizer_state(src: str, config):
  """(step, AdafactorState as numpy) of the source's train state (this library's checkpoint or
  a T5X one with `param_states`), or None where it holds parameters only."""
  import jax  # pylint: disable=g-import-not-at-top
  from xfer_t5x.interop import t5x_state  # pylint: disable=g-import-not-at-top
  from xfer_t5x.model.api import EncoderDecoderModel  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime import initial_state  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime.optimizer import Adafactor  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime.partitioning import make_partitioner  # pylint: disable=g-import-not-at-top
  if config.scan_layers:
    logging.warning("%s: the optimizer state of a scanned layout is not converted", src)
    return None
  model = EncoderDecoderModel(config)
  optimizer = Adafactor(model.logical_axes())
  try:
    step, opt_state, _ = initial_state.optimizer_state(src, model, optimizer, make_partitioner())
  except (initial_state.InitialStateError, t5x_state.OptimizerStateError) as e:
    logging.info("no optimizer state converted: %s", e)
    return None
  return int(step), jax.tree_util.tree_map(np.asarray, opt_state)


def convert(args) -> str:
  """Runs one conversion; returns a one-line summary."""
  from xfer_t5x.interop import hf, shapes, t5x, writers  # pylint: disable=g-import-not-at-top
  from xfer_t5x.model import scan  # pylint: disable=g-import-not-at-top
  if args.src_format == "hf":
    state, hf_config = hf.read_hf_checkpoint(args.src)
    config = resolve_config(args, hf_config=hf_config)
    params = hf.hf_to_params(state, config, source=args.src)
  else:
    src_shapes = t5x.read_checkpoint_shapes(args.src)
    config = resolve_config(args, src_shapes=src_shapes)
    params = t5x.load_t5x_checkpoint(args.src, config)
  flat = scan.flatten(params)
  count = sum(int(np.prod(v.shape)) for v in flat.values())
  note = ""
  if args.dst_format == "hf":
    hf.save_hf(params, config, args.dst)
  elif args.dst_format == "t5x":
    train = optimizer_state(args.src, config) if args.src_format != "hf" else None
    step = args.step if args.step is not None else (train[0] if train else 0)
    writers.save_t5x_checkpoint(params, args.dst, step=step,
                                opt_state=train[1] if train else None)
    if train:
      note = f" with the Adafactor state of step {train[0]}"
  else:
    writers.save_params_orbax(params, args.dst, extra={
        "converted_from": f"{args.src_format}:{args.src}"})
  arch = shapes.describe(shapes.architecture_of({k: v.shape for k, v in flat.items()}))
  return (f"converted {len(flat)} parameters ({count:,} values; {arch}) from "
          f"{args.src_format} {args.src} to {args.dst_format} {args.dst}{note}")


def run(args) -> int:
  from xfer_t5x.interop.shapes import CheckpointShapeError  # pylint: disable=g-import-not-at-top
  try:
    print(convert(args))
  except (CheckpointShapeError, FileNotFoundError, FileExistsError, ValueError) as e:
    logging.error("%s", e)
    print(f"xfer-t5x convert: error: {e}")
    return 1
  return 0
