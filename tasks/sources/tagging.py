"""Readers for token-tagging releases: XTREME's UD-POS and PAN-X TSV, WikiANN, CoNLL-U, CCGbank.

Every sentence becomes {id, tokens, tags} with one tag per token. A sentence with a token line
that lacks its tag, an unknown tag, or an empty token is malformed (skipped and counted; the
location is the sentence's first line).
"""
import re

from xfer_t5x.tasks.postprocessors import UPOS_TAGS  # the one list of the 17 UPOS tags
from xfer_t5x.tasks.sources.base import STRING, STRINGS

TAG_SCHEMA = {"id": STRING, "tokens": STRINGS, "tags": STRINGS}

NER_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")


def _sentences(f):
  """(first line number, [(line number, fields), ...]) per blank-line separated block."""
  block, start = [], None
  for line_no, line in f.lines():
    if not line.strip():
      if block:
        yield start, block
      block, start = [], None
      continue
    if start is None:
      start = line_no
    block.append((line_no, line.split("\t")))
  if block:
    yield start, block


def read_token_tag_tsv(f, counter, tag_set=None, lang=None):
  """`token TAB tag` lines, a blank line between sentences (XTREME's udpos/ and panx/ files,
  and the original WikiANN files, whose tokens carry a `<lang>:` prefix that is removed).

  Args:
    tag_set: the allowed tags (UPOS_TAGS or NER_TAGS); None accepts any non-empty tag.
    lang: strip a leading `<lang>:` from every token (WikiANN's original files).
  """
  allowed = set(tag_set) if tag_set else None
  prefix = f"{lang}:" if lang else None
  seen_any = False
  for start, block in _sentences(f):
    tokens, tags, why = [], [], None
    for line_no, fields in block:
      if len(fields) < 2:
        why = f"line {line_no}: token without a tag"
        break
      token, tag = fields[0].strip(), fields[1].strip()
      if prefix and token.startswith(prefix):
        token = token[len(prefix):]
      if not token:
        why = f"line {line_no}: empty token"
        break
      if allowed is not None and tag not in allowed:
        why = f"line {line_no}: unknown tag {tag!r}"
        break
      tokens.append(token)
      tags.append(tag)
    if why:
      if not seen_any and len(block[0][1]) < 2 and start == 1:
        raise counter.format_error(1, "expected `token<TAB>tag` lines with blank lines "
                                   "between sentences")
      counter.malformed(start, why)
      continue
    seen_any = True
    yield {"id": str(start), "tokens": tokens, "tags": tags}


def read_conllu(f, counter):
  """UD's own CoNLL-U files: FORM and UPOS of every word line (multiword-token ranges `1-2` and
  empty nodes `1.1` are left out, as UD-POS evaluation does)."""
  for start, block in _sentences(f):
    tokens, tags, why = [], [], None
    for line_no, fields in block:
      if fields[0].startswith("#"):
        continue
      if len(fields) != 10:
        if start == 1 and not tokens:
          raise counter.format_error(line_no, f"{len(fields)} columns, CoNLL-U has 10")
        why = f"line {line_no}: {len(fields)} columns, CoNLL-U has 10"
        break
      if "-" in fields[0] or "." in fields[0]:
        continue
      if fields[3] not in UPOS_TAGS:
        why = f"line {line_no}: unknown UPOS {fields[3]!r}"
        break
      tokens.append(fields[1])
      tags.append(fields[3])
    if why or not tokens:
      counter.malformed(start, why or "sentence without words")
      continue
    yield {"id": str(start), "tokens": tokens, "tags": tags}


_CCG_LEAF = re.compile(r"\(<L (\S+) (\S+) (\S+) (\S+) (\S+)>\)")


def read_ccgbank_auto(f, counter):
  """CCGbank `.auto` files: an `ID=...` line, then the derivation; the leaves
  `(<L category POS POS word pred-arg>)` give one supertag per word."""
  sentence_id = None
  seen = False
  for line_no, line in f.lines():
    if not line.strip():
      continue
    if line.startswith("ID="):
      sentence_id = line.split()[0][3:]
      continue
    if sentence_id is None:
      if not seen:
        raise counter.format_error(line_no, "expected an `ID=` line before each derivation")
      counter.malformed(line_no, "derivation without an ID line")
      continue
    leaves = _CCG_LEAF.findall(line)
    if not leaves or len(leaves) != line.count("(<L "):
      counter.malformed(line_no, "a leaf is not (<L category POS POS word pred-arg>)" if leaves
                        else "no (<L ...>) leaves in the derivation")
      sentence_id = None
      continue
    seen = True
    yield {"id": sentence_id, "tokens": [leaf[3] for leaf in leaves],
           "tags": [leaf[0] for leaf in leaves]}
    sentence_id = None
