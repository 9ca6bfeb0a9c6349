"""Gin on the command line, in T5X's idiom: `--gin_file`, `--gin.NAME=VALUE`, `--gin_search_paths`.

Every command that takes gin uses this module:

  parser = argparse.ArgumentParser()
  gin_utils.add_gin_arguments(parser)
  args = gin_utils.parse_args(parser, argv)   # args.gin_file, .gin_bindings, .gin_search_paths
  gin_utils.setup_gin_from_args(args)

argparse cannot declare `--gin.*`, so `extract_gin_bindings` takes them out of argv first (the
`xfer-t5x` dispatcher does the same before its own argparse).

Values of `--gin.NAME=VALUE` follow CONTRACTS.md: VALUE is first parsed as gin would parse it
(literals, `@ref`, `%MACRO`, and lists, tuples and dicts of them); only if that fails is it taken
as a string. So `--gin.MIXTURE_OR_TASK_NAME=xnli_train` and `--gin.MODEL_DIR=/tmp/x` need no
quotes, while `--gin.X='"literal"'`, `--gin.X=1e-3`, `--gin.X=None`, `--gin.X=[1,2]` and
`--gin.X=@foo()` keep their gin meaning.
"""
import argparse
import contextlib
import datetime
import difflib
import inspect
import io
import os
import pathlib
import re
import tokenize
from typing import Iterable, List, Optional, Sequence, Tuple

import gin

from xfer_t5x import fileio
from etils import epath
from gin import config_parser

import xfer_t5x

GIN_FLAG_PREFIX = "--gin."


def gin_dir() -> pathlib.Path:
  """The folder of the project's gin files.

  A wheel install carries them as `xfer_t5x/gin_files/`; a source checkout (or an editable
  install) has them in the repository's top-level `gin/`.
  """
  pkg = pathlib.Path(xfer_t5x.__file__).resolve().parent
  packaged = pkg / "gin_files"
  if packaged.is_dir():
    return packaged
  return pkg.parent / "gin"


# ------------------------------------------------------------------------------------------------
# Values of --gin.NAME=VALUE


class _AcceptAnyReference(config_parser.ParserDelegate):
  """Lets the parser accept `@name`, `@name()` and `%MACRO` without looking them up.

  Whether a referenced configurable exists is gin's business when the binding is parsed for real
  (with the configurables imported); here we only decide whether VALUE is gin syntax.
  """

  def configurable_reference(self, scoped_configurable_name, evaluate):
    return ("@", scoped_configurable_name, evaluate)

  def macro(self, macro_name):
    return ("%", macro_name)


def is_gin_value(text: str) -> bool:
  """True if `text` parses, entirely, as one gin value (literal, @ref, %macro or container)."""
  if not text.strip() or "\n" in text or "\r" in text:
    return False
  try:
    parser = config_parser.ConfigParser(io.StringIO(text.strip() + "\n"), _AcceptAnyReference())
    parser.parse_value()
    # The whole text must have been consumed: `3abc` parses `3` and stops at `abc`.
    return parser.current_token.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER)
  except Exception:  # pylint: disable=broad-except  (SyntaxError, tokenize.TokenError, ...)
    return False


def format_binding(name: str, value: str) -> str:
  """The gin binding statement for `--gin.NAME=VALUE` (VALUE as gin syntax, else as a string)."""
  name = name.strip()
  if not name:
    raise ValueError(f"empty name in '{GIN_FLAG_PREFIX}=...': write --gin.NAME=VALUE")
  if is_gin_value(value):
    return f"{name} = {value.strip()}"
  return f"{name} = {value!r}"


