"""TFDS sources for the datasets TFDS has, converted to the file sources' row schemas.

Nothing here ever downloads: the builder is made with `try_gcs=False` and only `as_dataset` is
called, so a dataset that is not already prepared in the TFDS data dir fails at once with a clear
message instead of hanging on a download (tests use `tfds.testing.mock_data(policy=USE_CODE)`).
Rows with TFDS's -1 "no label" are filtered inside the pipeline (they are not counted per file:
the bad-row report covers the file sources).

Not offered through TFDS: XCOPA, Mewsli-X, LAReQA (not in TFDS), Social IQa and CommonsenseQA
(not in this TFDS release), UD-POS (TFDS `xtreme_pos` swaps Tamil and Tagalog), Tatoeba (TFDS's
is OPUS Tatoeba, not the LASER test set XTREME uses).
"""
import dataclasses
from typing import Callable, Mapping, Optional

import seqio
import tensorflow as tf

from xfer_t5x.tasks import data_report
from xfer_t5x.tasks.sources.classification import NLI_LABELS, QQP_LABELS, SST2_LABELS
from xfer_t5x.tasks.sources.tagging import NER_TAGS


def _words(labels, index):
  return tf.gather(tf.constant(labels), tf.cast(index, tf.int32))


def _labeled(ex):
  return ex["label"] >= 0


def _nli(premise_key):
  def convert(ds):
    ds = ds.filter(_labeled)
    return ds.map(lambda ex: {
        "id": tf.strings.as_string(ex["idx"]) if "idx" in ex else ex.get("uid", tf.constant("")),
        "premise": ex[premise_key], "hypothesis": ex["hypothesis"],
        "label": _words(NLI_LABELS, ex["label"])})
  return convert


def _snli(ds):
  ds = ds.filter(_labeled)
  return ds.map(lambda ex: {"id": tf.constant(""), "premise": ex["premise"],
                            "hypothesis": ex["hypothesis"],
                            "label": _words(NLI_LABELS, ex["label"])})


def _xnli(lang):
  def convert(ds):
    def one(ex):
      langs = ex["hypothesis"]["language"]
      hyp = tf.boolean_mask(ex["hypothesis"]["translation"], tf.equal(langs, lang))
      return {"id": tf.constant(""), "premise": ex["premise"][lang],
              "hypothesis": tf.reshape(hyp[:1], []), "label": _words(NLI_LABELS, ex["label"])}
    has_lang = lambda ex: tf.reduce_any(tf.equal(ex["hypothesis"]["language"], lang))
    return ds.filter(_labeled).filter(has_lang).map(one)
  return convert


def _qqp(ds):
  return ds.filter(_labeled).map(lambda ex: {
      "id": tf.strings.as_string(ex["idx"]), "question1": ex["question1"],
      "question2": ex["question2"], "label": _words(QQP_LABELS, ex["label"])})


def _sst2(ds):
  return ds.filter(_labeled).map(lambda ex: {
      "id": tf.strings.as_string(ex["idx"]), "sentence": ex["sentence"],
      "label": _words(SST2_LABELS, ex["label"])})


def _squad(id_prefix=None):
  def convert(ds):
    if id_prefix:
      ds = ds.filter(lambda ex: tf.strings.regex_full_match(ex["id"], id_prefix + ".*"))
    def one(ex):
      texts, starts = ex["answers"]["text"], ex["answers"]["answer_start"]
      if "is_impossible" in ex:
        keep = tf.logical_not(ex["is_impossible"])
        texts = tf.cond(keep, lambda: texts, lambda: texts[:0])
        starts = tf.cond(keep, lambda: starts, lambda: starts[:0])
      return {"id": ex["id"], "context": ex["context"], "question": ex["question"],
              "answers": texts, "answer_starts": tf.cast(starts, tf.int32)}
    return ds.map(one)
  return convert


def _hellaswag(ds):
  ds = ds.filter(lambda ex: tf.equal(tf.size(ex["endings"]), 4))
  return ds.filter(_labeled).map(lambda ex: {
      "id": tf.constant(""), "context": ex["context"], "question": ex["activity_label"],
      "choices": ex["endings"], "label": tf.cast(ex["label"], tf.int32)})


def _cosmosqa(ds):
  return ds.filter(_labeled).map(lambda ex: {
      "id": ex["id"], "context": ex["context"], "question": ex["question"],
      "choices": tf.stack([ex[f"answer{i}"] for i in range(4)]),
      "label": tf.cast(ex["label"], tf.int32)})


def _copa(ds):
  return ds.filter(_labeled).map(lambda ex: {
      "id": tf.strings.as_string(ex["idx"]), "context": ex["premise"],
      "question": ex["question"], "choices": tf.stack([ex["choice1"], ex["choice2"]]),
      "label": tf.cast(ex["label"], tf.int32)})


