"""Span corruption (the `mlm` baseline) against the published algorithm: noise fraction 0.15,
mean span length 3, sentinels from the end of the vocabulary, every token restored exactly once
from inputs plus targets; and the `mlm.<lang>` tasks and mixture over one-document-per-line text."""
import numpy as np
import pytest
import seqio

from xfer_t5x.tasks import registry, span_corruption as sc, study

VOCAB = 1000


def test_noise_statistics_over_many_examples():
  rng = np.random.default_rng(0)
  noise = spans = tokens = 0
  span_lengths = []
  for _ in range(2000):
    n = int(rng.integers(200, 1200))
    mask = sc.noise_mask(n, rng)
    assert len(mask) == n and not mask[0] and mask[-1]  # kept text first, noise last
    starts = np.flatnonzero(mask & ~np.concatenate([[False], mask[:-1]]))
    ends = np.flatnonzero(mask & ~np.concatenate([mask[1:], [False]]))
    span_lengths += list(ends - starts + 1)
    noise += mask.sum()
    spans += len(starts)
    tokens += n
  assert noise / tokens == pytest.approx(0.15, abs=0.002)
  assert noise / spans == pytest.approx(3.0, abs=0.05)
  assert np.mean(span_lengths) == pytest.approx(3.0, abs=0.05)
  # spans are uniform compositions: lengths spread out (geometric-like), not all 3
  assert min(span_lengths) == 1 and max(span_lengths) >= 12
  assert 0.25 < np.mean(np.array(span_lengths) == 1) < 0.45


def test_round_trip_restores_every_token_exactly_once():
  rng = np.random.default_rng(1)
  for _ in range(500):
    n = int(rng.integers(2, 300))
    tokens = rng.integers(2, VOCAB - 100, size=n)
    mask = sc.noise_mask(n, rng)
    inputs, targets = sc.corrupt(tokens, mask, VOCAB)
    spans = int((mask & ~np.concatenate([[False], mask[:-1]])).sum())
    sentinels = VOCAB - 1 - np.arange(spans)
    # inputs: the kept tokens in order, one sentinel per span, <extra_id_0> first
    assert (inputs[inputs >= VOCAB - 100] == sentinels).all()
    assert (inputs[inputs < VOCAB - 100] == tokens[~mask]).all()
    assert (targets[targets >= VOCAB - 100] == sentinels).all()
    assert (targets[targets < VOCAB - 100] == tokens[mask]).all()
    assert len(inputs) + len(targets) == n + 2 * spans
    assert (sc.reconstruct(inputs, targets, VOCAB) == tokens).all()


def test_a_hand_checked_example():
  tokens = np.arange(10, 20)
  mask = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 1], bool)
  inputs, targets = sc.corrupt(tokens, mask, VOCAB)
  assert inputs.tolist() == [10, 11, 999, 14, 15, 16, 998, 18, 997]
  assert targets.tolist() == [999, 12, 13, 998, 17, 997, 19]


def test_chunk_lengths_match_t5_and_mt5():
  assert sc.tokens_length_for(512) == (568, 114)    # T5's inputs 512 -> targets 114
  assert sc.tokens_length_for(1024) == (1137, 229)  # mT5's pretraining lengths


@pytest.fixture()
def mlm_tasks(local_vocab, tmp_path):
  docs = {"de": ["Die Katze sitzt auf der Matte.", "", "Ein Mann liest ein Buch im Park."] * 20,
          "sw": ["Paka amekaa juu ya mkeka."] * 5}
  for lang, lines in docs.items():
    (tmp_path / "mlm").mkdir(exist_ok=True)
    (tmp_path / "mlm" / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
  study.register_tasks(local_vocab, str(tmp_path), mlm_languages=["de", "sw"],
                       languages={"xnli": ["en"]})
  yield docs
  registry.unregister_all()


def test_mlm_tasks_read_text_and_corrupt_it(mlm_tasks, local_vocab):
  task = seqio.get_mixture_or_task("mlm.de")
  lengths = {"inputs": 32, "targets": 16}
  examples = list(task.get_dataset(lengths, split="train", shuffle=False, seed=3).as_numpy_iterator())
  again = list(task.get_dataset(lengths, split="train", shuffle=False, seed=3).as_numpy_iterator())
  assert len(examples) > 5
  chunk, _ = sc.tokens_length_for(32)
  restored = []
  for ex, ex2 in zip(examples, again):
    assert (ex["inputs"] == ex2["inputs"]).all()  # deterministic
    assert ex["inputs"][-1] == 1 and ex["targets"][-1] == 1 and len(ex["inputs"]) <= 32
    assert ex["targets"][0] == local_vocab.vocab_size - 1  # <extra_id_0>
    restored.append(sc.reconstruct(ex["inputs"][:-1], ex["targets"][:-1],
                                   local_vocab.vocab_size))
  # the chunks, restored and joined, are the documents' tokens in order (blank lines skipped)
  docs = [d for d in mlm_tasks["de"] if d]
  expected = np.concatenate([local_vocab.encode(d) for d in docs])
  joined = np.concatenate(restored)
  assert (joined == expected[:len(joined)]).all() and len(joined) == len(expected)
  assert all(len(r) == chunk for r in restored[:-1])
  info = registry.task_info("mlm.de")
  assert info.family == "span_corruption" and info.language == "de"
  assert info.sequence_length == {"inputs": 1024, "targets": 229}


def test_mlm_mixture_rates_follow_text_size_with_temperature(mlm_tasks, tmp_path):
  mix = seqio.get_mixture_or_task("mlm")
  assert sorted(t.name for t in mix.tasks) == ["mlm.de", "mlm.sw"]
  sizes = {lang: (tmp_path / "mlm" / f"{lang}.txt").stat().st_size for lang in mlm_tasks}
  rates = {t.name: mix.get_rate(t) for t in mix.tasks}
  assert rates["mlm.de"] / rates["mlm.sw"] == pytest.approx((sizes["de"] / sizes["sw"]) ** 0.3)
  assert 1 < rates["mlm.de"] / rates["mlm.sw"] < sizes["de"] / sizes["sw"]  # flattened


def test_missing_language_text_names_the_file(local_vocab, tmp_path):
  study.register_tasks(local_vocab, str(tmp_path), mlm_languages=["fi"],
                       languages={"xnli": ["en"]})
  try:
    with pytest.raises(FileNotFoundError, match=r"fi\.txt"):
      seqio.get_mixture_or_task("mlm.fi").source.files("train")
  finally:
    registry.unregister_all()


def test_mlm_from_tfds_c4_multilingual_spec():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from xfer_t5x.tasks.sources import tfds as tfds_sources  # pylint: disable=g-import-not-at-top
  spec = tfds_sources.tfds_spec("mlm", "sw")
  assert spec.name == "c4/multilingual"
  assert spec.splits == {"train": "sw", "validation": "sw-validation"}
  rows = tf.data.Dataset.from_tensor_slices(
      {"text": ["Paka amekaa."], "url": ["http://x"], "timestamp": ["2020"]})
  assert list(spec.convert(rows).as_numpy_iterator()) == [{"text": b"Paka amekaa."}]
