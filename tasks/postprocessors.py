"""Postprocessors: generated text back to what the metrics score, robust to bad generations.

Formats (the templates' side of each is in the task table):
- POS: the tags space-separated, one per input word ("DET NOUN VERB"). `tags_from_text` returns
  exactly one tag per input token: extra tags are dropped, missing ones padded with a fill tag,
  unknown ones replaced by it.
- NER: mT5's span format (google-research/multilingual-t5 `preprocessors.wikiann`, whose spans
  come from TFDS wikiann): each entity as "TYPE: its tokens joined by spaces", entities in order
  of their first token, joined by " $$ "; a sentence without entities is "None". Example: tokens
  [rick, and, morty, are, cool, .] with tags [B-PER, O, B-PER, O, O, O] ->
  "PER: rick $$ PER: morty". `spans_from_ner_tags` writes it, `ner_tags_from_spans` reads it
  back to one BIO tag per token (garbage pieces, unknown types, spans not in the sentence and
  spans overlapping an earlier one are skipped and counted).
- QA: the answer text; unanswerable questions (SQuAD 2.0) are the fixed word `UNANSWERABLE`,
  which `qa_answer` maps to "" as SQuAD 2.0's scorer expects.

Every repair is counted in a per-process counter (`repair_counts()`, `reset_repair_counts()`)
so that evaluation can report how often generations were malformed; pass `counts=` to count
somewhere else. The seqio-shaped factories (`tag_postprocessor`, `ner_postprocessor`,
`qa_postprocessor`) take (output, example=None, is_target=False) as seqio calls them; for targets
they return the gold from the example's features when present.
"""
import collections
import unicodedata
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from xfer_t5x.tasks.metrics_tagging import bio_spans

UNANSWERABLE = "unanswerable"
NER_DELIMITER = " $$ "
NER_NO_ENTITY = "None"
NER_TYPES = ("PER", "LOC", "ORG")
UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
             "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")

_COUNTS: collections.Counter = collections.Counter()


def repair_counts() -> Dict[str, int]:
  """A copy of the per-process repair counters, e.g. {"tags.padded": 3, "ner.not_found": 1}."""
  return dict(_COUNTS)


def reset_repair_counts() -> None:
  """Zero the per-process repair counters (call before evaluating a task)."""
  _COUNTS.clear()


def _text(value) -> str:
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalar of bytes
    return _text(value.item())
  return str(value)


def _texts(values) -> List[str]:
  if hasattr(values, "tolist"):
    values = values.tolist()
  if isinstance(values, (str, bytes)):
    raise TypeError(f"expected a sequence of strings, got the single string {values!r}")
  return [_text(v) for v in values]


def _default_fill(tag_set) -> str:
  for candidate in ("O", "X"):
    if candidate in tag_set:
      return candidate
  raise ValueError("tags_from_text needs `fill` (a tag of tag_set used for missing and unknown "
                   "tags) when tag_set holds neither 'O' nor 'X'")


def tags_from_text(text, n_tokens: int, tag_set: Iterable[str], fill: Optional[str] = None,
                   counts: Optional[collections.Counter] = None) -> List[str]:
  """Exactly `n_tokens` tags from generated space-separated tags.

  Args:
    text: the generated text, e.g. "DET NOUN VERB".
    n_tokens: number of input tokens (words) the tags must cover.
    tag_set: the valid tags.
    fill: tag used for padding and for unknown tags; default "O" if in tag_set, else "X".
    counts: counter to record repairs in (default: the per-process one). Keys: "tags.examples",
      "tags.truncated" and "tags.padded" (examples), "tags.unknown" (tags replaced).

  Returns:
    A list of n_tokens tags, each in tag_set.
  """
  if n_tokens < 0:
    raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
  tag_set = tag_set if isinstance(tag_set, (set, frozenset, dict)) else frozenset(tag_set)
  fill = _default_fill(tag_set) if fill is None else fill
  if fill not in tag_set:
    raise ValueError(f"fill tag {fill!r} is not in the tag set {sorted(tag_set)}")
  counts = _COUNTS if counts is None else counts
  counts["tags.examples"] += 1
  generated = _text(text).split()
  if len(generated) > n_tokens:
    counts["tags.truncated"] += 1
    generated = generated[:n_tokens]
  tags = []
  for tag in generated:
    if tag in tag_set:
      tags.append(tag)
    else:
      counts["tags.unknown"] += 1
      tags.append(fill)
  if len(tags) < n_tokens:
    counts["tags.padded"] += 1
    tags.extend([fill] * (n_tokens - len(tags)))
  return tags