def _wikiann(ds):
  ds = ds.filter(lambda ex: tf.equal(tf.size(ex["tokens"]), tf.size(ex["tags"])))
  return ds.map(lambda ex: {"id": tf.constant(""), "tokens": ex["tokens"],
                            "tags": _words(NER_TAGS, ex["tags"])})


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
  """A TFDS dataset (name:version or name), its split names, and the converter to our rows."""
  name: str
  splits: Mapping[str, str]
  convert: Callable[[tf.data.Dataset], tf.data.Dataset]


_TV = {"train": "train", "validation": "validation"}


def tfds_spec(dataset: str, lang: Optional[str] = None) -> Optional[TfdsSpec]:
  """The TFDS spec for one of our dataset keys (see registry), or None if TFDS lacks it."""
  specs = {
      "mnli": lambda: TfdsSpec("glue/mnli", {"train": "train",
                                             "validation": "validation_matched"},
                               _nli("premise")),
      "qqp": lambda: TfdsSpec("glue/qqp", _TV, _qqp),
      "sst2": lambda: TfdsSpec("glue/sst2", _TV, _sst2),
      "snli": lambda: TfdsSpec("snli", _TV, _snli),
      "anli_r1": lambda: TfdsSpec("anli/r1", _TV, _nli("context")),
      "anli_r2": lambda: TfdsSpec("anli/r2", _TV, _nli("context")),
      "anli_r3": lambda: TfdsSpec("anli/r3", _TV, _nli("context")),
      "xnli": lambda: TfdsSpec("xnli", {"validation": "validation", "test": "test"},
                               _xnli(lang)),
      "squad_v1": lambda: TfdsSpec("squad/v1.1", _TV, _squad()),
      "squad_v2": lambda: TfdsSpec("squad/v2.0", _TV, _squad()),
      "xquad": lambda: TfdsSpec(f"xquad/{lang}", {"test": "test"}, _squad()),
      "mlqa": lambda: TfdsSpec(f"mlqa/{lang}", {"validation": "validation", "test": "test"},
                               _squad()),
      "tydiqa_train": lambda: TfdsSpec("tydi_qa/goldp", _TV, _squad("english-")),
      "tydiqa": lambda: TfdsSpec("tydi_qa/goldp", {"validation": f"validation-{lang}"},
                                 _squad()),
      "hellaswag": lambda: TfdsSpec("hellaswag", _TV, _hellaswag),
      "cosmosqa": lambda: TfdsSpec("cosmos_qa", _TV, _cosmosqa),
      "copa": lambda: TfdsSpec("super_glue/copa", _TV, _copa),
      # mC4 as TFDS prepares it (c4/multilingual): splits "<lang>" and "<lang>-validation"
      "mlm": lambda: TfdsSpec("c4/multilingual", {"train": lang,
                                                  "validation": f"{lang}-validation"},
                              lambda ds: ds.map(lambda ex: {"text": ex["text"]})),
      "panx": lambda: TfdsSpec(f"wikiann/{lang}", {"train": "train", "validation": "validation",
                                                   "test": "test"}, _wikiann),
  }
  make = specs.get(dataset)
  return make() if make else None


class TfdsSource(seqio.DataSource):
  """Reads a prepared TFDS dataset without ever downloading; rows in our schemas."""

  def __init__(self, spec: TfdsSpec, data_dir: Optional[str] = None, splits=None,
               task: str = ""):
    chosen = tuple(splits) if splits else tuple(spec.splits)
    super().__init__(splits=chosen)
    self.spec, self.task = spec, task
    self.tfds_data_dir = data_dir
    self.description = f"TFDS {spec.name} (try_gcs=False, never downloads)"

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return False

  def list_shards(self, split):
    return [split]

  def builder(self):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    return tfds.builder(self.spec.name, data_dir=self.tfds_data_dir, try_gcs=False)

  def get_dataset(self, split="train", shuffle=True, seed=None, shard_info=None, **kwargs):
    del kwargs
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    builder = self.builder()
    read_config = tfds.ReadConfig(shuffle_seed=seed, skip_prefetch=True)
    try:
      ds = builder.as_dataset(split=self.spec.splits[split], shuffle_files=shuffle,
                              read_config=read_config)
    except (AssertionError, FileNotFoundError, tfds.core.registered.DatasetNotFoundError) as e:
      raise FileNotFoundError(
          f"TFDS dataset {self.spec.name} (split {self.spec.splits[split]}) is not prepared in "
          f"{self.tfds_data_dir or 'the default TFDS data dir'}; this library never downloads. "
          "Prepare it with `tfds build` where there is network access, or use the file source "
          "(gin: register_tasks.sources).") from e
    full_name = builder.info.full_name  # name/config/version: what the data version names
    data_report.record_dataset(self.task, split, f"tfds://{full_name}/{self.spec.splits[split]}",
                               f"{full_name}:{self.spec.splits[split]}")
    ds = self.spec.convert(ds)
    if shard_info and shard_info.num_shards > 1:
      ds = ds.shard(shard_info.num_shards, shard_info.index)
    return ds

  def __repr__(self):
    return f"TfdsSource({self.spec.name})"
