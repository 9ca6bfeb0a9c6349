"""TFDS sources, chosen per task, tested only through tfds.testing.mock_data (policy USE_CODE):
nothing downloads, and an unprepared dataset fails at once with a clear message."""
import pytest
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from xfer_t5x.tasks import registry, study

TFDS = {"mnli": "tfds", "squad_v2": "tfds", "cosmosqa": "tfds", "xnli": "tfds", "panx": "tfds",
        "xquad": "tfds"}


@pytest.fixture(scope="module")
def tfds_tasks(local_vocab, tmp_path_factory):
  empty = str(tmp_path_factory.mktemp("no_tfds_data"))
  study.register_tasks(local_vocab, "/nonexistent", sources=TFDS, tfds_data_dir=empty,
                       languages={"xnli": ["de"], "panx": ["de"], "xquad": ["de"]})
  return empty


def _examples(name, split, **mock):
  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, **mock):
    ds = seqio.get_mixture_or_task(name).get_dataset({"inputs": 64, "targets": 16}, split=split,
                                                     shuffle=False)
    return list(ds)


@pytest.mark.parametrize("name,split,prefix", [("mnli", "train", "mnli hypothesis: "),
                                               ("squad_v2", "validation", "question: "),
                                               ("cosmosqa", "train", "cosmosqa context: "),
                                               ("xquad.de", "test", "question: ")])
def test_mocked_tfds_datasets_flow_through_the_task(tfds_tasks, name, split, prefix):
  assert registry.task_info(name).source.startswith("TFDS")
  exs = _examples(name, split, num_examples=3)
  assert len(exs) == 3
  for ex in exs:
    assert ex["inputs_pretokenized"].numpy().decode().startswith(prefix)
    assert ex["targets"].numpy()[-1] == 1


def test_xnli_from_tfds_keeps_one_language(tfds_tasks):
  def as_dataset(self, *args, **kwargs):
    del self, args, kwargs
    return tf.data.Dataset.from_tensors({
        "premise": {"de": tf.constant("Ein Mann schläft."), "en": tf.constant("A man sleeps.")},
        "hypothesis": {"language": tf.constant(["en", "de"]),
                       "translation": tf.constant(["A man rests.", "Ein Mann ruht."])},
        "label": tf.constant(0, tf.int64)})
  (ex,) = _examples("xnli.de", "test", as_dataset_fn=as_dataset)
  assert ex["inputs_pretokenized"].numpy().decode() == (
      "xnli premise: Ein Mann schläft. hypothesis: Ein Mann ruht.")
  assert ex["targets_pretokenized"].numpy().decode() == "entailment"


def test_wikiann_from_tfds_gives_mt5_spans(tfds_tasks):
  def as_dataset(self, *args, **kwargs):
    del self, args, kwargs
    return tf.data.Dataset.from_tensors({
        "tokens": tf.constant(["Anna", "lebt", "in", "Berlin"]),
        "tags": tf.constant([1, 0, 0, 5], tf.int64),
        "langs": tf.constant(["de"] * 4), "spans": tf.constant(["PER: Anna", "LOC: Berlin"])})
  (ex,) = _examples("panx.de", "test", as_dataset_fn=as_dataset)
  assert ex["targets_pretokenized"].numpy().decode() == "PER: Anna $$ LOC: Berlin"
  assert [t.decode() for t in ex["tags"].numpy()] == ["B-PER", "O", "O", "B-LOC"]


def test_unprepared_tfds_dataset_fails_without_downloading(tfds_tasks):
  with pytest.raises(FileNotFoundError, match="never downloads"):
    seqio.get_mixture_or_task("mnli").get_dataset({"inputs": 8, "targets": 8}, split="train")


def test_tfds_phases_record_the_dataset_and_version(tfds_tasks):
  """The data version of a TFDS-backed read names the dataset, its version and split, not the
  hash of an empty file list; another split gives another version."""
  from xfer_t5x.tasks import data_report  # pylint: disable=g-import-not-at-top
  empty = data_report.data_version([])
  data_report.reset_data_report()
  _examples("mnli", "train", num_examples=2)
  (report,) = data_report.data_report("mnli")
  assert report["path"].startswith("tfds://glue/mnli/") and report["path"].endswith("/train")
  train_version = data_report.data_version(["mnli"])
  assert train_version != empty
  data_report.reset_data_report()
  _examples("mnli", "validation", num_examples=2)
  assert data_report.data_version(["mnli"]) not in (empty, train_version)
