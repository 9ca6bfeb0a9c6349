"""The file source: a SeqIO DataSource that reads a dataset's released files from a data dir.

A split is a list of `Part`s; each part names its files by alternative glob patterns relative to
the data dir (the first pattern that matches wins, so a dataset can be found in its release layout
or in XTREME's download layout) and the reader that parses them. A reader is a generator
`reader(f: FileText, counter: FileCounter, **kwargs)` that yields one dict per example, with the
fields of the source's schema, and reports dropped rows to the counter (see data_report.py).

Files are read when `get_dataset` is called, never at registration or import, through
TensorFlow's filesystems (`files.py`): a data dir may be local or gs://. Each host reads about its
share of the bytes (`host_plan`): a file whose reader takes one example per line is split into
byte ranges, one per host; other files go to hosts whole, round-robin, when there are at least as
many as hosts, and are otherwise read by every host, which keeps its rows by position. Rows are
shuffled with the given seed and turned into a tf.data.Dataset whose list fields (tokens, tags,
answers, choices, ...) are 1-D string tensors.
"""
import dataclasses
import logging
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import seqio
import tensorflow as tf

from xfer_t5x.tasks import data_report
from xfer_t5x.tasks.sources import files as files_lib

# Field kinds of a source's schema.
STRING, INT, FLOAT, STRINGS, INTS = "string", "int", "float", "strings", "ints"
_TF_DTYPES = {STRING: tf.string, INT: tf.int32, FLOAT: tf.float32, STRINGS: tf.string,
              INTS: tf.int32}
_NP_DTYPES = {STRING: object, INT: np.int32, FLOAT: np.float32, STRINGS: object, INTS: np.int32}


class FileText:
  """One open data file: lines with their numbers, or the whole text; hashes what it reads.

  With `byte_range=(start, end)`, only the lines that begin in that range (and, for a format
  with `header_lines`, the header first): line numbers then count from the range's first line
  after the header, and the counter turns them into the file's own when it names a location.
  """

  def __init__(self, path: str, counter: data_report.FileCounter,
               byte_range: Optional[Tuple[int, int]] = None, header_lines: int = 0):
    self.path = path
    self.counter = counter
    self.byte_range = byte_range
    self.header_lines = header_lines
    self._text = None
    if byte_range is not None and byte_range[0] > 0:
      counter.in_range(path, byte_range[0], header_lines)

  def _raw(self) -> bytes:
    try:
      if self.byte_range is None:
        data = files_lib.read_bytes(self.path)
      else:
        start, end = self.byte_range
        data = files_lib.read_lines_in_range(self.path, start, end)
        if start > 0 and self.header_lines:
          data = self._header() + data
    except (OSError, tf.errors.OpError) as e:
      raise data_report.FormatError(self.path, None, self.counter.expected_format,
                                    f"unreadable: {e}") from e
    self.counter.update_hash(data)
    return data

  def _header(self) -> bytes:
    out, offset = b"", 0
    for _ in range(self.header_lines):
      line = files_lib.read_lines_in_range(self.path, offset, offset + 1)
      out += line if line.endswith(b"\n") else line + b"\n"
      offset += len(line)
    return out

  def _decode(self, data: bytes) -> str:
    try:
      return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
      line = data[:e.start].count(b"\n") + 1
      raise self.counter.format_error(line, "not UTF-8 text") from e

  def read(self) -> str:
    if self._text is None:
      self._text = self._decode(self._raw())
    return self._text

  def lines(self) -> Iterator[Tuple[int, str]]:
    """(1-based line number, line without its newline)."""
    text = self.read()
    for i, line in enumerate(text.split("\n"), start=1):
      if line.endswith("\r"):
        line = line[:-1]
      yield i, line
    # A trailing newline leaves one empty last "line"; readers treat empty lines as blank.


def line_records(header_lines: int = 0):
  """Marks a reader that takes one example per line (after `header_lines` header lines) and
  names examples by their own ids, not by line numbers: its files may be split into byte ranges
  read by different hosts."""
  def mark(reader):
    reader.line_records = True
    reader.header_lines = header_lines
    return reader
  return mark


