"""The `xfer-t5x` command: one entry point, subcommands in T5X's idiom.

Each subcommand lives in its own module, which exposes `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their subcommand runs, so `--help` is fast
and a broken optional dependency of one command does not break the others.
"""
import argparse
import importlib
import os
import sys
import traceback

# name -> (module, one-line help)
SUBCOMMANDS = {
    "train": ("xfer_t5x.runtime.train_cmd", "train a model from gin files (pretrain, intermediate or target phase)"),
    "eval": ("xfer_t5x.evaluation.eval_cmd", "evaluate a checkpoint on tasks or mixtures, partitioned"),
    "infer": ("xfer_t5x.evaluation.infer_cmd", "decode or score inputs with a checkpoint"),
    "print-config": ("xfer_t5x.runtime.print_config_cmd", "print the operative gin config without running"),
    "convert": ("xfer_t5x.interop.convert_cmd", "convert checkpoints between Hugging Face, T5X and xfer_t5x"),
    "tasks": ("xfer_t5x.tasks.cli", "list, show and preview registered SeqIO tasks and mixtures"),
    "bench": ("xfer_t5x.runtime.bench", "benchmark train-step throughput and MFU for a model config"),
    "plan": ("xfer_t5x.launch.plan_cmd", "compile a run for a TPU topology here: memory per chip, step time, MFU, a fitting config"),
    "plan-report": ("xfer_t5x.launch.planning_report_cmd", "the committed planning report: each size's plan file compiled for its slice, and the study's bill"),
    "launch": ("xfer_t5x.launch.launch_cmd", "run the same xfer-t5x command on every host of a Cloud TPU slice or a GKE JobSet"),
    "grid": ("xfer_t5x.experiments.grid_cmd", "run or inspect the experiment grid (run, status)"),
    "results": ("xfer_t5x.experiments.results_cmd", "print the results table and export CSV"),
    "analyze": ("xfer_t5x.analysis.analyze_cmd", "transfer gain vs. linguistic distance report"),
    "recommend": ("xfer_t5x.analysis.recommend_cmd", "predict the best intermediate task for a language the grid did not evaluate"),
    "distances": ("xfer_t5x.analysis.distances_cmd", "print language distances from English (URIEL)"),
    "demo": ("xfer_t5x.experiments.demo", "the whole study in miniature on CPU (tiny models, local data)"),
}


MODULE_HELP = ("--module NAME (any subcommand, repeatable or comma-separated): import a Python "
               "module first, e.g. one that registers your own tasks with add_task; looked up on "
               "PYTHONPATH, then in the current directory. A gin file's `import NAME` does the "
               "same. An error that is your input or the machine's (a misspelled binding, a bad "
               "data file, a full disk) is one message with exit status 2; --traceback (any "
               "subcommand) or XFER_T5X_TRACEBACK=1 shows its traceback too.")


class ModuleImportError(ImportError):
  """A `--module` that cannot be found."""


def extract_modules(argv):
  """(argv without the --module flags, the module names in order)."""
  rest, modules, i = [], [], 0
  while i < len(argv):
    arg = argv[i]
    if arg == "--module" and i + 1 < len(argv):
      value, i = argv[i + 1], i + 2
    elif arg.startswith("--module="):
      value, i = arg[len("--module="):], i + 1
    else:
      rest.append(arg)
      i += 1
      continue
    modules += [m.strip() for m in value.split(",") if m.strip()]
  return rest, modules


def import_modules(modules):
  """Imports the user's modules (before gin parses), the current directory searched last."""
  if os.getcwd() not in sys.path:  # as `python -m` would, for gin's `import my_tasks` too
    sys.path.append(os.getcwd())
  for name in modules:
    try:
      importlib.import_module(name)
    except ModuleNotFoundError as e:
      if e.name is None or not (name == e.name or name.startswith(e.name + ".")):
        raise  # the module exists but imports something that does not
      raise ModuleImportError(
          f"--module {name}: no module named {e.name!r} on PYTHONPATH or in the current directory "
          f"({os.getcwd()}). Give the module's import name (my_tasks for my_tasks.py), run from "
          "its folder, or add the folder to PYTHONPATH.") from None


def build_parser(argv):
  parser = argparse.ArgumentParser(prog="xfer-t5x", description=__doc__.splitlines()[0],
                                   epilog=MODULE_HELP)
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  # Only import the module of the chosen subcommand.
  chosen = next((a for a in argv if not a.startswith("-")), None)
  for name, (module, help_text) in SUBCOMMANDS.items():
    p = sub.add_parser(name, help=help_text, description=help_text)
    if name == chosen:
      mod = importlib.import_module(module)
      mod.add_arguments(p)
      p.set_defaults(_run=mod.run)
  return parser


def main(argv=None):
  from xfer_t5x.runtime import host_memory  # pylint: disable=g-import-not-at-top
  try:  # before any thread starts: XLA:CPU's temporaries reused, not faulted in every step
    host_memory.configure()
  except ValueError as e:
    print(f"xfer-t5x: error: {e}", file=sys.stderr)
    return 2
  argv = list(sys.argv[1:] if argv is None else argv)
  if argv[:1] == ["train"]:  # a preemption during the imports and setup still exits cleanly
    from xfer_t5x.runtime import early_sigterm  # pylint: disable=g-import-not-at-top
    early_sigterm.install()
  from xfer_t5x import errors  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime import gin_utils  # pylint: disable=g-import-not-at-top
  passthrough = None  # `launch ... -- COMMAND`: the command goes to the workers untouched
  if argv[:1] == ["launch"] and "--" in argv:
    cut = argv.index("--")
    argv, passthrough = argv[:cut], argv[cut + 1:]
  argv, show_traceback = errors.traceback_requested(argv)
  if not show_traceback:
    errors.quiet_environment_errors()
  rest, modules = extract_modules(argv)
  rest, bindings = gin_utils.extract_gin_bindings(rest)
  parser = build_parser(rest)
  args = parser.parse_args(rest)
  gin_utils.finish_namespace(args, bindings)
  if passthrough is not None:
    args.command = passthrough
  if not getattr(args, "_run", None):
    parser.print_help()
    return 2
  try:
    import_modules(modules)
    return int(args._run(args) or 0)
  except Exception as e:  # pylint: disable=broad-except
    text = errors.message(e) if errors.is_user_error(e) else errors.environment_message(e)
    if text is None:
      raise
    if show_traceback:
      traceback.print_exc()
    print(f"xfer-t5x {args.command}: error: {text}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