def extract_gin_bindings(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
  """Splits `argv` into (other arguments, gin binding statements).

  Accepts `--gin.NAME=VALUE` and `--gin.NAME VALUE`; argparse cannot declare `--gin.*` itself.
  Arguments after a bare `--` are left alone.
  """
  rest, bindings = [], []
  argv = list(argv)
  i = 0
  while i < len(argv):
    arg = argv[i]
    if arg == "--":
      rest.extend(argv[i:])
      break
    if arg.startswith(GIN_FLAG_PREFIX):
      body = arg[len(GIN_FLAG_PREFIX):]
      if "=" in body:
        name, value = body.split("=", 1)
      else:
        if i + 1 >= len(argv):
          raise ValueError(f"{arg} has no value: write {arg}=VALUE or {arg} VALUE")
        name, value = body, argv[i + 1]
        i += 1
      bindings.append(format_binding(name, value))
    else:
      rest.append(arg)
    i += 1
  return rest, bindings


def _split_paths(values: Optional[Iterable[str]]) -> List[str]:
  out = []
  for v in values or ():
    out.extend(p for p in v.split(",") if p)
  return out


def add_gin_arguments(parser: argparse.ArgumentParser) -> None:
  """Declares `--gin_file` and `--gin_search_paths` (and documents `--gin.NAME=VALUE`)."""
  group = parser.add_argument_group(
      "gin", "--gin.NAME=VALUE (or --gin.NAME VALUE) binds one parameter or macro, e.g. "
      "--gin.MODEL_DIR=/tmp/run; repeatable, applied after the files in order. VALUE is read as "
      "gin syntax (numbers, True, None, lists, @ref, %MACRO), or else as a plain string, so no "
      "quotes are needed")
  group.add_argument(
      "--gin_file", action="append", default=[], metavar="PATH",
      help="gin file (repeatable, applied in order). Relative paths are looked up in "
      "--gin_search_paths, then the current directory, then the packaged gin files "
      f"(e.g. models/mt5_tiny.gin); packaged files are in {gin_dir()}")
  group.add_argument(
      "--module", action="append", default=[], metavar="NAME",
      help="import this Python module before gin parses (e.g. one that registers your tasks with "
      "add_task); repeatable or comma-separated; the current directory is searched last. A gin "
      "file's `import NAME` does the same")
  group.add_argument(
      "--gin_search_paths", action="append", default=[], metavar="DIR[,DIR...]",
      help="folders searched for --gin_file and for gin `include` statements, before the "
      "current directory and the packaged gin files (comma-separated or repeatable)")


def parse_args(parser: argparse.ArgumentParser,
               argv: Sequence[str]) -> argparse.Namespace:
  """Parses argv with `parser` (which had `add_gin_arguments`) plus the `--gin.*` flags.

  The namespace gets `gin_bindings` (a list of binding statements, in command-line order) and
  `gin_search_paths` flattened to a list of folders.
  """
  rest, bindings = extract_gin_bindings(argv)
  args = parser.parse_args(rest)
  finish_namespace(args, bindings)
  return args


def finish_namespace(args: argparse.Namespace, bindings: Sequence[str]) -> argparse.Namespace:
  """Stores the extracted bindings in `args` and normalises the search paths."""
  args.gin_bindings = list(getattr(args, "gin_bindings", None) or []) + list(bindings)
  args.gin_search_paths = _split_paths(getattr(args, "gin_search_paths", None))
  return args


def parse_gin_args(argv: Sequence[str]) -> argparse.Namespace:
  """Parses just the gin arguments of `argv` (others are an error); handy in tests and scripts."""
  parser = argparse.ArgumentParser(add_help=False)
  add_gin_arguments(parser)
  return parse_args(parser, argv)


# ------------------------------------------------------------------------------------------------
# Files and setup


def search_paths(extra: Sequence[str] = ()) -> List[pathlib.Path]:
  """Where relative gin paths are looked up, in order: `extra`, the cwd, the packaged gin files."""
  out = [pathlib.Path(p).expanduser() for p in _split_paths(extra)]
  out += [pathlib.Path.cwd(), gin_dir()]
  return out


def resolve_gin_file(path: str, extra_search_paths: Sequence[str] = ()) -> str:
  """The file `path` names, looked up as `--gin_file` documents; error naming every place tried."""
  p = pathlib.Path(path).expanduser()
  if p.is_absolute():
    if p.is_file():
      return str(p)
    raise FileNotFoundError(f"--gin_file {path}: no such file")
  tried = []
  for base in search_paths(extra_search_paths):
    candidate = base / p
    tried.append(str(candidate))
    if candidate.is_file():
      return str(candidate)
  raise FileNotFoundError(
      f"--gin_file {path}: not found; looked in {tried}. Give an absolute path, a path relative "
      f"to the current directory or to --gin_search_paths, or one of the packaged files under "
      f"{gin_dir()} (e.g. models/mt5_tiny.gin)")


def _register_search_paths(extra: Sequence[str]) -> None:
  """Lets gin's `include 'x.gin'` statements find files in the same places as --gin_file."""
  # gin keeps a module-level list; avoid adding the same folder twice across calls.
  existing = set(getattr(gin.config, "_LOCATION_PREFIXES", []))
  for base in search_paths(extra):
    if str(base) not in existing:
      gin.add_config_file_search_path(str(base))
      existing.add(str(base))


class UnknownMacroError(ValueError):
  """A `--gin.NAME=value` macro that no gin file defines (a misspelling would be ignored)."""


class BindingValueError(ValueError):
  """A gin binding whose value has the wrong type or range (e.g. --gin.TRAIN_STEPS=abc)."""


def require_positive_int(binding: str, value, macro: Optional[str] = None, minimum: int = 1):
  """Raises BindingValueError naming the binding (and its run-file macro) unless `value` is an
  int >= minimum (a bool is not)."""
  if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
    return
  where = f"{binding}" + (f" (the run files' {macro}, --gin.{macro}=...)" if macro else "")
  raise BindingValueError(
      f"{where} is {value!r}; it must be an integer >= {minimum}, e.g. --gin."
      f"{macro or binding}={max(minimum, 1000) if 'steps' in binding else max(minimum, 8)}")


def setup_gin(files: Sequence[str] = (), bindings: Sequence[str] = (),
              search_paths: Sequence[str] = (), finalize: bool = True,
              skip_unknown: bool = False,
              check_macros: bool = False) -> None:  # pylint: disable=redefined-outer-name
  """Parses the gin files (resolved as `--gin_file` documents) and then the bindings.

  Args:
    files: gin file paths, in order.
    bindings: binding statements (as `extract_gin_bindings` returns them), applied after files.
    search_paths: extra folders for relative file paths and gin `include`s.
    finalize: lock the config afterwards (gin.finalize()).
    skip_unknown: passed to gin (False: an unknown configurable is an error).
    check_macros: refuse a binding of a macro (a name without a dot, by convention UPPER_CASE)
      that the files do not define and no other binding uses: gin would define it and nothing would
      read it, so a misspelled `--gin.LEARNING_RATEE=0.5` would train at the old rate.
  """
  if gin.config_is_locked():
    raise RuntimeError("gin config is already finalized; call gin.clear_config() first")
  _register_search_paths(search_paths)
  resolved = [resolve_gin_file(f, search_paths) for f in files]
  with _explained_gin_errors("a gin file"):
    gin.parse_config_files_and_bindings(resolved, [], finalize_config=False,
                                        skip_unknown=skip_unknown)
  bindings = _t5x_aliases(bindings)
  if check_macros:
    _check_macros(bindings, files)
  with _explained_gin_errors("a --gin binding"):
    gin.parse_config_files_and_bindings([], list(bindings), finalize_config=finalize,
                                        skip_unknown=skip_unknown)


class GinConfigError(ValueError):
  """A gin file or `--gin.` binding that gin cannot apply (an unknown configurable or parameter,
  a syntax error), named with the near names."""


_NO_PARAMETER = re.compile(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'")
_NO_CONFIGURABLE = re.compile(r"No configurable matching '([^']+)'")
_IN_FILE = re.compile(r'In file "([^"]+)", line (\d+)')


def _configurable_names() -> List[str]:
  selectors = gin.config._REGISTRY._selector_map  # pylint: disable=protected-access
  return sorted({s.rsplit(".", 1)[-1] for s in selectors})


def _parameters(name: str) -> List[str]:
  try:
    configurable = gin.config._REGISTRY.get_match(name)  # pylint: disable=protected-access
    return [p for p in inspect.signature(configurable.wrapped).parameters
            if p not in ("self", "args", "kwargs")]
  except (KeyError, ValueError, TypeError):
    return []


def explain_gin_error(e: Exception, what: str) -> Optional[str]:
  """A one-paragraph message for gin's error `e` while parsing `what`, or None if not gin's."""
  text = str(e)
  lines = [l.strip() for l in text.splitlines() if l.strip()]
  statement = lines[-1] if len(lines) >= 3 else ""
  in_file = _IN_FILE.search(text)
  where = (f"{in_file.group(1)}:{in_file.group(2)} ({statement})" if in_file else
           f"--gin.{statement.replace(' = ', '=')}" if statement else what)
  m = _NO_PARAMETER.search(text)
  if m:
    name, param = m.group(1), m.group(2)
    params = _parameters(name)
    near = difflib.get_close_matches(param, params, n=3, cutoff=0.5)
    hint = (f"did you mean {' or '.join(f'{name}.{p}' for p in near)}? " if near else "") + (
        f"Its parameters: {', '.join(params)}." if params else "")
    return (f"{where}: the configurable {name} has no parameter {param!r}; {hint} "
            "`xfer-t5x print-config` with the same gin files shows every binding in effect.")
  m = _NO_CONFIGURABLE.search(text)
  if m:
    name = m.group(1)
    near = difflib.get_close_matches(name.rsplit(".", 1)[-1], _configurable_names(), n=3,
                                     cutoff=0.6)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    return (f"{where}: no configurable named {name!r} is registered; {hint}A configurable from "
            "your own module needs the module imported first (--module NAME, or `import NAME` "
            "in a gin file).")
  if isinstance(e, SyntaxError) or "Unexpected" in text or "Malformed" in text:
    return (f"{where}: gin cannot parse it: {lines[0] if lines else text}. Write "
            "--gin.NAME=VALUE with a Python literal VALUE (quote strings inside dicts and lists), "
            "or fix the file's line.")
  return None


@contextlib.contextmanager
def _explained_gin_errors(what: str):
  try:
    yield
  except (ValueError, SyntaxError) as e:
    explained = explain_gin_error(e, what)
    if explained is None:
      raise
    raise GinConfigError(explained) from e


_MACRO_BINDING = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")

# T5X's macro names, bound on the command line as T5X users type them: each binds this library's
# macro where the files define ours and not T5X's.
T5X_MACROS = {"INITIAL_CHECKPOINT_PATH": "INITIAL_CHECKPOINT"}


def _defined_macros() -> List[str]:
  return sorted(name for name, selector in gin.config._CONFIG  # pylint: disable=protected-access
                if selector == "gin.macro")


def _t5x_aliases(bindings: Sequence[str]) -> List[str]:
  defined = set(_defined_macros())
  out = []
  for binding in bindings:
    m = _MACRO_BINDING.match(binding)
    ours = T5X_MACROS.get(m.group(1)) if m else None
    if ours and ours in defined and m.group(1) not in defined:
      binding = ours + binding[m.end(1):]
    out.append(binding)
  return out


def _check_macros(bindings: Sequence[str], files: Sequence[str]) -> None:
  defined = _defined_macros()
  used = " ".join(bindings)
  for binding in bindings:
    m = _MACRO_BINDING.match(binding)
    if not m or m.group(1) in defined or re.search(rf"%{m.group(1)}\b", used):
      continue
    name = m.group(1)
    near = difflib.get_close_matches(name, defined, n=3, cutoff=0.6)
    hint = (f"did you mean {' or '.join(near)}? " if near else "") + (
        f"The macros they define: {', '.join(defined)}." if defined else
        "They define no macros.")
    raise UnknownMacroError(
        f"--gin.{name}: no gin file given ({', '.join(files) or 'none'}) defines the macro "
        f"{name}, so nothing would read it; {hint} Bind a parameter by its full name "
        f"(e.g. --gin.train.batch_size=8) or add the file that defines {name}.")


def setup_gin_from_args(args: argparse.Namespace, finalize: bool = True) -> None:
  """`setup_gin` with the fields `parse_args` filled in (command-line macros checked)."""
  setup_gin(args.gin_file, args.gin_bindings, args.gin_search_paths, finalize=finalize,
            check_macros=True)


# ------------------------------------------------------------------------------------------------
# Files written into the model dir


def _join(model_dir, name: str) -> str:
  model_dir = os.fspath(model_dir)
  if "://" in model_dir:
    return model_dir.rstrip("/") + "/" + name
  return os.path.join(os.path.expanduser(model_dir), name)


def write_text_keeping_old(path, text: str) -> str:
  """Writes `text` to `path` atomically; a different existing file is kept as `path.<timestamp>`.

  `path` may be local or remote (gs://..., through etils.epath). Returns the path the old
  version was kept under, or `path` itself when nothing was kept.
  """
  path_str = os.fspath(path)
  remote = "://" in path_str
  p = epath.Path(path_str) if remote else pathlib.Path(path_str)
  kept = path_str
  if p.exists():
    if p.read_text() == text:
      return path_str
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    kept = f"{path_str}.{stamp}"
    p.rename(kept)
  fileio.atomic_write(path_str, text)
  return kept


def operative_config_text() -> str:
  """The operative gin config (every parameter of every configurable called so far)."""
  return gin.operative_config_str()


def write_operative_config(model_dir, text: Optional[str] = None) -> str:
  """Writes the operative config as `<model_dir>/config.gin` (atomic; keeps a differing old one).

  Call it after the configurables have run (model built, optimizer made), on the primary process
  only. Returns the path written.
  """
  path = _join(model_dir, "config.gin")
  write_text_keeping_old(path, operative_config_text() if text is None else text)
  return path


def write_model_info(model_dir, lines: Iterable[str]) -> str:
  """Writes `<model_dir>/model-info.txt`, one line per variable (the caller formats the lines)."""
  path = _join(model_dir, "model-info.txt")
  write_text_keeping_old(path, "".join(line.rstrip("\n") + "\n" for line in lines))
  return path
