"""`xfer-t5x print-config`: the gin config a command would run with, without running anything.

  xfer-t5x print-config --gin_file models/mt5_tiny.gin --gin_file runs/train.gin \\
      --gin.MODEL_DIR=/tmp/run --gin.MIXTURE_OR_TASK_NAME=xnli_train

Prints every binding the files and flags make (macros first), then the defaults of every
parameter of those configurables (and of the ones they reference with `@`) that no binding sets.
The output is itself a valid gin file.
"""
import argparse
import inspect
import sys
from typing import Dict, List, Tuple

import gin

from xfer_t5x.runtime import gin_utils


def add_arguments(parser: argparse.ArgumentParser) -> None:
  gin_utils.add_gin_arguments(parser)
  parser.add_argument("--no_defaults", action="store_true",
                      help="print only what the files and flags bind, not the unbound defaults")
  parser.add_argument("--output", default="-", metavar="PATH",
                      help="write the config to PATH instead of stdout")


def _configurables_in_config() -> List[Tuple[str, object]]:
  """(scope, Configurable) of every configurable bound or referenced in the parsed config."""
  # gin keeps the parsed config and its registry in module globals (pinned gin-config 0.5.0).
  cfg = gin.config._CONFIG  # pylint: disable=protected-access
  registry = gin.config._REGISTRY  # pylint: disable=protected-access
  seen: Dict[Tuple[str, str], object] = {}
  for scope, selector in cfg:
    seen.setdefault((scope, selector), registry[selector])
  for ref in gin.config.iterate_references(cfg):
    configurable = ref.configurable
    scope = "/".join(ref.scopes)  # gin-config 0.5.0: the reference's scope components
    seen.setdefault((scope, configurable.selector), configurable)
  return [(scope, c) for (scope, _), c in sorted(seen.items())]


def _defaults(configurable) -> Dict[str, object]:
  """Default values of the configurable's parameters that gin would let a binding set."""
  try:
    params = inspect.signature(configurable.wrapped).parameters
  except (TypeError, ValueError):  # not introspectable (a builtin); nothing to add
    return {}
  out = {}
  for name, p in params.items():
    if p.default is inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
      continue
    if configurable.allowlist and name not in configurable.allowlist:
      continue
    if configurable.denylist and name in configurable.denylist:
      continue
    if gin.config._is_literally_representable(p.default):  # pylint: disable=protected-access
      out[name] = p.default
  return out


def unbound_defaults_str() -> str:
  """Gin statements for the defaults that no binding overrides, grouped by configurable."""
  cfg = gin.config._CONFIG  # pylint: disable=protected-access
  macro_fn = gin.config.macro
  lines = []
  for scope, configurable in _configurables_in_config():
    if configurable.wrapped is macro_fn or configurable.name.startswith("gin."):
      continue
    bound = cfg.get((scope, configurable.selector), {})
    unbound = {k: v for k, v in _defaults(configurable).items() if k not in bound}
    if not unbound:
      continue
    name = (scope + "/" if scope else "") + configurable.name
    lines.append(f"# Defaults for {name}:")
    for k in sorted(unbound):
      lines.append(f"{name}.{k} = {unbound[k]!r}")
    lines.append("")
  if not lines:
    return ""
  header = ["# Defaults of the parameters above that no binding sets (what a run would use):",
            "# " + "=" * 78]
  return "\n".join(header + lines)


def resolved_config_str(with_defaults: bool = True) -> str:
  """The parsed config as gin text (bindings, then unbound defaults when asked)."""
  text = gin.config_str().rstrip() + "\n"
  if with_defaults:
    extra = unbound_defaults_str()
    if extra:
      text += "\n" + extra.rstrip() + "\n"
  return text


def run(args: argparse.Namespace) -> int:
  bindings = getattr(args, "gin_bindings", None) or []
  search = gin_utils._split_paths(args.gin_search_paths)  # pylint: disable=protected-access
  gin.clear_config()
  try:
    gin_utils.setup_gin(args.gin_file, bindings, search, finalize=False)
  except (FileNotFoundError, ValueError, SyntaxError, ImportError) as e:
    print(f"print-config: {e}", file=sys.stderr)
    return 1
  text = resolved_config_str(with_defaults=not args.no_defaults)
  if args.output == "-":
    sys.stdout.write(text)
  else:
    with open(args.output, "w", encoding="utf-8") as f:
      f.write(text)
  return 0


def main(argv=None) -> int:
  """Runs the command on `argv` (without the `print-config` word); `--gin.*` flags included."""
  parser = argparse.ArgumentParser(prog="xfer-t5x print-config", description=__doc__.splitlines()[0])
  add_arguments(parser)
  args = gin_utils.parse_args(parser, sys.argv[1:] if argv is None else argv)
  return run(args)


if __name__ == "__main__":
  sys.exit(main())
