"""Readers for the retrieval releases: Tatoeba (LASER's v1 files), LAReQA (XQuAD-R), Mewsli-X.

Layout of a retrieval task's rows (RETRIEVAL_SCHEMA), the same for queries and candidates:
  id       unique within its pool (candidates) or task (queries)
  text     what is embedded: the sentence, question, or mention
  context  extra text embedded with it (LAReQA: the answer sentence's paragraph; Mewsli-X: the
           mention's sentence with the mention in braces, or the entity's title); may be empty
  gold     for a query, the ids of its correct candidates; empty for a candidate
  lang     the row's language (two-letter code)

The dual encoder's training pairs (PAIR_SCHEMA) carry a query (`text`, `context`) and its
positive candidate (`candidate_text`, `candidate_context`) in the same fields as above, so the
training templates render them exactly as the evaluation templates render queries and pools:
  LAReQA    SQuAD v1.1 train: question -> the sentence holding the answer, with its paragraph
  Mewsli-X  wikipedia_pairs-{train,dev}.jsonl: mention in its sentence -> entity description
"""
import json
import os
import re

from xfer_t5x.tasks.sources import common
from xfer_t5x.tasks.sources import files
from xfer_t5x.tasks.sources.base import STRING, STRINGS

RETRIEVAL_SCHEMA = {"id": STRING, "text": STRING, "context": STRING, "gold": STRINGS,
                    "lang": STRING}
PAIR_SCHEMA = {"id": STRING, "text": STRING, "context": STRING, "candidate_text": STRING,
               "candidate_context": STRING, "lang": STRING}

# ---------------------------------------------------------------------------------- Tatoeba


def _tatoeba_pairs(f, counter, lang3):
  """Aligned (line, xx sentence, English sentence) from tatoeba.<xxx>-eng.<xxx> and .eng."""
  eng_path = f"{f.path[:-len(lang3)]}eng" if f.path.endswith(f".{lang3}") else None
  if not eng_path or not files.exists(eng_path):
    raise counter.format_error(None, f"the English side {eng_path or '<name>.eng'} is missing")
  eng_data = files.read_bytes(eng_path)
  counter.update_hash(eng_data)
  eng = eng_data.decode("utf-8").split("\n")
  xx = [line for _, line in f.lines()]
  for side in (eng, xx):
    if side and side[-1] == "":
      side.pop()
  if len(eng) != len(xx):
    raise counter.format_error(None, f"{len(xx)} lines but {eng_path} has {len(eng)}: the two "
                               "sides of a Tatoeba pair must be aligned line by line")
  for i, (x, e) in enumerate(zip(xx, eng)):
    yield i + 1, x.strip(), e.strip()


def read_tatoeba_queries(f, counter, lang, lang3):
  """The non-English side: each sentence's gold is the English sentence on the same line."""
  for line_no, x, e in _tatoeba_pairs(f, counter, lang3):
    if not x or not e:
      counter.malformed(line_no, "empty sentence on one side of the pair")
      continue
    yield {"id": f"{lang3}:{line_no}", "text": x, "context": "", "gold": [f"eng:{line_no}"],
           "lang": lang}


def read_tatoeba_candidates(f, counter, lang3):
  """The English side of one language's pairs (XTREME retrieves among these)."""
  for line_no, x, e in _tatoeba_pairs(f, counter, lang3):
    if not x or not e:
      counter.malformed(line_no, "empty sentence on one side of the pair")
      continue
    yield {"id": f"eng:{line_no}", "text": e, "context": "", "gold": [], "lang": "en"}


# ---------------------------------------------------------------------------------- LAReQA


def _lareqa_file(path, counter, data=None):
  """(language, {question id: answer-sentence candidate id}, questions, candidates) of a file."""
  lang = os.path.splitext(os.path.basename(path))[0]
  if data is None:
    data = files.read_bytes(path)
    counter.update_hash(data)
  try:
    doc = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
  except json.JSONDecodeError as e:
    raise counter.format_error(e.lineno, f"{path}: not JSON: {e.msg}") from e
  if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
    raise counter.format_error(1, f"{path}: no top-level 'data' list")
  answer_of, questions, candidates = {}, [], []
  paragraph_no = 0
  for article in doc["data"]:
    for paragraph in article.get("paragraphs", []):
      paragraph_no += 1
      context = paragraph.get("context", "")
      breaks = paragraph.get("sentence_breaks")
      if not isinstance(breaks, list):
        raise counter.format_error(None, f"{path}: paragraph {paragraph_no} has no "
                                   "'sentence_breaks' (XQuAD-R's sentence-split format)")
      for s_i, (start, end) in enumerate(breaks):
        candidates.append((f"{lang}_{paragraph_no}_{s_i}", context[start:end].strip(), context))
      for qa in paragraph.get("qas", []):
        answers = qa.get("answers") or []
        start = answers[0].get("answer_start", -1) if answers else -1
        found = [s_i for s_i, (b, e) in enumerate(breaks) if b <= start < e]
        questions.append((qa.get("id", ""), (qa.get("question") or "").strip(),
                          f"{lang}_{paragraph_no}_{found[0]}" if found else None))
        if found and qa.get("id"):
          answer_of[qa["id"]] = f"{lang}_{paragraph_no}_{found[0]}"
  return lang, answer_of, questions, candidates


