"""Readers for SQuAD-format JSON: SQuAD v1.1 and v2.0, XQuAD, MLQA, TyDi QA GoldP.

Each question becomes {id, context, question, answers, answer_starts}: `answers` lists every gold
answer text (SQuAD dev has several), empty for SQuAD 2.0's unanswerable questions
(`is_impossible`). An answerable question without answers, or an empty question or context, is
malformed. JSON documents have no per-row line, so locations name the question id.
"""
from xfer_t5x.tasks.sources import common
from xfer_t5x.tasks.sources.base import INTS, STRING, STRINGS

QA_SCHEMA = {"id": STRING, "context": STRING, "question": STRING, "answers": STRINGS,
             "answer_starts": INTS}

# TyDi QA GoldP ids start with the language's English name (e.g. "arabic-2387335860751143628-1").
TYDIQA_LANGUAGE_NAMES = {
    "ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish", "id": "indonesian",
    "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu",
}


def read_squad_json(f, counter, allow_unanswerable=False, id_prefix=None):
  """Any SQuAD-format file ({"data": [{"paragraphs": [{"context", "qas": [...]}]}]}).

  Args:
    allow_unanswerable: SQuAD 2.0: questions with `is_impossible` get empty answers.
    id_prefix: keep only questions whose id starts with it (TyDi QA GoldP's official files hold
      every language; `english-` selects the English ones).
  """
  doc = common.json_document(f, counter, required_keys=["data"])
  if not isinstance(doc["data"], list):
    raise counter.format_error(1, "'data' is not a list of articles")
  for a_i, article in enumerate(doc["data"]):
    paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
    if not isinstance(paragraphs, list):
      raise counter.format_error(None, f"article {a_i} has no 'paragraphs' list")
    for paragraph in paragraphs:
      context = common.text_of(paragraph, "context") if isinstance(paragraph, dict) else None
      qas = paragraph.get("qas", []) if isinstance(paragraph, dict) else []
      for qa in qas:
        qid = str(qa.get("id", ""))
        if id_prefix and not qid.startswith(id_prefix):
          continue
        where = f"id={qid or '?'}"
        question = common.text_of(qa, "question")
        if not context:
          counter.malformed(where, "empty or missing context")
          continue
        if not question:
          counter.malformed(where, "empty or missing question")
          continue
        answers = qa.get("answers", [])
        if not isinstance(answers, list) or any(
            not isinstance(x, dict) or not isinstance(x.get("text"), str) for x in answers):
          counter.malformed(where, "answers must be a list of {text, answer_start}")
          continue
        texts = [x["text"] for x in answers]
        starts = [int(x.get("answer_start", -1)) for x in answers]
        impossible = bool(qa.get("is_impossible", False))
        if impossible:
          if not allow_unanswerable:
            counter.malformed(where, "is_impossible in a SQuAD v1.1-format file")
            continue
          texts, starts = [], []
        elif not texts or not any(t.strip() for t in texts):
          counter.malformed(where, "answerable question without an answer")
          continue
        yield {"id": qid, "context": context, "question": question, "answers": texts,
               "answer_starts": starts}
