"""How the `xfer-t5x` command reports an error that is the user's input or the machine's state.

Such an error is one paragraph on stderr naming the cause, the file or binding, and the fix, with
exit status 2, instead of a traceback. `--traceback` (any subcommand) or `XFER_T5X_TRACEBACK=1`
shows the traceback as well, for debugging.

Two kinds:
- user errors: exceptions of the types `user_error_types()` lists, raised with their message
  already written for the user (a misspelled macro, an unknown task, a malformed data file, ...);
- the machine's state: an `OSError` anywhere in the exception's chain (or a TensorFlow or
  TensorStore error whose text is one) for a full disk, a read-only file system, a path that is a
  file where a folder belongs, or a permission refused: `environment_message` words it, naming the
  path from the error.
"""
import errno
import logging
import os
import re
from typing import Iterator, Optional, Tuple

TRACEBACK_FLAG = "--traceback"
TRACEBACK_ENV = "XFER_T5X_TRACEBACK"


def _optional(module: str, name: str):
  try:
    mod = __import__(module, fromlist=[name])
  except ImportError:
    return None
  return getattr(mod, name, None)


def user_error_types() -> Tuple[type, ...]:
  """Exceptions that are the user's input, printed as a message rather than a traceback."""
  names = [
      ("xfer_t5x.runtime.checkpoints", "CheckpointMismatchError"),
      ("xfer_t5x.runtime.data", "ResumeMismatchError"),
      ("xfer_t5x.runtime.model_dir", "ModelDirError"),
      ("xfer_t5x.runtime.model_dir", "ModelDirBusyError"),
      ("xfer_t5x.runtime.gin_utils", "BindingValueError"),
      ("xfer_t5x.runtime.gin_utils", "GinConfigError"),
      ("xfer_t5x.runtime.gin_utils", "UnknownMacroError"),
      ("xfer_t5x.runtime.initial_state", "InitialStateError"),
      ("xfer_t5x.tasks.registry", "UnknownTaskError"),
      ("xfer_t5x.tasks.registry", "VocabularyMismatchError"),
      ("xfer_t5x.tasks.vocab", "VocabularyFileError"),
      ("xfer_t5x.tasks.data_report", "FormatError"),
      ("xfer_t5x.tasks.data_report", "TooManyBadRowsError"),
      ("xfer_t5x.evaluation.examples", "EmptyTaskError"),
      ("xfer_t5x.interop.t5x_state", "OptimizerStateError"),
      ("xfer_t5x.interop.shapes", "CheckpointShapeError"),
      ("xfer_t5x.experiments.state", "StateDatabaseError"),
      ("xfer_t5x.results", "ResultsError"),
      ("xfer_t5x.cli", "ModuleImportError"),
  ]
  found = [_optional(module, name) for module, name in names]
  # FileNotFoundError covers MissingDataError and the files the user named.
  return tuple(t for t in found if t is not None) + (FileNotFoundError,)


def _chain(e: BaseException) -> Iterator[BaseException]:
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    yield e
    e = e.__cause__ or e.__context__


def is_user_error(e: BaseException) -> bool:
  """A user error, or one task's failed evaluation whose cause is one (named in the message)."""
  types = user_error_types()
  if isinstance(e, types):
    return True
  evaluation_error = _optional("xfer_t5x.evaluation.evaluator", "TaskEvaluationError")
  return (evaluation_error is not None and isinstance(e, evaluation_error) and
          isinstance(e.__cause__, types))


# errno -> (what happened, the fix); the path is filled in from the error.
_ENVIRONMENT = {
    errno.ENOSPC: ("the disk is full", "free space on that file system (`df -h`) or give a "
                   "MODEL_DIR on another one; a restart resumes from the last complete "
                   "checkpoint (a partly written one is ignored)"),
    errno.EDQUOT: ("the disk quota is exhausted", "free space within the quota or give a "
                   "MODEL_DIR elsewhere; a restart resumes from the last complete checkpoint"),
    errno.EROFS: ("the file system is read-only", "give a MODEL_DIR (or output folder) on a "
                  "writable file system"),
    errno.EACCES: ("permission denied", "give a folder you can write to, or fix its "
                   "permissions"),
    errno.EPERM: ("operation not permitted", "give a folder you can write to, or fix its "
                  "permissions"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "give a folder path (MODEL_DIR "
                    "and output dirs are folders)"),
    errno.EEXIST: ("a file is in the way where a folder belongs", "give a folder path (MODEL_DIR "
                   "and output dirs are folders), or move the file away"),
}
# How TensorFlow, TensorStore and Orbax word the same errors in their own exception types.
_TEXTS = ((errno.ENOSPC, "No space left on device"), (errno.EDQUOT, "Disk quota exceeded"),
          (errno.EROFS, "Read-only file system"))
_PATH = re.compile(r"((?:gs://|/)[^\s;:'\"]+)")


def environment_error(e: BaseException) -> Optional[Tuple[int, str]]:
  """(errno, path) of a disk-full / read-only / not-a-folder / permission error in e's chain."""
  for link in _chain(e):
    if isinstance(link, OSError) and link.errno in _ENVIRONMENT:
      return link.errno, str(link.filename or "")
  for link in _chain(e):
    text = str(link)
    for code, words in _TEXTS:
      if words in text:
        paths = _PATH.findall(text.split(words)[0])
        return code, max(paths, key=len) if paths else ""
  return None


def environment_message(e: BaseException) -> Optional[str]:
  """The one-paragraph message for an environment error in e's chain, or None."""
  found = environment_error(e)
  if found is None:
    return None
  code, path = found
  what, fix = _ENVIRONMENT[code]
  if code == errno.EEXIST and path and os.path.isfile(path):
    what = "it is a file, not a folder"
  where = f"cannot write {path}: " if path else "cannot write: "
  return f"{where}{what} ({os.strerror(code)}). Fix: {fix}."


_GIN_CALL_NOTE = re.compile(r"\n\s*In call to configurable '[^']*' \([^)]*\)\s*$")


def message(e: BaseException) -> str:
  """The error's text without gin's "In call to configurable ..." note."""
  text = str(e)
  while True:
    stripped = _GIN_CALL_NOTE.sub("", text)
    if stripped == text:
      return text.strip()
    text = stripped


class QuietEnvironmentErrors(logging.Filter):
  """Drops the traceback (keeping the line) of a logged disk-full / read-only error: Orbax's
  writer threads log one per file they fail to write, and the command prints the one message."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.exc_info and record.exc_info[1] is not None and environment_error(
        record.exc_info[1]):
      record.exc_info, record.exc_text = None, None
    return True


def quiet_environment_errors() -> None:
  """Installs QuietEnvironmentErrors on the loggers the libraries' writer threads use."""
  for name in ("absl", "orbax", "tensorflow", ""):
    logger = logging.getLogger(name)
    if not any(isinstance(f, QuietEnvironmentErrors) for f in logger.filters):
      logger.addFilter(QuietEnvironmentErrors())


def traceback_requested(argv) -> Tuple[list, bool]:
  """(argv without --traceback, whether a traceback was asked for by flag or environment)."""
  rest = [a for a in argv if a != TRACEBACK_FLAG]
  env = os.environ.get(TRACEBACK_ENV, "").strip().lower() not in ("", "0", "false", "no")
  return rest, len(rest) != len(argv) or env
