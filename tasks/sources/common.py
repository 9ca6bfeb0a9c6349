"""Row iterators shared by the readers: JSON lines, TSV and CSV with a header, one JSON document.

Each yields `(line, row)`. A file whose first row cannot be parsed (or whose header lacks the
columns the format requires) is not that format at all: `FormatError` at once. A later row that
cannot be parsed is malformed: counted and skipped.
"""
import csv
import io
import json
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

from xfer_t5x.tasks.data_report import FileCounter
from xfer_t5x.tasks.sources.base import FileText, line_records


def jsonl_rows(f: FileText, counter: FileCounter) -> Iterator[Tuple[int, Dict[str, Any]]]:
  """JSON objects, one per non-blank line."""
  seen = False
  for line_no, line in f.lines():
    if not line.strip():
      continue
    try:
      obj = json.loads(line)
    except json.JSONDecodeError as e:
      if not seen:
        raise counter.format_error(line_no, f"not JSON: {e.msg}") from e
      counter.malformed(line_no, "line is not valid JSON")
      continue
    if not isinstance(obj, dict):
      if not seen:
        raise counter.format_error(line_no, "a line is not a JSON object")
      counter.malformed(line_no, "line is not a JSON object")
      continue
    seen = True
    yield line_no, obj


def json_document(f: FileText, counter: FileCounter, required_keys: Sequence[str] = ()) -> Any:
  """The whole file as one JSON document (SQuAD-style files)."""
  text = f.read()
  try:
    doc = json.loads(text)
  except json.JSONDecodeError as e:
    raise counter.format_error(e.lineno, f"not JSON: {e.msg}") from e
  for key in required_keys:
    if not isinstance(doc, dict) or key not in doc:
      raise counter.format_error(1, f"top-level key {key!r} missing")
  return doc


def tsv_rows(f: FileText, counter: FileCounter, required: Sequence[str],
             optional: Sequence[str] = ()) -> Iterator[Tuple[int, Dict[str, str]]]:
  """Tab-separated rows keyed by the header (no quoting, as GLUE and XNLI write them).

  A row with fewer fields than a required column needs is malformed.
  """
  header = None
  index = {}
  for line_no, line in f.lines():
    if header is None:
      header = line.split("\t")
      index = {name: i for i, name in enumerate(header)}
      missing = [c for c in required if c not in index]
      if missing:
        raise counter.format_error(
            line_no, f"header lacks column(s) {missing}; it has {header[:12]}")
      continue
    if not line.strip():
      continue
    fields = line.split("\t")
    need = max(index[c] for c in required) if required else -1
    if len(fields) <= need:
      counter.malformed(line_no, f"{len(fields)} fields, header has {len(header)}")
      continue
    row = {c: fields[index[c]] for c in required}
    for c in optional:
      if c in index and index[c] < len(fields):
        row[c] = fields[index[c]]
    yield line_no, row
  if header is None:
    raise counter.format_error(1, "empty file, expected a header line")


def csv_rows(f: FileText, counter: FileCounter,
             required: Sequence[str]) -> Iterator[Tuple[int, Dict[str, str]]]:
  """Comma-separated rows with a header, standard quoting (Cosmos QA)."""
  text = f.read()
  reader = csv.reader(io.StringIO(text, newline=""))
  try:
    header = next(reader)
  except StopIteration:
    raise counter.format_error(1, "empty file, expected a header line") from None
  except csv.Error as e:
    raise counter.format_error(1, str(e)) from e
  index = {name: i for i, name in enumerate(header)}
  missing = [c for c in required if c not in index]
  if missing:
    raise counter.format_error(1, f"header lacks column(s) {missing}; it has {header[:12]}")
  while True:
    try:
      fields = next(reader)
    except StopIteration:
      return
    except csv.Error as e:
      counter.malformed(reader.line_num, f"CSV error: {e}")
      continue
    line_no = reader.line_num
    if not fields:
      continue
    if len(fields) != len(header):
      counter.malformed(line_no, f"{len(fields)} fields, header has {len(header)}")
      continue
    yield line_no, {c: fields[index[c]] for c in required}


def text_of(row: Dict[str, Any], key: str) -> Optional[str]:
  """A required non-empty string field, stripped; None if missing, not a string, or empty."""
  v = row.get(key)
  if not isinstance(v, str):
    return None
  v = v.strip()
  return v or None


@line_records()
def read_schema_jsonl(f: FileText, counter: FileCounter, schema):
  """JSON lines whose objects carry a schema's fields (user-supplied data, e.g. translations).

  Args:
    schema: (field, kind) pairs, kinds as in sources.base (string, int, float, strings, ints).
  """
  checks = {"string": lambda v: isinstance(v, str) and v.strip() != "",
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "strings": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
            "ints": lambda v: isinstance(v, list) and all(isinstance(x, int) for x in v)}
  schema = dict(schema)
  for line_no, obj in jsonl_rows(f, counter):
    row, why = {}, None
    for field, kind in schema.items():
      value = obj.get(field, str(line_no) if field == "id" else None)
      if field == "id" and value is not None:
        value = str(value)
      if value is None:
        why = f"missing field {field!r}"
        break
      if not checks[kind](value):
        why = f"field {field!r} is not a non-empty {kind}"
        break
      row[field] = value.strip() if kind == "string" else value
    if why:
      counter.malformed(line_no, why)
      continue
    yield row
