"""The file sources parse the real samples in ../shared/data with the counts MANIFEST.md states.

For the format excerpts (original_format_excerpts/), whose counts MANIFEST does not list, the
expected numbers are counted here naively from the raw files (lines, objects, blank lines).
"""
import gzip
import json

import pytest

from tests.conftest import shared_path
from xfer_t5x.tasks import catalog, data_report
from xfer_t5x.tasks.sources import classification as cls
from xfer_t5x.tasks.sources import multiple_choice as mc
from xfer_t5x.tasks.sources import retrieval as ret
from xfer_t5x.tasks.sources import squad, tagging
from xfer_t5x.tasks.sources.base import FileText


def read(path, reader, **kwargs):
  """(rows, report) of one file through a reader, as a FileSource reads it."""
  counter = data_report.FileCounter(str(path), "test", "split", "test format")
  rows = list(reader(FileText(str(path), counter), counter, **kwargs))
  counter.kept(len(rows))
  return rows, counter.finish()


def _clean(report, kept):
  assert (report.kept, report.malformed, report.unlabeled) == (kept, 0, 0), report.locations


@pytest.mark.parametrize("lang", catalog.TARGET_LANGUAGES["xcopa"])
def test_xcopa_all_languages(lang):
  questions = set()
  for split, n in (("val", 100), ("test", 500)):
    rows, report = read(shared_path("xcopa", "data", lang, f"{split}.{lang}.jsonl"),
                        mc.read_copa_jsonl)
    _clean(report, n)
    assert all(len(r["choices"]) == 2 and r["label"] in (0, 1) for r in rows)
    questions |= {r["question"] for r in rows}
  # (XCOPA's Thai files mark every question "effect": a quirk of the release, kept as is.)
  assert questions <= {"cause", "effect"} and "effect" in questions


@pytest.mark.parametrize("lang", ["en", "de", "zh", "ar", "hi"])
def test_xquad(lang):
  rows, report = read(shared_path("xquad", f"xquad.{lang}.json"), squad.read_squad_json)
  _clean(report, 1190)
  assert all(r["answers"] and r["context"] for r in rows)


def test_lareqa_questions_and_pooled_candidates():
  pool = catalog.TARGET_LANGUAGES["lareqa"]
  for lang, n_candidates in (("en", 1180), ("de", 1276), ("zh", 1196)):
    rows, report = read(shared_path("lareqa", f"{lang}.json"), ret.read_lareqa_queries,
                        lang=lang, pool_langs=pool)
    _clean(report, 1190)
    # Each question's gold holds its answer sentence in each of the three languages present.
    assert sum(len(r["gold"]) == 3 for r in rows) > 1100
    assert all(f"{lang}_" in " ".join(r["gold"]) for r in rows)
    cands, report = read(shared_path("lareqa", f"{lang}.json"), ret.read_lareqa_candidates,
                         pool_langs=pool)
    _clean(report, n_candidates)
    assert len({c["id"] for c in cands}) == n_candidates


@pytest.mark.parametrize("code,lang,n", [("afr", "af", 1000), ("ara", "ar", 1000),
                                         ("cmn", "zh", 1000), ("deu", "de", 1000),
                                         ("fra", "fr", 1000), ("hin", "hi", 1000),
                                         ("jpn", "ja", 1000), ("kat", "ka", 746),
                                         ("swh", "sw", 390), ("tha", "th", 548)])
def test_tatoeba_pairs(code, lang, n):
  assert catalog.TATOEBA_CODES[lang] == code
  path = shared_path("tatoeba", f"tatoeba.{code}-eng.{code}")
  queries, report = read(path, ret.read_tatoeba_queries, lang=lang, lang3=code)
  _clean(report, n)
  cands, _ = read(path, ret.read_tatoeba_candidates, lang3=code)
  assert [q["gold"][0] for q in queries] == [c["id"] for c in cands]


@pytest.mark.parametrize("name,sentences,tokens", [
    ("dev-en", 3974, 62632), ("test-en", 5440, 84970), ("test-hi", 2684, 59259),
    ("test-zh", 3455, 62569), ("test-ar", 1680, 44952), ("test-wo", 470, 10049),
    ("test-yo", 100, 2664), ("test-ja", 2372, 53592)])