def read_lareqa_queries(f, counter, lang, pool_langs):
  """Questions of one language; gold = the answer sentence in every pool language present.

  The other languages' files are read from the same folder (`<lang>.json`), so the gold ids
  match the ids of `read_lareqa_candidates` over the same folder.
  """
  folder = os.path.dirname(f.path)
  _, own_map, questions, _ = _lareqa_file(f.path, counter, f.read())
  answer_maps = []
  for other in pool_langs:
    path = os.path.join(folder, f"{other}.json")
    if other == lang:
      answer_maps.append(own_map)
    elif files.exists(path):
      answer_maps.append(_lareqa_file(path, counter)[1])
  for qid, question, own in questions:
    if not qid or not question:
      counter.malformed(f"id={qid or '?'}", "empty question or id")
      continue
    if own is None:
      counter.malformed(f"id={qid}", "answer_start is in no sentence of the context")
      continue
    gold = [m[qid] for m in answer_maps if qid in m]
    yield {"id": f"{qid}_{lang}", "text": question, "context": "", "gold": gold, "lang": lang}


def read_lareqa_candidates(f, counter, pool_langs):
  """Every sentence of one language's file (the pool is all pool languages' files together)."""
  lang = os.path.splitext(os.path.basename(f.path))[0]
  if lang not in pool_langs:
    return
  _, _, _, candidates = _lareqa_file(f.path, counter, f.read())
  for cid, sentence, context in candidates:
    if not sentence:
      counter.malformed(f"id={cid}", "empty sentence")
      continue
    yield {"id": cid, "text": sentence, "context": context, "gold": [], "lang": lang}


# A sentence ends at . ! ? (optionally closed by quotes or brackets) before whitespace and a
# character that is not lower case, or at a CJK / Devanagari / Arabic full stop.
_SENTENCE_END = re.compile(r"""(?<=[.!?])["'\u201d\u2019)\]]*\s+"""
                           r"|(?<=[\u3002\uff01\uff1f\u0964\u06d4])\s*")
# Words whose full stop ends no sentence ("Dr. Who", "U.S. Army"); single letters are initials.
_ABBREVIATIONS = frozenset("mr mrs ms dr prof st jr sr vs etc e.g i.e u.s u.k no fig approx "
                           "inc ltd co corp gen col lt sgt rev mt ft".split())


def _ends_with_abbreviation(sentence):
  last = sentence.rsplit(None, 1)[-1].rstrip(".").lower() if sentence.strip() else ""
  return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())


def sentence_spans(text):
  """[(start, end)] character spans of the sentences of `text` (a rule-based splitter: SQuAD v1.1
  has no sentence breaks, XQuAD-R's were made by a splitter too); whitespace between sentences
  is left out, and the spans cover every other character."""
  spans, start = [], 0
  for m in _SENTENCE_END.finditer(text):
    following = text[m.end():m.end() + 1]
    if m.start() <= start or following.islower() or (
        text[m.start() - 1] == "." and _ends_with_abbreviation(text[start:m.start()])):
      continue
    spans.append((start, m.start()))
    start = m.end()
  if text[start:].strip():
    spans.append((start, len(text.rstrip())))
  return spans


def read_lareqa_pairs(f, counter):
  """LAReQA's training pairs from SQuAD v1.1: each question -> the sentence of its paragraph
  that holds its (first) answer's start, with the paragraph as the candidate's context (the
  form of XQuAD-R's candidates)."""
  from xfer_t5x.tasks.sources import squad  # pylint: disable=g-import-not-at-top
  for row in squad.read_squad_json(f, counter):
    context, start = row["context"], row["answer_starts"][0]
    found = [(b, e) for b, e in sentence_spans(context) if b <= start < e]
    if not found:
      counter.malformed(f"id={row['id']}", "answer_start is in no sentence of the context")
      continue
    b, e = found[0]
    yield {"id": row["id"], "text": row["question"].strip(), "context": "",
           "candidate_text": context[b:e].strip(), "candidate_context": context, "lang": "en"}


# ---------------------------------------------------------------------------------- Mewsli-X

