"""Bad-input accounting for the file sources (CONTRACTS.md "Bad input").

Every file a source reads gets a `FileCounter`:
- rows the dataset documents as unlabeled (SNLI's `-`, a test split published without labels)
  are filtered and counted as `unlabeled`, never errors;
- rows that break the format (missing field, unknown label, empty text, token/tag mismatch) are
  skipped and counted as `malformed`, with the first few `file:line` locations and reasons; more
  than 1% malformed rows in one file raises `TooManyBadRowsError`;
- a file that cannot be read as its format at all raises `FormatError` at once, naming the path,
  the line and the format expected.

The counts of every file read in this process are kept in one report (`data_report()`), logged
once per file, and carry the file's sha256 so a run can record the data version it read.
"""
import collections
import dataclasses
import hashlib
import logging
import threading
from typing import Dict, List, Optional, Sequence, Tuple

MAX_LOCATIONS = 5
MAX_BAD_FRACTION = 0.01


class FormatError(ValueError):
  """A file that cannot be read as its format at all."""

  def __init__(self, path: str, line: Optional[int], expected: str, detail: str = ""):
    where = f"{path}:{line}" if line else path
    msg = f"{where}: cannot read this file as {expected}"
    if detail:
      msg += f" ({detail})"
    super().__init__(msg)
    self.path, self.line, self.expected = path, line, expected


class TooManyBadRowsError(ValueError):
  """More than 1% of a file's rows break its format."""


class MissingDataError(FileNotFoundError):
  """A task's data files are not where the data dir says they should be."""


@dataclasses.dataclass
class FileReport:
  """What reading one file found."""
  task: str
  split: str
  path: str
  rows: int = 0            # rows seen (good + unlabeled + malformed)
  kept: int = 0            # examples produced
  unlabeled: int = 0       # documented unlabeled rows, filtered
  malformed: int = 0       # rows that broke the format, skipped
  locations: List[str] = dataclasses.field(default_factory=list)  # first `path:line: reason`
  reasons: Dict[str, int] = dataclasses.field(default_factory=dict)
  sha256: str = ""
  byte_range: str = ""     # "start-end" when this host read only the lines beginning there

  def as_dict(self):
    return dataclasses.asdict(self)


_LOCK = threading.Lock()
_REPORTS: "collections.OrderedDict[tuple, FileReport]" = collections.OrderedDict()