def test_udpos(name, sentences, tokens):
  rows, report = read(shared_path("udpos", f"{name}.tsv"), tagging.read_token_tag_tsv,
                      tag_set=tagging.UPOS_TAGS)
  _clean(report, sentences)
  assert sum(len(r["tokens"]) for r in rows) == tokens
  assert all(len(r["tokens"]) == len(r["tags"]) for r in rows)


def test_udpos_conllu_release():
  rows, report = read(shared_path("udpos", "conllu", "en_ewt-ud-dev.conllu"), tagging.read_conllu)
  _clean(report, 2001)
  # The XTREME-preprocessed dev file is the same treebank minus its empty sentences.
  tsv, _ = read(shared_path("udpos", "dev-en.tsv"), tagging.read_token_tag_tsv)
  assert rows[0]["tokens"] == tsv[0]["tokens"] and rows[0]["tags"] == tsv[0]["tags"]


@pytest.mark.parametrize("lang,sentences,tokens", [
    ("en", 10000, 80536), ("de", 10000, 97805), ("zh", 10000, 213682), ("ar", 10000, 64291),
    ("ja", 10000, 300844), ("hi", 1000, 5808), ("sw", 1000, 5609), ("yo", 100, 489)])
def test_panx(lang, sentences, tokens):
  rows, report = read(shared_path("panx", f"dev-{lang}.tsv"), tagging.read_token_tag_tsv,
                      tag_set=tagging.NER_TAGS, lang=lang)
  _clean(report, sentences)
  assert sum(len(r["tokens"]) for r in rows) == tokens


def test_squad_v2_unanswerable():
  rows, report = read(shared_path("squad_v2", "dev-v2.0-half.json"), squad.read_squad_json,
                      allow_unanswerable=True)
  _clean(report, 6078)
  assert sum(not r["answers"] for r in rows) == 3168


def test_squad_v2_in_a_v1_reader_is_malformed_not_silent():
  with pytest.raises(data_report.TooManyBadRowsError, match="is_impossible"):
    read(shared_path("squad_v2", "dev-v2.0-half.json"), squad.read_squad_json)


def test_cosmosqa():
  rows, report = read(shared_path("cosmosqa", "valid.csv"), mc.read_cosmosqa)
  _clean(report, 2985)
  assert all(len(r["choices"]) == 4 and 0 <= r["label"] < 4 for r in rows)


def test_sst2():
  rows, report = read(shared_path("sst2", "dev.tsv"), cls.read_glue_sst2)
  _clean(report, 872)
  assert {r["label"] for r in rows} == {"positive", "negative"}


def test_tydiqa_primary_task_file_is_not_goldp(tmp_path):
  """The TyDi QA samples here are the primary-task format; read as GoldP they fail at once."""
  src = shared_path("tydiqa", "tiny_dev.jsonl.gz")
  with pytest.raises(data_report.FormatError, match=r"tiny_dev\.jsonl\.gz:\d+: cannot read"):
    read(src, squad.read_squad_json)
  with gzip.open(src, "rt", encoding="utf-8") as f:
    assert len([line for line in f if line.strip()]) == 11


# ------------------------------------------------------------------ format excerpts


def _excerpt(*parts):
  return shared_path("original_format_excerpts", *parts)


