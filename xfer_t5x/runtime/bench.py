"""`xfer-t5x bench`: train-step throughput and MFU of a model config on this machine.

Random tokens, Adafactor at T5X's settings, the real jit'd step (sharded over the default mesh).
MFU is stated against the best dense matmul of the run's dtype measured in the same invocation
(2048^3 random matrices, at least 10 repeats and 1 s, before and after the timed steps, float32
and bfloat16, each with its spread; PyTorch's float32 too if installed; on CPU the host's peak
is not multiplied by the number of fake devices): a benchmark prints figures, it asserts nothing.

  xfer-t5x bench --config bench            # RESEARCH.md's "bench" config
  xfer-t5x bench --config tiny --steps 50
  xfer-t5x bench --config small             # mT5-small at 512/128 (vocab 32128)
  xfer-t5x bench --peers --config tiny --config bench --report benchmarks/README.md
  xfer-t5x bench --config bench --steps 4 --profile /tmp/prof   # a trace, and its parts
  xfer-t5x bench --gin_file models/mt5_small.gin --batch_size 8 --inputs_length 512
"""
import json
import statistics
import time

import numpy as np

from xfer_t5x.runtime import gin_utils
from xfer_t5x.runtime.bench_peers import CpuWindow

# RESEARCH.md's peer-comparison configs: (model fields, batch, inputs length, targets length)
NAMED_CONFIGS = {
    "tiny": (dict(vocab_size=384, emb_dim=64, num_heads=4, head_dim=16, mlp_dim=128,
                  num_encoder_layers=2, num_decoder_layers=2), 16, 32, 32),
    "bench": (dict(vocab_size=32128, emb_dim=512, num_heads=8, head_dim=64, mlp_dim=1024,
                   num_encoder_layers=4, num_decoder_layers=4), 8, 256, 64),
    # mT5-small (gin/models/mt5_small.gin) at 512/128, with T5's 32128-entry vocabulary
    "small": (dict(vocab_size=32128, emb_dim=512, num_heads=6, head_dim=64, mlp_dim=1024,
                   num_encoder_layers=8, num_decoder_layers=8), 8, 512, 128),
}


def random_tokens(vocab_size: int, batch: int, inputs_length: int, targets_length: int):
  """(inputs, targets) int32 token ids drawn from seed 0: the same batch for this library's
  step and the Hugging Face peer's."""
  rng = np.random.RandomState(0)
  targets = rng.randint(2, vocab_size, (batch, targets_length)).astype(np.int32)
  inputs = rng.randint(2, vocab_size, (batch, inputs_length)).astype(np.int32)
  return inputs, targets


def train_batch(inputs, targets):
  """The host batch of a train step: the inputs, the targets, and the targets shifted right
  as the decoder's inputs."""
  from xfer_t5x.evaluation.batching import shift_right  # pylint: disable=g-import-not-at-top
  return {"encoder_input_tokens": inputs, "decoder_target_tokens": targets,
          "decoder_input_tokens": shift_right(targets)}


def describe(name: str) -> str:
  """One line for a named config: its sizes, batch and lengths."""
  f, b, li, lt = NAMED_CONFIGS[name]
  return (f"vocab {f['vocab_size']}, d {f['emb_dim']}, {f['num_encoder_layers']}+"
          f"{f['num_decoder_layers']} layers, batch {b}, {li}/{lt}")