def _check_bio(tags: Sequence[str], n_tokens: int) -> None:
  if len(tags) != n_tokens:
    raise ValueError(f"{n_tokens} tokens but {len(tags)} tags; NER needs one BIO tag per token")
  for i, tag in enumerate(tags):
    if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
      raise ValueError(f"tag {i} is {tag!r}; NER tags must be 'O', 'B-<TYPE>' or 'I-<TYPE>'")


def spans_from_ner_tags(tokens, tags) -> str:
  """mT5's NER target text for one sentence: "TYPE: tokens $$ TYPE: tokens", or "None".

  Entities are chunked as the scorer chunks them (an I- tag without a B- of its type starts a
  new entity) and listed in order of their first token.
  """
  tokens, tags = _texts(tokens), _texts(tags)
  _check_bio(tags, len(tokens))
  pieces = [f"{kind}: {' '.join(tokens[start:end + 1])}" for kind, start, end in bio_spans(tags)]
  return NER_DELIMITER.join(pieces) if pieces else NER_NO_ENTITY


# SentencePiece's `nmt_nfkc` rule (mT5's vocabulary) beyond NFKC, measured character by character
# against sentencepiece 0.2's normalizer: C0/C1 controls vanish; these separators, invisible marks
# (ZWNJ, LRM, RLM, the Arabic letter mark, BOM), U+2581 and U+FFFD become spaces (inside a word
# they split it; at its edges they vanish); ZWJ is kept; the full-width tilde escapes NFKC.
_NMT_DROP = [*range(0x01, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, 0x8F, 0x9F]
_NMT_SPACE = [0x09, 0x0A, 0x0C, 0x0D, 0x061C, 0x1680, 0x200B, 0x200C, 0x200E, 0x200F, 0x2028,
              0x2029, 0x2581, 0xFEFF, 0xFFFD]
_NMT_TABLE = {**{c: None for c in _NMT_DROP}, **{c: " " for c in _NMT_SPACE}}
_NFKC_EXEMPT = "\uff5e"


def vocabulary_normalize(text: str) -> str:
  """`text` as mT5's SentencePiece vocabulary normalises it before tokenizing (nmt_nfkc, spaces
  collapsed, none at the ends): what a model that copies the input exactly can generate."""
  text = text.translate(_NMT_TABLE)
  text = _NFKC_EXEMPT.join(unicodedata.normalize("NFKC", part)
                           for part in text.split(_NFKC_EXEMPT))
  return " ".join(part for part in text.split(" ") if part)


def _key(text: str) -> str:
  """Comparison form of a token or entity: normalised as the vocabulary normalises text."""
  return vocabulary_normalize(text)


def _occurrences(keys: List[str], entity: str) -> Iterable[Tuple[int, int]]:
  """(start, end exclusive) of every run of tokens whose space-joined keys equal `entity` (a
  token whose key is empty, e.g. a lone direction mark, joins nothing and starts nothing)."""
  for start in range(len(keys)):
    if not keys[start]:
      continue
    joined = ""
    for end in range(start, len(keys)):
      if keys[end]:
        joined = f"{joined} {keys[end]}" if joined else keys[end]
      if joined == entity:
        yield start, end + 1
        break
      if not entity.startswith(joined):
        break


def ner_tags_from_spans(text, tokens, types: Iterable[str] = NER_TYPES,
                        counts: Optional[collections.Counter] = None) -> List[str]:
  """One BIO tag per token from mT5's NER span text (the inverse of `spans_from_ner_tags`).

  Each "TYPE: entity" piece is placed at the first occurrence of the entity's tokens after the
  previously placed entity (spans are listed in sentence order), else at the first occurrence
  anywhere that does not overlap a placed entity. Tokens and entity text are compared as the
  vocabulary normalises them (vocabulary_normalize: NFKC, ZWNJ and direction marks as spaces,
  whitespace collapsed). When the same words occur twice, the earliest free
  occurrence after the previous entity wins (the format cannot say more).

  Args:
    text: generated text, e.g. "PER: rick $$ LOC: new york" or "None".
    tokens: the input tokens.
    types: entity types accepted.
    counts: counter to record repairs in (default: the per-process one). Keys: "ner.examples",
      "ner.spans" (placed), "ner.malformed" (a piece without "TYPE:" or entity),
      "ner.unknown_type", "ner.not_found", "ner.overlap".

  Returns:
    len(tokens) tags among "O", "B-<type>", "I-<type>".
  """
  tokens = _texts(tokens)
  types = frozenset(types)
  counts = _COUNTS if counts is None else counts
  counts["ner.examples"] += 1
  tags = ["O"] * len(tokens)
  keys = [_key(t) for t in tokens]
  cursor = 0
  for piece in _text(text).split("$$"):
    piece = piece.strip()
    if not piece or piece == NER_NO_ENTITY:
      continue
    kind, colon, entity = piece.partition(":")
    kind, entity = kind.strip(), _key(entity)
    if not colon or not kind or not entity:
      counts["ner.malformed"] += 1
      continue
    if kind not in types:
      counts["ner.unknown_type"] += 1
      continue
    found = list(_occurrences(keys, entity))
    free = [(s, e) for s, e in found if all(t == "O" for t in tags[s:e])]
    if not found:
      counts["ner.not_found"] += 1
      continue
    if not free:
      counts["ner.overlap"] += 1
      continue
    start, end = next(((s, e) for s, e in free if s >= cursor), free[0])
    tags[start] = f"B-{kind}"
    for i in range(start + 1, end):
      tags[i] = f"I-{kind}"
    cursor = end
    counts["ner.spans"] += 1
  return tags


def qa_answer(text, example=None, is_target: bool = False,
              unanswerable: str = UNANSWERABLE) -> str:
  """The answer text stripped; the fixed unanswerable word becomes "" (a seqio postprocess_fn)."""
  del example, is_target
  answer = _text(text).strip()
  return "" if answer == unanswerable else answer


def strip_text(text, example=None, is_target: bool = False) -> str:
  """Generated label word or choice text, stripped (a seqio postprocess_fn)."""
  del example, is_target
  return _text(text).strip()


def _feature(example, key):
  if example is None:
    return None
  try:
    return example[key]
  except (KeyError, TypeError):
    return None


def qa_postprocessor(answers_key: str = "answers",
                     unanswerable: str = UNANSWERABLE) -> Callable:
  """seqio postprocess_fn for QA: predictions -> answer text; targets -> all gold answers.

  For targets it returns the example's `answers_key` feature as a list ([""] when the list is
  empty or holds only the unanswerable word: an unanswerable question), else [the target text].
  """
  def postprocess(output, example=None, is_target: bool = False):
    if not is_target:
      return qa_answer(output, unanswerable=unanswerable)
    answers = _feature(example, answers_key)
    if answers is None:
      return [qa_answer(output, unanswerable=unanswerable)]
    answers = [qa_answer(a, unanswerable=unanswerable) for a in _texts(answers)]
    return [a for a in answers if a] or [""]
  return postprocess


def tag_postprocessor(tag_set: Iterable[str], fill: Optional[str] = None,
                      tokens_key: str = "tokens", tags_key: str = "tags") -> Callable:
  """seqio postprocess_fn for space-separated tags (POS): one tag per token of the example.

  Targets come from the example's `tags_key` when present; predictions are repaired to
  len(example[tokens_key]) tags (or to the number generated when there is no example).
  """
  tag_set = frozenset(tag_set)

  def postprocess(output, example=None, is_target: bool = False):
    gold = _feature(example, tags_key)
    if is_target and gold is not None:
      return _texts(gold)
    tokens = _feature(example, tokens_key)
    n_tokens = len(_texts(tokens)) if tokens is not None else len(_text(output).split())
    return tags_from_text(output, n_tokens, tag_set, fill=fill)
  return postprocess


def ner_postprocessor(types: Iterable[str] = NER_TYPES, tokens_key: str = "tokens",
                      tags_key: str = "tags") -> Callable:
  """seqio postprocess_fn for mT5's NER spans: BIO tags for the example's tokens.

  Targets come from the example's `tags_key` when present (the gold BIO tags, not re-derived
  from the span text); predictions are decoded with `ner_tags_from_spans`.
  """
  types = tuple(types)

  def postprocess(output, example=None, is_target: bool = False):
    gold = _feature(example, tags_key)
    if is_target and gold is not None:
      return _texts(gold)
    tokens = _feature(example, tokens_key)
    if tokens is None:
      raise ValueError(f"the NER postprocessor needs the example's {tokens_key!r} feature to "
                       "place spans; keep it in the task's output (seqio passes the example)")
    return ner_tags_from_spans(output, _texts(tokens), types)
  return postprocess