_BRACES = re.compile(r"[{}]")


def _mention_in_sentence(context, mention):
  """The sentence holding the mention, with the mention wrapped in braces (others escaped)."""
  start, end = mention["mention_span"]["start"], mention["mention_span"]["end"]
  text = context["text"]
  s_start, s_end = 0, len(text)
  for span in context.get("sentence_spans", []):
    if span["start"] <= start and end <= span["end"]:
      s_start, s_end = span["start"], span["end"]
      break
  left = _BRACES.sub(lambda m: "(" if m.group() == "{" else ")", text[s_start:start])
  right = _BRACES.sub(lambda m: "(" if m.group() == "{" else ")", text[end:s_end])
  return " ".join(f"{left} {{ {text[start:end]} }} {right}".split())


def read_mewslix_mentions(f, counter, lang, labels_file=None):
  """Mewsli-X `wikinews_mentions-{dev,test}.jsonl` (every language; keeps `lang`), or XTREME's
  per-language `wikinews_mentions/{split}-{lang}.jsonl` whose test labels live in
  `wikinews_labels/{split}-{lang}.json`."""
  labels = {}
  if labels_file is None:
    folder, name = os.path.split(f.path)
    candidate = os.path.join(os.path.dirname(folder), "wikinews_labels",
                             os.path.splitext(name)[0] + ".json")
    labels_file = candidate if files.exists(candidate) else None
  if labels_file:
    raw = files.read_bytes(labels_file)
    counter.update_hash(raw)
    labels = {k: v[0] for k, v in json.loads(raw.decode("utf-8")).items() if v}
  for line_no, obj in common.jsonl_rows(f, counter):
    context = obj.get("context")
    if not isinstance(context, dict) or not isinstance(obj.get("mentions"), list):
      counter.malformed(line_no, "expected {context: {...}, mentions: [...]}")
      continue
    if context.get("language") != lang:
      continue
    for mention in obj["mentions"]:
      try:
        mention_text = mention["mention_span"]["text"].strip()
        example_id = mention["example_id"]
        sentence = _mention_in_sentence(context, mention)
      except (KeyError, TypeError, AttributeError):
        counter.malformed(line_no, "mention without example_id or mention_span")
        continue
      entity = mention.get("entity_id") or labels.get(example_id)
      if not mention_text:
        counter.malformed(line_no, "empty mention")
        continue
      if not entity:
        counter.unlabeled(line_no, "mention without entity_id")
        continue
      yield {"id": example_id, "text": mention_text, "context": sentence, "gold": [entity],
             "lang": lang}


def _entity(obj):
  """A Mewsli-X entity as a candidate row, or None without an id or a description."""
  if not isinstance(obj, dict):
    return None
  entity_id = common.text_of(obj, "entity_id")
  description = obj.get("description")
  if not entity_id or not isinstance(description, str) or not description.strip():
    return None
  spans = obj.get("sentence_spans") or []
  if spans:
    description = " ".join(description[s["start"]:s["end"]] for s in spans)
  return {"id": entity_id, "text": " ".join(description.split()),
          "context": (obj.get("title") or "").strip(), "gold": [],
          "lang": obj.get("description_language", "")}


def read_mewslix_entities(f, counter):
  """Mewsli-X `candidate_set_entities.jsonl`: entity_id, title, description (+ sentence spans)."""
  for line_no, obj in common.jsonl_rows(f, counter):
    row = _entity(obj)
    if row is None:
      counter.malformed(line_no, "entity without entity_id or description")
      continue
    yield row


def read_mewslix_pairs(f, counter):
  """Mewsli-X `wikipedia_pairs-{train,dev}.jsonl` (English Wikipedia): each line's
  {contextual_mention: {context, mention}, entity} -> the mention in its sentence, as the
  WikiNews queries are rendered, paired with the entity's title and description, as the
  candidate set's entities are."""
  for line_no, obj in common.jsonl_rows(f, counter):
    pair = obj.get("contextual_mention")
    entity = _entity(obj.get("entity"))
    try:
      context, mention = pair["context"], pair["mention"]
      text = mention["mention_span"]["text"].strip()
      sentence = _mention_in_sentence(context, mention)
      example_id = str(mention["example_id"])
    except (KeyError, TypeError, AttributeError):
      counter.malformed(line_no, "expected {contextual_mention: {context, mention: {example_id, "
                        "mention_span}}, entity}")
      continue
    if entity is None or not text:
      counter.malformed(line_no, "empty mention, or an entity without entity_id or description")
      continue
    yield {"id": example_id, "text": text, "context": sentence,
           "candidate_text": entity["text"], "candidate_context": entity["context"],
           "lang": context.get("language", "en")}