def add_arguments(parser):
  parser.add_argument("--config", choices=sorted(NAMED_CONFIGS), default=None, action="append",
                      help="a named peer-comparison config (repeat with --peers); else the "
                      "gin-bound T5Config")
  parser.add_argument("--peers", action="store_true",
                      help="time the named configs side by side with Hugging Face MT5 (eager "
                      "and torch.compile), one process at a time (runtime/bench_peers.py)")
  parser.add_argument("--report", default=None,
                      help="with --peers: write the table between the markers of this markdown "
                      "file (e.g. benchmarks/README.md)")
  parser.add_argument("--breakdown", action="store_true",
                      help="also time the step's parts alone (forward loss, forward + backward, "
                      "the Adafactor update) to show where the step's time goes")
  parser.add_argument("--profile", default=None, metavar="DIR",
                      help="also trace a few steps with jax.profiler into DIR and print where "
                      "their time goes, per part of the model (runtime/bench_profile.py)")
  parser.add_argument("--dropout_rate", type=float, default=0.0,
                      help="dropout of the named configs (0.0, as the peers run; "
                      "runs/finetune.gin trains with 0.1)")
  parser.add_argument("--batch_size", type=int, default=None)
  parser.add_argument("--inputs_length", type=int, default=None)
  parser.add_argument("--targets_length", type=int, default=None)
  parser.add_argument("--vocab_size", type=int, default=32128,
                      help="vocabulary size for gin-bound configs (default 32128)")
  parser.add_argument("--steps", type=int, default=20, help="timed steps (after 2 warm-up)")
  parser.add_argument("--dtype", default="float32", help="activation dtype")
  parser.add_argument("--microbatches", type=int, default=1)
  parser.add_argument("--json", default=None, help="also write the figures to this file")
  gin_utils.add_gin_arguments(parser)


def build_step(model, optimizer, partitioner, microbatches: int = 1):
  """The step `bench` times: the trainer's (`train_step.make_train_step`, the trainer's
  defaults: dropout seed 0, dropout on where the config has a rate), sharded and donated."""
  from xfer_t5x.runtime.train_step import make_train_step  # pylint: disable=g-import-not-at-top
  return make_train_step(model, optimizer, partitioner, num_microbatches=microbatches,
                         dropout_seed=0, use_dropout=True)


def _median_seconds(fn, *args, repeats: int = 5) -> float:
  """Median wall time of a jitted call after one warm-up call."""
  import jax  # pylint: disable=g-import-not-at-top
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def breakdown(model, optimizer, partitioner, state, batch, step_seconds: float,
              repeats: int = 5):
  """Where a step's time goes, each part jitted alone on the same state and batch: forward (the
  loss), backward (value-and-grad minus forward), the optimizer (Adafactor's update and its
  application), and the rest of the step (the difference: what the fused step saves or adds,
  dispatch and the metrics). Seconds per part."""
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  with partitioner.activate():
    forward = jax.jit(lambda p, b: model.loss_fn(p, b)[0])
    grad = jax.jit(jax.value_and_grad(lambda p, b: model.loss_fn(p, b)[0]))
    grads = grad(state.params, batch)[1]

    def update(params, opt_state, g):
      updates, opt_state = optimizer.update(g, opt_state, params)
      return optax.apply_updates(params, updates), opt_state
    upd = jax.jit(update)
    t_forward = _median_seconds(forward, state.params, batch, repeats=repeats)
    t_grad = _median_seconds(grad, state.params, batch, repeats=repeats)
    t_update = _median_seconds(upd, state.params, state.opt_state, grads, repeats=repeats)
  return {"forward": t_forward, "backward": t_grad - t_forward, "optimizer": t_update,
          "rest_of_step": step_seconds - t_grad - t_update}


