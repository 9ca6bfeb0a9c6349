"""Readers for multiple-choice releases: XCOPA and COPA, Social IQa, HellaSwag, CommonsenseQA,
Cosmos QA.

Every row becomes {id, context, question, choices, label}: `choices` the answer texts in the
release's order and `label` the 0-based index of the right one. Rows of files published without
labels (HellaSwag test, CommonsenseQA test, Cosmos QA test) are counted as unlabeled.
"""
import os

from xfer_t5x.tasks.sources import common
from xfer_t5x.tasks.sources import files
from xfer_t5x.tasks.sources.base import INT, STRING, STRINGS, line_records

MC_SCHEMA = {"id": STRING, "context": STRING, "question": STRING, "choices": STRINGS, "label": INT}


def _label_index(value, n):
  """An int label in [0, n), accepting ints and digit strings; None otherwise."""
  if isinstance(value, bool):
    return None
  if isinstance(value, str) and value.strip().lstrip("-").isdigit():
    value = int(value.strip())
  if isinstance(value, int) and 0 <= value < n:
    return value
  return None


def _choices_ok(counter, line_no, choices):
  if any(not c for c in choices):
    counter.malformed(line_no, "empty answer choice")
    return False
  return True


def read_copa_jsonl(f, counter):
  """XCOPA `data/<lang>/{val,test}.<lang>.jsonl` and SuperGLUE COPA `{train,val}.jsonl`.

  question is `cause` or `effect` (kept as the question field), label 0 or 1.
  """
  for line_no, obj in common.jsonl_rows(f, counter):
    premise = common.text_of(obj, "premise")
    choices = [common.text_of(obj, "choice1"), common.text_of(obj, "choice2")]
    question = obj.get("question")
    if not premise:
      counter.malformed(line_no, "empty or missing premise")
      continue
    if question not in ("cause", "effect"):
      counter.malformed(line_no, f"question must be cause or effect, got {question!r}")
      continue
    if not _choices_ok(counter, line_no, choices):
      continue
    if "label" not in obj or obj["label"] in (-1, None):
      counter.unlabeled(line_no, "no label")
      continue
    label = _label_index(obj["label"], 2)
    if label is None:
      counter.malformed(line_no, f"unknown label {obj['label']!r}")
      continue
    yield {"id": str(obj.get("idx", line_no)), "context": premise, "question": question,
           "choices": choices, "label": label}


def read_siqa_jsonl(f, counter, labels_file=None):
  """Social IQa `{train,dev}.jsonl` with the labels (1-3, one per line) in `{name}-labels.lst`.

  The labels file is found beside the JSON lines file unless given; a `label` field in the JSON
  (as some exports have) is used when there is no labels file.
  """
  stem = os.path.splitext(f.path)[0]
  labels_path = labels_file or f"{stem}-labels.lst"
  labels = None
  if files.exists(labels_path):
    data = files.read_bytes(labels_path)
    counter.update_hash(data)
    labels = [line.strip() for line in data.decode("utf-8").splitlines()]
  for i, (line_no, obj) in enumerate(common.jsonl_rows(f, counter)):
    raw = labels[i] if labels is not None and i < len(labels) else obj.get("label")
    context = common.text_of(obj, "context")
    question = common.text_of(obj, "question")
    choices = [common.text_of(obj, k) for k in ("answerA", "answerB", "answerC")]
    if not context or not question:
      counter.malformed(line_no, "empty or missing context or question")
      continue
    if not _choices_ok(counter, line_no, choices):
      continue
    if raw in (None, ""):
      if labels is None:
        counter.unlabeled(line_no, "no labels file and no label field")
      else:
        counter.malformed(line_no, "labels file has fewer lines than the JSON lines file")
      continue
    label = _label_index(raw, 4)
    if label is None or label == 0:
      counter.malformed(line_no, f"label must be 1, 2 or 3, got {raw!r}")
      continue
    yield {"id": str(line_no), "context": context, "question": question, "choices": choices,
           "label": label - 1}


