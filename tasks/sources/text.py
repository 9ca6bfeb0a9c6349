"""Plain text, one document per line (the `mlm` baseline's corpora, e.g. mC4 exported per
language): each non-blank line is one example {"text": line}."""
from xfer_t5x.tasks.sources.base import line_records

TEXT_SCHEMA = {"text": "string"}


@line_records()
def read_text_lines(f, counter):
  for _, line in f.lines():
    text = line.strip()
    if text:
      yield {"text": text}