class FileCounter:
  """Counts the rows of one file as a reader goes through it.

  Readers call `unlabeled(line, why)` or `malformed(line, why)` for each row they drop; the
  source calls `kept(n)` with the number of examples the file gave and then `finish()`.
  """

  def __init__(self, path: str, task: str = "", split: str = "", expected_format: str = "",
               byte_range: Optional[Tuple[int, int]] = None):
    self.report = FileReport(task=task, split=split, path=str(path),
                             byte_range=f"{byte_range[0]}-{byte_range[1]}" if byte_range else "")
    self.expected_format = expected_format
    self._hash = hashlib.sha256()
    self._range = None  # (path, start byte, header lines) when line numbers count from a range
    self._first_line = None

  def in_range(self, path: str, start: int, header_lines: int = 0):
    """Line numbers given to this counter count from the first line beginning at byte `start`
    (after `header_lines` header lines, which keep their own numbers)."""
    self._range = (path, start, header_lines)

  def line_in_file(self, line: Optional[int]) -> Optional[int]:
    """The file's own number of a line this counter was given (counted only for a message)."""
    if line is None or self._range is None:
      return line
    path, start, header = self._range
    if line <= header:
      return line
    if self._first_line is None:
      from xfer_t5x.tasks.sources import files  # pylint: disable=g-import-not-at-top
      # The range's first line begins after the first newline at or after byte start - 1.
      self._first_line = files.count_lines_before(path, start - 1) + 2
    return self._first_line + line - header - 1

  def update_hash(self, data: bytes):
    self._hash.update(data)

  def kept(self, n: int = 1):
    self.report.rows += n
    self.report.kept += n

  def unlabeled(self, line: Optional[int], why: str):
    del line
    self.report.rows += 1
    self.report.unlabeled += 1
    self.report.reasons[f"unlabeled: {why}"] = self.report.reasons.get(f"unlabeled: {why}", 0) + 1

  def malformed(self, line: Optional[int], why: str):
    self.report.rows += 1
    self.report.malformed += 1
    self.report.reasons[why] = self.report.reasons.get(why, 0) + 1
    if len(self.report.locations) < MAX_LOCATIONS:
      line = self.line_in_file(line)
      where = f"{self.report.path}:{line}" if line else self.report.path
      self.report.locations.append(f"{where}: {why}")

  def format_error(self, line: Optional[int], detail: str = "") -> FormatError:
    return FormatError(self.report.path, self.line_in_file(line),
                       self.expected_format or "its documented format", detail)

  def finish(self) -> FileReport:
    """Records the report, logs it, and raises if more than 1% of the rows were malformed."""
    r = self.report
    r.sha256 = self._hash.hexdigest()
    with _LOCK:
      key = (r.task, r.split, r.path, r.byte_range)
      first_time = key not in _REPORTS
      _REPORTS[key] = r
    if r.malformed or r.unlabeled:
      if first_time:
        logging.warning(
            "%s%s [%s/%s]: kept %d of %d rows; %d unlabeled (filtered), %d malformed (skipped)%s",
            r.path, f" (bytes {r.byte_range})" if r.byte_range else "", r.task, r.split, r.kept,
            r.rows, r.unlabeled, r.malformed,
            ("; first: " + "; ".join(r.locations)) if r.locations else "")
    if r.rows and r.malformed / r.rows > MAX_BAD_FRACTION:
      raise TooManyBadRowsError(
          f"{r.path}{f' (bytes {r.byte_range})' if r.byte_range else ''}: {r.malformed} of "
          f"{r.rows} rows ({100.0 * r.malformed / r.rows:.1f}%) break "
          f"the {self.expected_format or 'expected'} format, more than the "
          f"{100 * MAX_BAD_FRACTION:.0f}% allowed; first: " + "; ".join(r.locations) +
          ". Fix or remove those rows, or check that the file is the dataset's released format.")
    return r


def data_report(task: Optional[str] = None) -> List[dict]:
  """Every file read in this process (optionally for one task), as dicts, in reading order."""
  with _LOCK:
    return [r.as_dict() for r in _REPORTS.values() if task is None or r.task == task]


def reset_data_report():
  with _LOCK:
    _REPORTS.clear()


def data_version(tasks: Optional[Sequence[str]] = None) -> str:
  """A sha256 over the (path, sha256) of every file read for `tasks` (all tasks if None)."""
  h = hashlib.sha256()
  with _LOCK:
    items = sorted({(r.path, r.sha256) for r in _REPORTS.values()
                    if tasks is None or r.task in tasks})
  for path, digest in items:
    h.update(f"{path}\t{digest}\n".encode())
  return h.hexdigest()


def record_dataset(task: str, split: str, path: str, identity: str) -> None:
  """Records a dataset read through a library with its own versioning (TFDS: `name/version`),
  so that `data_version` names it instead of hashing nothing."""
  r = FileReport(task=task, split=split, path=path,
                 sha256=hashlib.sha256(identity.encode()).hexdigest())
  with _LOCK:
    _REPORTS.setdefault((task, split, path, ""), r)


REPORT_FILE = "data_report.json"


def write_report(model_dir, process_index: int = 0) -> str:
  """Writes this host's data report into the model dir (process 0: data_report.json, others:
  data_report.process_<i>.json): the data version and, per file read to its end so far, the
  rows kept, unlabeled and malformed with the first locations. Returns the path."""
  import json  # pylint: disable=g-import-not-at-top
  from xfer_t5x import fileio  # pylint: disable=g-import-not-at-top
  name = REPORT_FILE if process_index == 0 else f"data_report.process_{process_index}.json"
  path = f"{str(model_dir).rstrip('/')}/{name}"
  fileio.atomic_write(path, json.dumps({"data_version": data_version(),
                                        "files": data_report()}, indent=2) + "\n")
  return path
