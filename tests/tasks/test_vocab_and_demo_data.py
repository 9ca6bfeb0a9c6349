"""The local vocabulary (T5 conventions, byte fallback, determinism) and the demo data."""
import hashlib
import re

import seqio

from xfer_t5x.tasks import demo_data, registry, study, vocab
from xfer_t5x.tasks.sources import base
from xfer_t5x.tasks.sources import classification as cls
from xfer_t5x.tasks.sources import tagging


def _digest(root):
  h = hashlib.sha256()
  for p in sorted(root.rglob("*")):
    if p.is_file():
      h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
  return h.hexdigest()


def test_local_vocabulary_conventions(local_vocab):
  assert (local_vocab.pad_id, local_vocab.eos_id, local_vocab.unk_id) == (0, 1, 2)
  assert local_vocab.extra_ids == 100
  # Byte fallback: a script never seen in training comes back intact, with no UNK.
  for text in ("ทดสอบภาษาไทย", "Ελληνικά κείμενα", "hello 👋"):
    ids = local_vocab.encode(text)
    assert 2 not in ids and local_vocab.decode(ids) == text


def test_local_vocabulary_is_deterministic(demo_dir, tmp_path):
  texts = list(demo_data.demo_texts(str(demo_dir)))
  a = vocab.build_local_vocabulary(texts, str(tmp_path / "a.model"))
  b = vocab.build_local_vocabulary(texts, str(tmp_path / "b.model"))
  assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()
  assert vocab.vocabulary_key(a)[1:] != vocab.vocabulary_key(b)[1:]  # different paths
  assert vocab.vocabulary_key(a)[3] == vocab.vocabulary_key(b)[3]    # same contents
  assert a.vocab_size == b.vocab_size > 400


def test_demo_data_is_deterministic(tmp_path):
  demo_data.write_demo_data(str(tmp_path / "a"), seed=3)
  demo_data.write_demo_data(str(tmp_path / "b"), seed=3)
  demo_data.write_demo_data(str(tmp_path / "c"), seed=4)
  assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def _read(path, reader, **kwargs):
  from xfer_t5x.tasks import data_report
  counter = data_report.FileCounter(str(path), "demo", "s")
  rows = list(reader(base.FileText(str(path), counter), counter, **kwargs))
  assert counter.report.malformed == 0 and counter.report.unlabeled == 0
  return rows


def test_demo_labels_follow_learnable_patterns(demo_dir):
  # pylint: disable=protected-access
  keys = {lang: demo_data._LEX[lang]["key"] for lang in demo_data.LANGUAGES}
  for lang in demo_data.LANGUAGES:
    rows = _read(demo_dir / "xnli" / "xnli.test.tsv", cls.read_xnli_tsv, lang=lang)
    assert len(rows) == 20
    for r in rows:
      present = [i for i, k in enumerate(keys[lang]) if k in r["hypothesis"]]
      assert present == [cls.NLI_LABELS.index(r["label"])], r
  rows = _read(demo_dir / "sst2" / "train.tsv", cls.read_glue_sst2)
  assert len(rows) == 120 and {r["label"] for r in rows} == {"positive", "negative"}
  for r in rows:
    words = set(re.findall(r"\w+", r["sentence"]))
    assert bool(words & set(demo_data._SST_POS)) == (r["label"] == "positive")
  rows = _read(demo_dir / "mnli" / "train.tsv", cls.read_glue_mnli)
  assert len(rows) == 120
  for lang in demo_data.LANGUAGES:
    rows = _read(demo_dir / "panx" / f"dev-{lang}.tsv", tagging.read_token_tag_tsv,
                 tag_set=tagging.NER_TAGS)
    assert len(rows) == 20 and all("B-PER" in r["tags"] for r in rows)


def test_demo_tasks_preview(local_vocab, demo_dir):
  study.register_tasks(local_vocab, str(demo_dir),
                       languages={"xnli": list(demo_data.LANGUAGES),
                                  "panx": list(demo_data.LANGUAGES)})
  for name, split, n in (("mnli", "train", 120), ("sst2", "validation", 20),
                         ("xnli_train", "train", 120), ("xnli.zh", "test", 20),
                         ("panx_train", "train", 120), ("panx.sw", "test", 20),
                         ("xnli.ar", "test", 20), ("panx.hi", "test", 20), ("xnli.tr", "test", 20)):
    exs = list(seqio.get_mixture_or_task(name).get_dataset(
        registry.task_info(name).sequence_length, split=split, shuffle=False))
    assert len(exs) == n, name
    # The local vocabulary covers the demo text without UNK.
    assert all(2 not in ex["inputs"].numpy() for ex in exs), name


def test_local_vocabulary_decodes_the_demo_text_unchanged(local_vocab, demo_dir):
  # Predictions are compared with targets as strings: every script of the demo (Latin, Han,
  # Arabic, Devanagari) must come back from the vocabulary exactly, with no UNK.
  texts = list(demo_data.demo_texts(str(demo_dir)))
  scripts = {"ar": "\u0600", "hi": "\u0900", "zh": "\u4e00"}
  for lang, start in scripts.items():
    assert any(start <= c <= chr(ord(start) + 0xff) for t in texts for c in t), lang
  assert len({c for t in texts for c in t}) < local_vocab.vocab_size - 259
  for text in texts:
    ids = local_vocab.encode(text)
    assert 2 not in ids and local_vocab.decode(ids) == " ".join(text.split()), text
