"""Fixtures of the task tests: a local vocabulary, the demo data, and a data dir for every task.

`study_data` assembles, in a temporary folder, one folder per dataset: links to the real samples
in ../shared/data where they exist, the demo data (MNLI, SST-2, XNLI, PAN-X training file), and
tiny files the tests write in the released formats for the datasets with no sample here (SNLI,
SQuAD v1.1, Social IQa, COPA, UD English train, Mewsli-X, CCGbank). `STUDY_LANGUAGES` are the
languages that data covers.
"""
import json
import os
import pathlib

import pytest

from tests.conftest import SHARED_DATA

STUDY_LANGUAGES = {
    "xnli": ["en", "de"], "xcopa": ["et", "zh"], "udpos": ["en", "hi"], "panx": ["en", "de"],
    "xquad": ["de"], "mlqa": ["en"], "tydiqa": ["ar"], "mewslix": ["de"],
    "lareqa": ["de", "zh"], "tatoeba": ["de", "ja"],
}
EXCERPTS = SHARED_DATA / "original_format_excerpts"
MLM_TEXT = {
    "en": ["The cat sat on the mat and looked at the garden for a long time.",
           "A man reads a book in the park while the children play football nearby."] * 3,
    "de": ["Die Katze sitzt auf der Matte und schaut lange in den Garten.",
           "Ein Mann liest ein Buch im Park, waehrend die Kinder Fussball spielen."] * 3,
}


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
  from xfer_t5x.tasks import demo_data
  root = tmp_path_factory.mktemp("demo")
  demo_data.write_demo_data(str(root))
  return root


@pytest.fixture(scope="session")
def local_vocab(demo_dir, tmp_path_factory):
  from xfer_t5x.tasks import demo_data, vocab
  path = tmp_path_factory.mktemp("vocab") / "spm.model"
  return vocab.build_local_vocabulary(demo_data.demo_texts(str(demo_dir)), str(path))


def _write(path: pathlib.Path, text: str):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text, encoding="utf-8")


def _jsonl(path, rows):
  _write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _link(dst: pathlib.Path, src: pathlib.Path):
  dst.parent.mkdir(parents=True, exist_ok=True)
  os.symlink(src, dst)


def write_small_releases(root: pathlib.Path):
  """Tiny files in the released formats of datasets that have no sample in ../shared/data."""
  _jsonl(root / "snli" / "snli_1.0_train.jsonl", [
      {"sentence1": "A man plays a guitar.", "sentence2": "A man plays music.",
       "gold_label": "entailment", "pairID": "s1"},
      {"sentence1": "A dog runs.", "sentence2": "A cat sleeps.", "gold_label": "-",
       "pairID": "s2"},
      {"sentence1": "Two kids eat.", "sentence2": "Nobody eats.", "gold_label": "contradiction",
       "pairID": "s3"}])
  squad = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{
      "context": "Berlin is the capital of Germany. It has 3.6 million people.",
      "qas": [{"id": "q1", "question": "What is the capital of Germany?",
               "answers": [{"text": "Berlin", "answer_start": 0}]},
              {"id": "q2", "question": "How many people live in Berlin?",
               "answers": [{"text": "3.6 million", "answer_start": 41}]}]}]}]}
  for name in ("train-v1.1.json", "dev-v1.1.json"):
    _write(root / "squad" / name, json.dumps(squad))
  goldp = json.loads(json.dumps(squad))
  goldp["data"][0]["paragraphs"][0]["qas"][0]["id"] = "english-1-0"
  goldp["data"][0]["paragraphs"][0]["qas"][1]["id"] = "finnish-2-0"
  _write(root / "tydiqa" / "tydiqa-goldp-v1.1-train.json", json.dumps(goldp))
  siqa = [{"context": "Tracy paid for lunch.", "question": "Why did Tracy do this?",
           "answerA": "to be kind", "answerB": "to sleep", "answerC": "to swim"},
          {"context": "Jordan lost the keys.", "question": "How would Jordan feel?",
           "answerA": "happy", "answerB": "upset", "answerC": "tall"}]
  for split in ("train", "dev"):
    _jsonl(root / "siqa" / f"{split}.jsonl", siqa)
    _write(root / "siqa" / f"{split}-labels.lst", "1\n2\n")
    _jsonl(root / "copa" / ("train.jsonl" if split == "train" else "val.jsonl"), [
        {"premise": "The man broke his toe.", "choice1": "He dropped a hammer on his foot.",
         "choice2": "He got a hole in his sock.", "question": "cause", "label": 0, "idx": 0}])
  _write(root / "udpos" / "train-en.tsv", "The\tDET\ncat\tNOUN\nsleeps\tVERB\n.\tPUNCT\n")
  for f in (SHARED_DATA / "udpos").glob("*.tsv"):
    _link(root / "udpos" / f.name, f)
  for f in (SHARED_DATA / "panx").glob("*.tsv"):
    _link(root / "panx" / f.name, f)
  context = {"document_title": "News", "document_url": "u", "document_id": "d1",
             "language": "de", "text": "Angela Merkel besuchte Paris. Es regnete.",
             "sentence_spans": [{"start": 0, "end": 29}, {"start": 30, "end": 41}]}
  for split in ("dev", "test"):
    _jsonl(root / "mewslix" / f"wikinews_mentions-{split}.jsonl", [{
        "context": context,
        "mentions": [{"example_id": "m1", "entity_id": "Q567",
                      "mention_span": {"start": 0, "end": 13, "text": "Angela Merkel"}},
                     {"example_id": "m2", "entity_id": "Q90",
                      "mention_span": {"start": 23, "end": 28, "text": "Paris"}}]}])
  _jsonl(root / "mewslix" / "candidate_set_entities.jsonl", [
      {"entity_id": "Q567", "title": "Angela Merkel", "description": "German politician.",
       "sentence_spans": [{"start": 0, "end": 18}], "description_language": "en",
       "description_url": "u"},
      {"entity_id": "Q90", "title": "Paris", "description": "Capital of France.",
       "sentence_spans": [{"start": 0, "end": 18}], "description_language": "en",
       "description_url": "u"}])
  for split in ("train", "dev"):
    _jsonl(root / "mewslix" / f"wikipedia_pairs-{split}.jsonl", [
        wikipedia_pair("p1", "Q64", "Berlin", "Berlin is the capital of Germany. It is big.",
                       0, 6, "Capital and largest city of Germany."),
        wikipedia_pair("p2", "Q90", "Paris", "He moved to Paris in 1920.", 12, 17,
                       "Capital of France.")])
  auto = ("ID=wsj_0001.1 PARSER=GOLD NUMPARSE=1\n"
          "(<T S[dcl] 0 2> (<L N NNP NNP Pierre N_1>) (<T S[dcl]\\NP 0 2> "
          "(<L (S[dcl]\\NP)/NP VBZ VBZ likes (S\\NP)/NP>) (<L N NNS NNS apples N>) ) )\n")
  for section in ("00", "02", "12", "21", "23"):
    _write(root / "ccgbank" / "data" / "AUTO" / section / f"wsj_{section}01.auto", auto)