def _peaks(peak):
  """float32 and bfloat16 matmul peaks of one device, measured now (2048^3, random, >= 1 s)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return {"float32": peak.matmul_peak(2048, jnp.float32),
          "bfloat16": peak.matmul_peak(2048, jnp.bfloat16)}


def run(args) -> int:
  import jax  # pylint: disable=g-import-not-at-top
  from xfer_t5x.model.api import EncoderDecoderModel
  from xfer_t5x.model.config import T5Config
  from xfer_t5x.runtime import flops, peak, train_state
  from xfer_t5x.runtime.optimizer import Adafactor
  from xfer_t5x.runtime.partitioning import make_partitioner

  configs = list(args.config or [])
  if args.peers:
    from xfer_t5x.runtime import bench_peers  # pylint: disable=g-import-not-at-top
    if not configs:
      raise SystemExit("bench --peers: name the configs to compare, e.g. --config tiny "
                       "--config bench")
    return bench_peers.run_peers(configs, args.steps, args.report, args.json)
  if len(configs) > 1:
    raise SystemExit("bench: one --config at a time (several only with --peers)")
  name = configs[0] if configs else None
  gin_utils.setup_gin_from_args(args)
  if name:
    fields, b, li, lt = NAMED_CONFIGS[name]
    config = T5Config(**fields, dropout_rate=args.dropout_rate, dtype=args.dtype)
  else:
    config = T5Config().with_vocab(args.vocab_size).replace(dtype=args.dtype)
    b, li, lt = 8, 512, 128
  b = args.batch_size or b
  li = args.inputs_length or li
  lt = args.targets_length or lt
  model = EncoderDecoderModel(config)
  partitioner = make_partitioner()
  optimizer = Adafactor(model.logical_axes())
  state = train_state.init_state(model, optimizer, partitioner, jax.random.PRNGKey(0))
  step = build_step(model, optimizer, partitioner, args.microbatches)
  batch = jax.device_put(train_batch(*random_tokens(config.vocab_size, b, li, lt)),
                         partitioner.batch_sharding())
  peaks = {"before": _peaks(peak)}
  times = []
  for _ in range(2):  # warm-up: compile, first donation
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics["loss"])
  with CpuWindow() as window:
    for _ in range(args.steps):
      t = time.perf_counter()
      state, metrics = step(state, batch)
      jax.block_until_ready(metrics["loss"])
      times.append(time.perf_counter() - t)
  peaks["after"] = _peaks(peak)
  med = statistics.median(times)
  parts = breakdown(model, optimizer, partitioner, state, batch, med) if args.breakdown else None
  traced = None
  if args.profile:
    from xfer_t5x.runtime import bench_profile  # pylint: disable=g-import-not-at-top
    with partitioner.activate():
      compiled = step.jitted.lower(state, batch).compile()
      state, lines, traced = bench_profile.profile(compiled, state, batch, args.profile)
    print("\n".join(lines))
  step_flops = flops.train_step_flops(config, b, li, lt)
  # CPU devices (fake or not) share the host's cores: the host's peak is one device's; on an
  # accelerator every device adds its own.
  scale = 1 if jax.devices()[0].platform == "cpu" else jax.device_count()
  run_dtype = "bfloat16" if "bfloat16" in args.dtype else "float32"
  jax_peak = max(m.best for when in peaks.values() for d, m in when.items()
                 if d == run_dtype) * scale
  torch_peak = peak.torch_matmul_peak() if run_dtype == "float32" else None
  best_peak = max(p for p in (jax_peak, torch_peak) if p)
  for when, ms in peaks.items():
    for m in ms.values():
      print(f"matmul peak {when:6s}  {m.summary()}")
  out = {
      "config": name or "gin", "devices": jax.device_count(),
      "platform": jax.devices()[0].platform, "batch": b, "inputs_length": li,
      "targets_length": lt, "dtype": args.dtype, "median_step_ms": med * 1e3,
      "steps_per_second": 1 / med, "tokens_per_second": b * (li + lt) / med,
      "target_tokens_per_second": b * lt / med, "gflop_per_step": step_flops / 1e9,
      "achieved_gflops": step_flops / med / 1e9,
      "matmul_peak_gflops_jax": jax_peak / 1e9,
      "matmul_peak_dtype": run_dtype,
      "matmul_peaks": {when: {d: {"best_gflops": m.best / 1e9, "median_gflops": m.median / 1e9,
                                  "spread": m.spread, "repeats": len(m.seconds), "n": m.n}
                              for d, m in ms.items()} for when, ms in peaks.items()},
      "matmul_peak_gflops_torch": torch_peak / 1e9 if torch_peak else None,
      "mfu": step_flops / med / best_peak,
      "step_ms": [x * 1e3 for x in times],
      "other_cpu_cores": window.other_cores,
  }
  if traced:
    out["profile"] = traced
  if parts:
    out["breakdown_ms"] = {k: v * 1e3 for k, v in parts.items()}
    print("where the step goes (each part jitted alone): " + ", ".join(
        f"{k} {v * 1e3:.1f} ms ({100 * v / med:.0f}%)" for k, v in parts.items()))
  for k, v in out.items():
    if k not in ("matmul_peaks", "step_ms", "breakdown_ms", "profile"):
      print(f"{k:28s} {v:.4g}" if isinstance(v, float) else f"{k:28s} {v}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(out, f, indent=1)
  return 0