@line_records()
def read_hellaswag_jsonl(f, counter):
  """HellaSwag `hellaswag_{train,val,test}.jsonl` (ctx, endings, label; test has no label)."""
  for line_no, obj in common.jsonl_rows(f, counter):
    ctx = common.text_of(obj, "ctx")
    endings = obj.get("endings")
    if not ctx:
      counter.malformed(line_no, "empty or missing ctx")
      continue
    if not isinstance(endings, list) or len(endings) != 4:
      counter.malformed(line_no, "endings must be a list of 4 strings")
      continue
    choices = [e.strip() if isinstance(e, str) else "" for e in endings]
    if not _choices_ok(counter, line_no, choices):
      continue
    if obj.get("label") in (None, "", -1):
      counter.unlabeled(line_no, "no label")
      continue
    label = _label_index(obj["label"], 4)
    if label is None:
      counter.malformed(line_no, f"unknown label {obj['label']!r}")
      continue
    yield {"id": str(obj.get("ind", line_no)), "context": ctx,
           "question": str(obj.get("activity_label", "")).strip(), "choices": choices,
           "label": label}


@line_records()
def read_commonsenseqa_jsonl(f, counter):
  """CommonsenseQA `{train,dev}_rand_split.jsonl` (question.stem, question.choices, answerKey)."""
  for line_no, obj in common.jsonl_rows(f, counter):
    q = obj.get("question")
    if not isinstance(q, dict):
      counter.malformed(line_no, "missing question object")
      continue
    stem = common.text_of(q, "stem")
    choices_raw = q.get("choices")
    if not stem:
      counter.malformed(line_no, "empty or missing question stem")
      continue
    if not isinstance(choices_raw, list) or not choices_raw:
      counter.malformed(line_no, "missing choices")
      continue
    keys = [c.get("label") for c in choices_raw if isinstance(c, dict)]
    choices = [common.text_of(c, "text") if isinstance(c, dict) else None for c in choices_raw]
    if not _choices_ok(counter, line_no, choices):
      continue
    answer = obj.get("answerKey")
    if answer in (None, ""):
      counter.unlabeled(line_no, "no answerKey")
      continue
    if answer not in keys:
      counter.malformed(line_no, f"answerKey {answer!r} is not one of {keys}")
      continue
    yield {"id": str(obj.get("id", line_no)), "context": "", "question": stem,
           "choices": choices, "label": keys.index(answer)}


_COSMOS_COLUMNS = ["context", "question", "answer0", "answer1", "answer2", "answer3"]


def _cosmos_row(counter, line_no, row):
  context, question = (row.get("context") or "").strip(), (row.get("question") or "").strip()
  choices = [(row.get(f"answer{i}") or "").strip() for i in range(4)]
  if not context or not question:
    counter.malformed(line_no, "empty context or question")
    return None
  if not _choices_ok(counter, line_no, choices):
    return None
  raw = row.get("label")
  if raw in (None, ""):
    counter.unlabeled(line_no, "no label")
    return None
  label = _label_index(raw, 4)
  if label is None:
    counter.malformed(line_no, f"unknown label {raw!r}")
    return None
  return {"id": str(row.get("id", line_no)), "context": context, "question": question,
          "choices": choices, "label": label}


def read_cosmosqa(f, counter):
  """Cosmos QA `{train,valid}.csv` (id, context, question, answer0-3, label) or `test.jsonl`."""
  if f.path.endswith(".jsonl"):
    for line_no, obj in common.jsonl_rows(f, counter):
      out = _cosmos_row(counter, line_no, obj)
      if out:
        yield out
    return
  text = f.read()
  header = text.split("\n", 1)[0]
  with_label = "label" in [h.strip() for h in header.split(",")]
  for line_no, row in common.csv_rows(f, counter, ["id"] + _COSMOS_COLUMNS +
                                      (["label"] if with_label else [])):
    out = _cosmos_row(counter, line_no, row)
    if out:
      yield out
