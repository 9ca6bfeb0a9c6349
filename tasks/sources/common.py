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
def label_word(value, labels: Sequence[str]) -> Tuple[Optional[str], str]:
  """(the label word, "") for a label given as a word of `labels` or as its index (an int, or a
  string of digits that is not itself a label word); (None, why) otherwise. A template without a
  label list (`labels` empty) takes any non-empty string."""
  if isinstance(value, str) and value.strip() and (not labels or value.strip() in labels):
    return value.strip(), ""
  if isinstance(value, str) and value.strip().lstrip("-").isdigit():
    value = int(value.strip())
  if isinstance(value, int) and not isinstance(value, bool):
    if labels and 0 <= value < len(labels):
      return labels[value], ""
    if not labels:
      return None, (f"label {value} is a number, but the template has no label list to map it "
                    "through: give label words, or a Template with labels=(...)")
    return None, f"label {value} is outside 0..{len(labels) - 1} ({', '.join(labels)})"
  expected = f"one of {', '.join(labels)} or 0..{len(labels) - 1}" if labels else "a word"
  return None, f"label {value!r} is not {expected}"


def read_schema_jsonl(f: FileText, counter: FileCounter, schema, labels: Sequence[str] = (),
                      lang: str = ""):
  """JSON lines whose objects carry a schema's fields (user-supplied data, e.g. translations).

  Args:
    schema: (field, kind) pairs, kinds as in sources.base (string, int, float, strings, ints).
    labels: a classification template's label words: the `label` field may be a word or its
      index (label_word); -1 or null means unlabeled (counted, not kept), as GLUE's test files.
    lang: keep only rows whose `lang` field is this code (rows without one are kept: a file of
      one language need not repeat it).
  """
  checks = {"string": lambda v: isinstance(v, str) and v.strip() != "",
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "strings": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
            "ints": lambda v: isinstance(v, list) and all(isinstance(x, int) for x in v)}
  schema = dict(schema)
  for line_no, obj in jsonl_rows(f, counter):
    row, why = {}, None
    if lang and obj.get("lang", lang) != lang:
      continue  # another language's row of a shared file
    if labels and "label" in schema and obj.get("label", "") in (None, -1, "-1"):
      counter.unlabeled(line_no, "no gold label")
      continue
    for field, kind in schema.items():
      value = obj.get(field, str(line_no) if field == "id" else None)
      if field == "id" and value is not None:
        value = str(value)
      if field == "label" and labels and value is not None:
        value, why = label_word(value, labels)
        if why:
          break
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