def wikipedia_pair(example_id, entity_id, mention, text, start, end, description):
  """One line of Mewsli-X's wikipedia_pairs-*.jsonl (English Wikipedia training pairs)."""
  return {
      "contextual_mention": {
          "context": {"document_id": "Q1", "document_url": "u", "document_title": "Page",
                      "section_title": "", "language": "en", "text": text,
                      "sentence_spans": [{"start": 0, "end": len(text)}]},
          "mention": {"example_id": example_id, "entity_id": entity_id,
                      "mention_span": {"text": mention, "start": start, "end": end}}},
      "entity": {"entity_id": entity_id, "title": mention, "description": description,
                 "description_language": "en", "description_url": "u",
                 "sentence_spans": [{"start": 0, "end": len(description)}]}}


@pytest.fixture(scope="session")
def study_data(demo_dir, tmp_path_factory):
  """(data_dir, data_dirs): a folder for every dataset of the study (see module docstring)."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"real data samples not found at {SHARED_DATA}")
  root = tmp_path_factory.mktemp("study_data")
  for name in ("xcopa", "xquad", "lareqa", "tatoeba", "squad_v2", "cosmosqa"):
    _link(root / name, SHARED_DATA / name)
  for name in ("mnli", "sst2", "xnli"):
    _link(root / name, demo_dir / name)
  _link(root / "panx" / "train-en.tsv", demo_dir / "panx" / "train-en.tsv")
  _link(root / "tydiqa" / "tydiqa-goldp-v1.1-dev.json",
        EXCERPTS / "tydiqa_goldp" / "dummy_data" / "tydiqa-goldp-v1.1-dev.json")
  write_small_releases(root)
  for lang, docs in MLM_TEXT.items():  # the mlm baseline: one document per line
    _write(root / "mlm" / f"{lang}.txt", "".join(d + "\n\n" for d in docs))
  data_dirs = {
      "qqp": str(EXCERPTS / "glue_qqp" / "dummy_data" / "QQP"),
      "anli_r1": str(EXCERPTS / "anli" / "dummy_data"),
      "anli_r2": str(EXCERPTS / "anli" / "dummy_data"),
      "anli_r3": str(EXCERPTS / "anli" / "dummy_data"),
      "hellaswag": str(EXCERPTS / "hellaswag" / "dummy_data"),
      "commonsenseqa": str(EXCERPTS / "commonsense_qa" / "dummy_data"),
      "mlqa": str(EXCERPTS / "mlqa" / "mlqa.en.en" / "dummy_data"),
  }
  return str(root), data_dirs
