"""Tagging metrics as XTREME-R's official scorer computes them (NER and UD-POS).

`evaluate.py` of google-research/xtreme scores both PAN-X (NER) and UD-POS with seqeval's
`f1_score`, `precision_score` and `recall_score` (seqeval 1.2.x, default mode, micro average),
times 100. This module reimplements that computation, quirks included, without depending on
seqeval:

- Every sentence gets an extra "O" appended and all sentences are concatenated before chunking,
  so chunk offsets are global; gold and predicted sequences are chunked independently.
- A label is read as a chunk letter (its first character) and a type (the rest after the first
  "-", or the rest itself when there is no "-"; "_" when empty). "I-PER" after "O" or after a
  chunk of another type starts a new chunk (seqeval's handling of I- without B-).
- For POS tags this means "NOUN" is letter "N" with type "OUN": a run of identical tags is one
  chunk, "SCONJ" and "SYM" (letter "S") are single-token chunks, "INTJ" (letter "I") behaves
  like an inside tag, "X" has the same type as "O", and "CCONJ"/"SCONJ" share the type "CONJ".
  That is what the official UD-POS "F1" measures; token accuracy is reported beside it.
- Precision = true positives / predicted chunks, recall = true positives / gold chunks (0 when
  the denominator is 0), F1 = 2PR / (P + R) (0 when P + R = 0).
- Sentence counts and lengths of gold and prediction must agree (seqeval raises otherwise).
"""
from typing import Dict, List, Sequence, Set, Tuple

Chunk = Tuple[str, int, int]  # (type, first index, last index), indices into the flat sequence


def _as_sentences(sequences, what: str) -> List[List[str]]:
  """Lists of str labels from any sequence of sequences (tuples, numpy arrays, bytes)."""
  out = []
  for i, sentence in enumerate(sequences):
    if isinstance(sentence, (str, bytes)):
      raise TypeError(
          f"{what}[{i}] is a string; tagging metrics take one list of tags per sentence "
          "(split the text into tags first, e.g. with postprocessors.tags_from_text)")
    labels = []
    for label in sentence:
      if isinstance(label, bytes):
        label = label.decode("utf-8")
      if not isinstance(label, str) or not label:
        raise ValueError(f"{what}[{i}] holds the label {label!r}; every label must be a "
                         "non-empty string")
      labels.append(label)
    out.append(labels)
  return out


def _check_same_shape(targets: List[List[str]], predictions: List[List[str]]) -> None:
  gold_lengths = [len(s) for s in targets]
  pred_lengths = [len(s) for s in predictions]
  if gold_lengths != pred_lengths:
    bad = next((i for i, (g, p) in enumerate(zip(gold_lengths, pred_lengths)) if g != p), None)
    where = (f"first difference at sentence {bad}: {gold_lengths[bad]} gold vs "
             f"{pred_lengths[bad]} predicted tags" if bad is not None else
             f"{len(gold_lengths)} gold vs {len(pred_lengths)} predicted sentences")
    raise ValueError(
        "targets and predictions must have the same number of sentences and tags per sentence "
        f"(the official scorer requires it); {where}. Use postprocessors.tags_from_text or "
        "ner_tags_from_spans to get exactly one tag per input token.")


def _letter_and_type(label: str) -> Tuple[str, str]:
  """seqeval's reading of a prefix-style label: ("B", "PER") for "B-PER", ("N", "OUN") for NOUN."""
  chunk_type = label[1:].split("-", 1)[-1]
  return label[0], (chunk_type or "_")


def _chunk_ends(prev_letter: str, letter: str, prev_type: str, chunk_type: str) -> bool:
  """Whether the chunk open at the previous label closes before the current one."""
  if prev_letter in ("E", "S"):
    return True
  if prev_letter in ("B", "I") and letter in ("B", "S", "O"):
    return True
  return prev_letter not in ("O", ".") and prev_type != chunk_type


def _chunk_starts(prev_letter: str, letter: str, prev_type: str, chunk_type: str) -> bool:
  """Whether a new chunk begins at the current label."""
  if letter in ("B", "S"):
    return True
  if prev_letter in ("E", "S", "O") and letter in ("E", "I"):
    return True
  return letter not in ("O", ".") and prev_type != chunk_type


def chunks_of(sentences: Sequence[Sequence[str]]) -> List[Chunk]:
  """seqeval's chunks of a list of sentences, with offsets into their "O"-joined concatenation.

  Args:
    sentences: one list of labels per sentence.

  Returns:
    (type, start, end) per chunk, end inclusive, in order of their end.
  """
  flat = []
  for sentence in sentences:
    flat.extend(sentence)
    flat.append("O")
  flat.append("O")  # seqeval walks one extra "O" so that the last chunk closes
  chunks = []
  prev_letter, prev_type, begin = "O", "", 0
  for i, label in enumerate(flat):
    letter, chunk_type = _letter_and_type(label)
    if _chunk_ends(prev_letter, letter, prev_type, chunk_type):
      chunks.append((prev_type, begin, i - 1))
    if _chunk_starts(prev_letter, letter, prev_type, chunk_type):
      begin = i
    prev_letter, prev_type = letter, chunk_type
  return chunks


def bio_spans(tags: Sequence[str]) -> List[Chunk]:
  """Entity spans (type, start, end inclusive) of one BIO-tagged sentence, in order.

  The same chunking as the scorer (an I- tag without a matching B- starts a span), so the spans
  written into NER targets are the entities the metric counts.
  """
  return sorted(chunks_of([list(tags)]), key=lambda c: (c[1], c[2]))


def _micro_prf(targets: List[List[str]], predictions: List[List[str]]) -> Dict[str, float]:
  gold: Set[Chunk] = set(chunks_of(targets))
  pred: Set[Chunk] = set(chunks_of(predictions))
  true_positives = len(gold & pred)
  precision = true_positives / len(pred) if pred else 0.0
  recall = true_positives / len(gold) if gold else 0.0
  denominator = precision + recall
  f1 = 2.0 * precision * recall / denominator if denominator else 0.0
  return {"f1": f1 * 100, "precision": precision * 100, "recall": recall * 100}


def span_f1(targets, predictions) -> Dict[str, float]:
  """Entity-level micro F1, precision and recall in percent, as XTREME-R scores PAN-X.

  Args:
    targets: gold tags, one list of BIO tags (e.g. "B-PER", "I-PER", "O") per sentence.
    predictions: predicted tags, the same shape.

  Returns:
    {"f1", "precision", "recall"}, each in [0, 100].
  """
  gold = _as_sentences(targets, "targets")
  pred = _as_sentences(predictions, "predictions")
  _check_same_shape(gold, pred)
  return _micro_prf(gold, pred)


def pos_f1(targets, predictions) -> Dict[str, float]:
  """UD-POS as XTREME-R's scorer reports it: seqeval's chunk F1 applied to the POS tags.

  Args:
    targets: gold UPOS tags, one list per sentence.
    predictions: predicted tags, the same shape.

  Returns:
    {"f1", "precision", "recall"} exactly as the official scorer computes them (see the module
    docstring for what chunking POS tags means) and "token_accuracy" (correct tags / tags), all
    in percent.
  """
  gold = _as_sentences(targets, "targets")
  pred = _as_sentences(predictions, "predictions")
  _check_same_shape(gold, pred)
  scores = _micro_prf(gold, pred)
  n_tags = sum(len(s) for s in gold)
  n_correct = sum(g == p for gs, ps in zip(gold, pred) for g, p in zip(gs, ps))
  scores["token_accuracy"] = 100.0 * n_correct / n_tags if n_tags else 0.0
  return scores
