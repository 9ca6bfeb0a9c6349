"""`xfer-t5x plan`: compile a gin-configured run for a TPU slice on this host, before paying for it.

  xfer-t5x plan --gin_file models/mt5_small.gin --gin_file runs/finetune.gin \
    --gin_file partitioning/1d.gin --topology v5p:2x2x1

reads the run's shape from the gin files (architecture, batch, lengths, mesh, partitioning,
remat, scan, microbatches), AOT-compiles the trainer's own train step and the greedy decode for
the slice's devices (libtpu's compile-only topology; no TPU needed), and prints per device what
the compiler allocates against the chip's HBM, analytic and XLA FLOPs, the estimated step time,
tokens/s/chip and MFU. `--out` also writes everything as JSON. When the run does not fit, the
next options are compiled in turn until one does, and that configuration is printed as `--gin.`
flags (`--no_search` to stop at the first verdict). Exit status: 0 when the run fits as
configured, 1 when it does not (with or without a suggestion), 2 for bad input. Without libtpu (`pip install
'xfer_t5x[tpu]'`) the same run compiles for as many fake CPU devices, and says so.
"""
import json
import os
import sys

from xfer_t5x.runtime import gin_utils


def add_arguments(parser):
  parser.add_argument("--topology", required=True,
                      help="accelerator type (v5p-8, v4-128, v5litepod-256, v6e-64) or topology "
                           "(v5p:2x2x1, v4:4x4x4, v5e:16x16, v6e:8x8); cpu:N for N CPU devices")
  parser.add_argument("--out", default=None, help="write the plan as JSON here (plan.json)")
  parser.add_argument("--no_search", action="store_true",
                      help="compile the configured run only; do not look for a fitting one")
  parser.add_argument("--no_decode", action="store_true", help="compile the train step only")
  parser.add_argument("--no_step_estimate", action="store_true",
                      help="for a run with scan or microbatches, skip the loop-free compiles "
                           "that estimate its step time (about two more compiles)")
  parser.add_argument("--max_tries", type=int, default=8, help="compiles in the fit search")
  parser.add_argument("--timeout", type=float, default=1200.0,
                      help="seconds one compile may take before it counts as failed")
  parser.add_argument("--cache", default=None,
                      help="JSON-lines file of finished compiles, reused when the same "
                           "configuration is planned again")
  parser.add_argument("--vocab_size", type=int, default=None,
                      help="output vocabulary when T5Config.vocab_size is unbound "
                           "(default: the run's vocabulary, default_vocabulary.path, as train "
                           "sizes it; mT5's 250,112 for mT5's own file, which is not read)")
  gin_utils.add_gin_arguments(parser)


def _log(msg):
  print(msg, file=sys.stderr, flush=True)


def configured_shape(vocab_size=None):
  """(the run's shape, the operative gin text) from the gin config parsed now, which is then
  cleared; the text is part of the compile cache's key. ValueError: a shape gin cannot give."""
  import gin  # pylint: disable=g-import-not-at-top
  from xfer_t5x.launch import plan  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime import vocab_setup  # pylint: disable=g-import-not-at-top
  from xfer_t5x.tasks import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
  try:
    shape = plan.run_shape_from_gin(vocab_size or vocab_lib.model_vocab_size(
        vocab_setup.setup_vocabulary_and_tasks(register=False), plan.MT5_VOCAB_SIZE))
    return shape, gin.config_str()
  finally:
    gin.clear_config()


def run(args) -> int:
  # This process only reads gin and prints; compiles run in child processes with their own
  # environment. Keep TensorFlow's start-up lines and any TPU backend out of it.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  from xfer_t5x.launch import plan_report, plan_search  # pylint: disable=g-import-not-at-top
  import xfer_t5x.runtime.trainer  # pylint: disable=g-import-not-at-top,unused-import  (gin names)

  try:
    target = plan_search.target_for(args.topology)
  except ValueError as e:
    print(f"xfer-t5x plan: --topology: {e}", file=sys.stderr)
    return 2
  gin_utils.setup_gin_from_args(args, finalize=False)
  try:
    shape, gin_text = configured_shape(args.vocab_size)
  except ValueError as e:
    print(f"xfer-t5x {e}", file=sys.stderr)
    return 2
  gin_files = [gin_utils.resolve_gin_file(f, args.gin_search_paths) for f in args.gin_file]
  if not target.is_tpu and not args.topology.startswith("cpu:"):
    _log(f"plan: libtpu is not installed: compiling for {target.describe()}")
  try:
    attempts = plan_search.search(
        shape, target, gin_files=gin_files, gin_bindings=args.gin_bindings, gin_text=gin_text,
        with_decode=not args.no_decode, try_options=not args.no_search,
        max_tries=args.max_tries, timeout=args.timeout, cache=plan_search.Cache(args.cache),
        estimate_loops=not args.no_step_estimate, log=_log)
  except plan_search.TargetError as e:
    print(f"xfer-t5x {e}; --topology takes the slices Cloud TPU offers (e.g. v5p-8, v5e-4, "
          "v4-8, v6e-4 or larger)", file=sys.stderr)
    return 2
  doc = plan_report.plan_document(target, attempts)
  print(plan_report.render(doc))
  if args.out:
    from xfer_t5x import fileio  # pylint: disable=g-import-not-at-top
    fileio.atomic_write(args.out, json.dumps(doc, indent=1) + "\n")
    _log(f"plan: wrote {args.out}")
  # A pre-launch gate: 0 only when the run fits as configured (a suggestion is not the run).
  return 0 if doc["chosen"] == 0 else 1