def _lines(path):
  return [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _squad_questions(path):
  doc = json.loads(path.read_text(encoding="utf-8"))
  return [q for a in doc["data"] for p in a["paragraphs"] for q in p["qas"]]


@pytest.mark.parametrize("name", ["train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"])
def test_glue_mnli(name):
  path = _excerpt("glue_mnli", "dummy_data", "MNLI", name)
  rows, report = read(path, cls.read_glue_mnli)
  _clean(report, len(_lines(path)) - 1)
  assert all(r["label"] in cls.NLI_LABELS for r in rows)


def test_glue_mnli_test_is_unlabeled():
  path = _excerpt("glue_mnli", "dummy_data", "MNLI", "test_matched.tsv")
  rows, report = read(path, cls.read_glue_mnli, labeled=False)
  assert rows == [] and report.unlabeled == len(_lines(path)) - 1 and report.malformed == 0


@pytest.mark.parametrize("name", ["train.tsv", "dev.tsv"])
def test_glue_qqp_and_sst2(name):
  path = _excerpt("glue_qqp", "dummy_data", "QQP", name)
  _, report = read(path, cls.read_glue_qqp)
  _clean(report, len(_lines(path)) - 1)
  path = _excerpt("glue_sst2", "dummy_data", "SST-2", name)
  _, report = read(path, cls.read_glue_sst2)
  _clean(report, len(_lines(path)) - 1)


@pytest.mark.parametrize("rnd", ["R1", "R2", "R3"])
def test_anli(rnd):
  for split in ("train", "dev", "test"):
    path = _excerpt("anli", "dummy_data", "anli_v0.1", rnd, f"{split}.jsonl")
    rows, report = read(path, cls.read_anli_jsonl)
    _clean(report, len(_lines(path)))
    assert all(r["label"] in cls.NLI_LABELS for r in rows)


def test_hellaswag():
  for name, labeled in (("hellaswag_train.jsonl", True), ("hellaswag_val.jsonl", True),
                        ("hellaswag_test.jsonl", False)):
    path = _excerpt("hellaswag", "dummy_data", name)
    n = len(_lines(path))
    _, report = read(path, mc.read_hellaswag_jsonl)
    assert (report.kept, report.unlabeled, report.malformed) == ((n, 0, 0) if labeled
                                                                 else (0, n, 0))


def test_commonsenseqa():
  for name, labeled in (("train_rand_split.jsonl", True), ("dev_rand_split.jsonl", True),
                        ("test_rand_split_no_answers.jsonl", False)):
    path = _excerpt("commonsense_qa", "dummy_data", name)
    n = len(_lines(path))
    rows, report = read(path, mc.read_commonsenseqa_jsonl)
    assert (report.kept, report.unlabeled) == ((n, 0) if labeled else (0, n))
    assert all(len(r["choices"]) == 5 for r in rows)


def test_cosmosqa_excerpts():
  path = _excerpt("cosmos_qa", "dummy_data", "train.csv")
  _, report = read(path, mc.read_cosmosqa)
  _clean(report, len(_lines(path)) - 1)
  path = _excerpt("cosmos_qa", "dummy_data", "test.jsonl")
  _, report = read(path, mc.read_cosmosqa)
  assert (report.kept, report.unlabeled) == (0, len(_lines(path)))


def test_squad_v2_excerpt_and_tydiqa_goldp():
  path = _excerpt("squad_v2", "dummy_data", "dev-v2.0.json")
  _, report = read(path, squad.read_squad_json, allow_unanswerable=True)
  _clean(report, len(_squad_questions(path)))
  for split in ("train", "dev"):
    path = _excerpt("tydiqa_goldp", "dummy_data", f"tydiqa-goldp-v1.1-{split}.json")
    questions = _squad_questions(path)
    for lang, name in squad.TYDIQA_LANGUAGE_NAMES.items():
      _, report = read(path, squad.read_squad_json, id_prefix=f"{name}-")
      _clean(report, sum(q["id"].startswith(f"{name}-") for q in questions))


@pytest.mark.parametrize("lang", ["en", "es", "de", "ar", "hi", "vi", "zh"])
def test_mlqa(lang):
  for split in ("dev", "test"):
    path = _excerpt("mlqa", f"mlqa.en.{lang}", "dummy_data", "MLQA_V1", split,
                    f"{split}-context-en-question-{lang}.json")
    _, report = read(path, squad.read_squad_json)
    _clean(report, len(_squad_questions(path)))


def test_wikiann_all_excerpt_languages():
  root = _excerpt("wikiann")
  langs = sorted(p.name for p in root.iterdir() if p.is_dir())
  assert len(langs) == 40
  for lang in langs:
    for split in ("train", "dev", "test"):
      path = root / lang / "dummy_data" / f"{lang}.tar.gz" / split
      text = path.read_text(encoding="utf-8")
      n = len([b for b in text.split("\n\n") if b.strip()])
      rows, report = read(path, tagging.read_token_tag_tsv, tag_set=tagging.NER_TAGS, lang=lang)
      _clean(report, n)
      # The `<lang>:` prefix of WikiANN's tokens is removed.
      assert not any(t.startswith(f"{lang}:") for r in rows for t in r["tokens"]), lang