Reader = Callable[..., Iterator[Dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class Part:
  """Some files of a split and how to read them."""
  patterns: Tuple[str, ...]
  reader: Reader
  kwargs: Tuple[Tuple[str, Any], ...] = ()
  expected_format: str = ""
  root: Optional[Callable[[], str]] = None  # the folder the patterns are relative to (default:
                                            # the source's data dir); resolved at read time

  @staticmethod
  def of(patterns: Union[str, Sequence[str]], reader: Reader, expected_format: str = "",
         root: Optional[Callable[[], str]] = None, **kwargs) -> "Part":
    if isinstance(patterns, str):
      patterns = (patterns,)
    return Part(tuple(patterns), reader, tuple(sorted(kwargs.items())), expected_format, root)

  def folder(self, default: Callable[[], str]) -> str:
    return files_lib.expand(self.root() if self.root else default())

  @property
  def splits_by_lines(self) -> bool:
    return bool(getattr(self.reader, "line_records", False))


def resolve(data_dir: str, patterns: Sequence[str]) -> List[str]:
  """The files of the first pattern that matches anything under data_dir (sorted)."""
  for pattern in patterns:
    found = files_lib.glob(files_lib.join(data_dir, pattern))
    if found:
      return found
  return []


@dataclasses.dataclass(frozen=True)
class Piece:
  """What one host reads of one file: all of it, or the lines beginning in a byte range."""
  part: Part
  path: str
  byte_range: Optional[Tuple[int, int]] = None
  shared: bool = False  # read by every host, which keeps its rows by position


def host_plan(found: Sequence[Tuple[Part, str]], index: int, count: int,
              size: Callable[[str], int] = files_lib.size) -> List[Piece]:
  """The pieces host `index` of `count` reads, so that the hosts' pieces are disjoint and cover
  every file once (the shared files excepted, which every host reads and keeps 1/count of).

  Files whose reader takes one example per line (`line_records`) and that can be read by range
  are split into `count` byte ranges; the other files go whole to hosts in turn when there are
  at least `count` of them, and are otherwise shared.
  """
  if count <= 1:
    return [Piece(part, path) for part, path in found]
  ranged = [(p, f) for p, f in found if p.splits_by_lines and files_lib.splittable(f)]
  whole = [(p, f) for p, f in found if (p, f) not in ranged]
  out = []
  for part, path in ranged:
    start, end = files_lib.byte_ranges(size(path), count)[index]
    out.append(Piece(part, path, (start, end)))
  if len(whole) >= count:
    out += [Piece(part, path) for i, (part, path) in enumerate(whole) if i % count == index]
  else:
    out += [Piece(part, path, shared=True) for part, path in whole]
  return out


def rows_to_dataset(rows: Sequence[Mapping[str, Any]],
                    schema: Mapping[str, str]) -> tf.data.Dataset:
  """Column-wise conversion of python rows to a tf.data.Dataset (list fields become 1-D tensors)."""
  columns = {}
  for name, kind in schema.items():
    values = [r[name] for r in rows]
    if kind in (STRINGS, INTS):
      lengths = np.array([len(v) for v in values], dtype=np.int64)
      flat = np.array([x for v in values for x in v], dtype=_NP_DTYPES[kind])
      if kind == STRINGS:
        flat_t = tf.constant(flat.astype(object) if flat.size else np.zeros([0], object),
                             dtype=tf.string)
      else:
        flat_t = tf.constant(flat, dtype=tf.int32)
      columns[name] = tf.RaggedTensor.from_row_lengths(flat_t, lengths)
    else:
      arr = np.array(values, dtype=_NP_DTYPES[kind]) if values else np.zeros(
          [0], _NP_DTYPES[kind])
      columns[name] = tf.constant(arr, dtype=_TF_DTYPES[kind])
  return tf.data.Dataset.from_tensor_slices(columns)


class FileSource(seqio.DataSource):
  """Reads a dataset's released files from a data dir (see module docstring)."""

  def __init__(self,
               task_name: str,
               data_dir: Union[str, Callable[[], str]],
               splits: Mapping[str, Sequence[Part]],
               schema: Mapping[str, str],
               description: str = ""):
    super().__init__(splits=tuple(splits), num_input_examples=None, caching_permitted=True)
    self.task_name = task_name
    self._data_dir = data_dir
    self._parts = {k: tuple(v) for k, v in splits.items()}
    self.schema = dict(schema)
    self.description = description

  @property
  def data_dir(self) -> str:
    d = self._data_dir() if callable(self._data_dir) else self._data_dir
    if not d:
      raise data_report.MissingDataError(
          f"task {self.task_name!r} reads files but no data dir is set: pass data_dir to "
          "register_tasks or bind `register_tasks.data_dir` in gin")
    return files_lib.expand(d)

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return True

  def list_shards(self, split: str) -> Sequence[str]:
    return self.files(split)

  def patterns(self, split: str) -> List[Tuple[str, ...]]:
    return [p.patterns for p in self._parts[split]]

  def _found(self, split: str) -> List[Tuple[Part, str]]:
    """(part, file) of every file the split reads; MissingDataError naming what was looked for
    if a part has none."""
    if split not in self._parts:
      raise ValueError(f"task {self.task_name!r} has no split {split!r}; it has {self.splits}")
    out = []
    for part in self._parts[split]:
      folder = part.folder(lambda: self.data_dir)
      found = resolve(folder, part.patterns)
      if not found:
        raise data_report.MissingDataError(
            f"task {self.task_name!r} split {split!r}: no file under {folder} matches "
            f"{' or '.join(part.patterns)} ({part.expected_format}). Put the dataset's released "
            "files there or point the data dir elsewhere.")
      out.extend((part, path) for path in found)
    return out

  def files(self, split: str) -> List[str]:
    """The files a split reads; MissingDataError naming what was looked for if a part is absent."""
    return [path for _, path in self._found(split)]

  def read_rows(self, split: str, shard_index: int = 0,
                num_shards: int = 1) -> List[Dict[str, Any]]:
    """Parses this host's pieces of a split's files (`host_plan`), with bad-row accounting per
    piece; returns its example dicts (all of them with one shard)."""
    own, shared = [], []
    for piece in host_plan(self._found(split), shard_index, num_shards):
      (shared if piece.shared else own).extend(self._read_piece(piece, split))
    return own + shared[shard_index::num_shards]

  def _read_piece(self, piece: Piece, split: str) -> List[Dict[str, Any]]:
    part = piece.part
    counter = data_report.FileCounter(piece.path, self.task_name, split, part.expected_format,
                                      byte_range=piece.byte_range)
    text = FileText(piece.path, counter, piece.byte_range,
                    getattr(part.reader, "header_lines", 0))
    rows = []
    for row in part.reader(text, counter, **dict(part.kwargs)):
      missing = [k for k in self.schema if k not in row]
      if missing:
        raise RuntimeError(f"reader {part.reader.__name__} gave a row without {missing}")
      rows.append(row)
    counter.kept(len(rows))
    counter.finish()
    return rows

  def get_dataset(self,
                  split: str = "train",
                  shuffle: bool = True,
                  seed: Optional[int] = None,
                  shard_info: Optional[seqio.ShardInfo] = None,
                  *,
                  sequence_length: Optional[Mapping[str, int]] = None,
                  use_cached: bool = False,
                  num_epochs: Optional[int] = 1) -> tf.data.Dataset:
    del sequence_length, use_cached, num_epochs
    if shard_info and shard_info.num_shards > 1:
      rows = self.read_rows(split, shard_info.index, shard_info.num_shards)
    else:
      rows = self.read_rows(split)
    if shuffle:
      order = np.random.RandomState(seed).permutation(len(rows))
      rows = [rows[i] for i in order]
    logging.info("%s/%s: %d examples", self.task_name, split, len(rows))
    return rows_to_dataset(rows, self.schema)

  def __repr__(self):
    return f"FileSource({self.task_name}, {self.description})"


class UnavailableSource(seqio.DataSource):
  """A source that explains why its task cannot load (e.g. CCG without a CCGbank path)."""

  def __init__(self, reason: str, splits=("train", "validation")):
    super().__init__(splits=splits)
    self.reason = reason
    self.description = f"unavailable: {reason}"

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return True

  def list_shards(self, split):
    raise data_report.MissingDataError(self.reason)

  def get_dataset(self, split="train", shuffle=True, seed=None, shard_info=None, **kwargs):
    raise data_report.MissingDataError(self.reason)


class ConcatSource(seqio.DataSource):
  """Several sources read one after the other, per split (ANLI+ from TFDS: ANLI, MNLI, SNLI)."""

  def __init__(self, parts: Mapping[str, Sequence[seqio.DataSource]], description: str = ""):
    super().__init__(splits=tuple(parts))
    self._parts = {k: tuple(v) for k, v in parts.items()}
    self.description = description or " + ".join(
        getattr(s, "description", repr(s)) for s in next(iter(self._parts.values())))

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return False

  def list_shards(self, split):
    return [split]

  def get_dataset(self, split="train", shuffle=True, seed=None, shard_info=None, **kwargs):
    del kwargs
    datasets = [s.get_dataset(split=split, shuffle=shuffle, seed=seed)
                for s in self._parts[split]]
    ds = datasets[0]
    for other in datasets[1:]:
      ds = ds.concatenate(other)
    if shard_info and shard_info.num_shards > 1:
      ds = ds.shard(shard_info.num_shards, shard_info.index)
    return ds
