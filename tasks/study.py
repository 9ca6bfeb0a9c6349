"""The study's tasks and mixtures, built by one factory: `register_tasks(vocabulary, data_dir)`.

Names (CONTRACTS.md):
  intermediate  anli mnli qqp squad_v2 hellaswag ccg cosmosqa commonsenseqa sst2, and the
                mixture intermediate_all (rates min(size, cap), sizes as in Phang et al.)
  targets       <target>_train (XCOPA: xcopa_train.siqa, xcopa_train.copa), <target>.<lang>,
                and the mixture <target>_zeroshot (training task(s) + every language)
  rank          multiple choice scored by rank classification: hellaswag_rank, cosmosqa_rank,
                commonsenseqa_rank (validation) and xcopa_rank.<lang> (+ xcopa_rank_zeroshot);
                the plain names decode the choice's text
  retrieval     tatoeba.<lang>, lareqa.<lang>, mewslix.<lang> hold the queries; their pools are
                tatoeba_candidates.<lang>, lareqa_candidates, mewslix_candidates (TaskInfo
                .candidates_task names it)
Without a CCGbank path `ccg` is registered as a task that fails with the reason when read, and
`intermediate_all` holds the other eight (logged once).
"""
import functools
import logging
from typing import List, Mapping, Optional, Sequence

import gin
import seqio

from xfer_t5x.tasks import catalog
from xfer_t5x.tasks import layouts
from xfer_t5x.tasks import metrics as metrics_lib
from xfer_t5x.tasks import registry
from xfer_t5x.tasks import templates
from xfer_t5x.tasks import vocab as vocab_lib
from xfer_t5x.tasks.sources import base as sources_base
from xfer_t5x.tasks.sources import common as sources_common
from xfer_t5x.tasks.sources import files as files_lib
from xfer_t5x.tasks.sources.squad import TYDIQA_LANGUAGE_NAMES

_CCG_REASON = ("CCG needs CCGbank, which the LDC licenses and this library cannot ship or "
               "download: bind register_tasks.ccg_path to your CCGbank folder (the one holding "
               "data/AUTO/<section>/*.auto)")
_NO_CCG_LOGGED = []
MLM_ALPHA = 0.3  # mT5's language sampling exponent

# intermediate task -> (template, [(dataset, lang, kwargs)], metrics, rank variant?)
_INTERMEDIATE = {
    "anli": ("anli", [("anli_r1", None, {}), ("anli_r2", None, {}), ("anli_r3", None, {}),
                      ("mnli", None, {"split_map": {"validation": "none"}}),
                      ("snli", None, {"split_map": {"validation": "none"}})],
             ["accuracy"], False),
    "mnli": ("mnli", [("mnli", None, {})], ["accuracy"], False),
    "qqp": ("qqp", [("qqp", None, {})], ["accuracy_and_f1"], False),
    "squad_v2": ("squad_v2", [("squad_v2", None, {})], ["squad_v2_em_f1"], False),
    "hellaswag": ("hellaswag", [("hellaswag", None, {})], ["accuracy"], True),
    "ccg": ("ccg", [("ccg", None, {})], ["pos_f1"], False),
    "cosmosqa": ("cosmosqa", [("cosmosqa", None, {})], ["accuracy"], True),
    "commonsenseqa": ("commonsenseqa", [("commonsenseqa", None, {})], ["accuracy"], True),
    "sst2": ("sst2", [("sst2", None, {})], ["accuracy"], False),
}


class _Builder:
  """Registers tasks for one configuration, remembering the names it added."""

  def __init__(self, cfg, vocabulary, sources, eval_splits, sequence_lengths):
    self.cfg, self.vocabulary, self.sources = cfg, vocabulary, dict(sources or {})
    self.lengths = {k: dict(v) for k, v in dict(sequence_lengths or {}).items()}
    self.eval_splits = {**catalog.EVAL_SPLITS, **dict(eval_splits or {})}
    self.tasks: List[str] = []
    self.mixtures: List[str] = []

  def source_kind(self, name: str, dataset: str) -> str:
    kind = self.sources.get(name) or self.sources.get(name.split(".")[0]) or self.sources.get(
        dataset, "file")
    if kind not in ("file", "tfds"):
      raise ValueError(f"source for {name} must be 'file' or 'tfds', got {kind!r}")
    return kind

  def source(self, name, pieces, splits=None):
    dataset, lang, _ = pieces[0]
    if self.source_kind(name, dataset) == "tfds":
      if len(pieces) == 1:
        return layouts.tfds_source(self.cfg, dataset, lang, splits, task=name)
      parts = {}
      for d, l, kw in pieces:
        src = layouts.tfds_source(self.cfg, d, l, task=name)
        for split in src.splits:
          mapped = (kw.get("split_map") or {}).get(split, split)
          if mapped in src.splits and (splits is None or split in splits):
            parts.setdefault(split, []).append(src)
      return sources_base.ConcatSource(parts)
    return layouts.file_source(self.cfg, name, pieces, splits=splits)

  def add(self, name, source, template, metrics=None, **info):
    family = templates.TEMPLATES[template].family
    family = "tagging" if family == "ner" else family
    length = {**catalog.SEQUENCE_LENGTHS[family], **self.lengths.get(family, {})}
    registry.add_task(name, source, template, metrics, vocabulary=self.vocabulary,
                      sequence_length=length, **info)
    self.tasks.append(name)

  def mixture(self, name, tasks, note=""):
    registry.add_mixture(name, tasks, note=note)
    self.mixtures.append(name)


def _intermediate(b: _Builder, mixture_cap, mixture_sizes):
  sizes = {**catalog.INTERMEDIATE_SIZES, **dict(mixture_sizes or {})}
  members = []
  for name, (template, pieces, metrics, rank) in _INTERMEDIATE.items():
    if name == "ccg" and not b.cfg.ccg_path:
      b.add(name, sources_base.UnavailableSource(_CCG_REASON), template, metrics,
            role="intermediate", note=_CCG_REASON)
      continue
    b.add(name, b.source(name, pieces, ["train", "validation"]), template, metrics,
          role="intermediate", eval_split="validation")
    members.append((name, float(min(sizes[name], mixture_cap))))
    if rank:
      b.add(f"{name}_rank", b.source(name, pieces, ["validation"]), template, mode="rank",
            role="intermediate", eval_split="validation")
  if not b.cfg.ccg_path and not _NO_CCG_LOGGED:
    logging.warning("intermediate_all holds 8 tasks, without ccg: %s", _CCG_REASON)
    _NO_CCG_LOGGED.append(True)
  b.mixture("intermediate_all", members,
            note=f"rates min(size, {mixture_cap}) with Phang et al.'s sizes"
            + ("" if b.cfg.ccg_path else "; no ccg (no CCGbank path bound)"))


def mlm_rate(task: seqio.Task, alpha: float = MLM_ALPHA) -> float:
  """A language's rate in the `mlm` mixture: its text's size to the power alpha (mT5's
  temperature sampling, rate proportional to |L|^0.3), read when the mixture is first used:
  bytes of its files, or TFDS's example count of its split (c4/multilingual)."""
  source = task.source
  if hasattr(source, "files"):
    return float(sum(files_lib.size(p) for p in source.files("train"))) ** alpha
  return float(source.builder().info.splits[source.spec.splits["train"]].num_examples) ** alpha


def _mlm(b: _Builder, languages: Sequence[str], alpha: float):
  members = []
  for lang in languages:
    name = f"mlm.{lang}"
    registry.add_span_corruption_task(
        name, b.source(name, [("mlm", lang, {})], ["train"]),
        vocabulary=b.vocabulary, language=lang,
        sequence_length={**catalog.SEQUENCE_LENGTHS["span_corruption"],
                         **b.lengths.get("span_corruption", {})},
        note="the mlm baseline: continued span corruption on this language's text")
    b.tasks.append(name)
    members.append((name, functools.partial(mlm_rate, alpha=alpha)))
  b.mixture("mlm", members, note=f"span corruption over {len(members)} languages, rates "
            f"proportional to text size^{alpha:g} (mT5's language sampling)")


def _translated_source(b: _Builder, task: str, lang: str) -> sources_base.FileSource:
  """The machine-translated copy of an intermediate task's data in one language: JSON lines
  with the task's own fields, under <data_dir>/translated/<task>/ (or data_dirs["translated"]):
  <split>.<lang>.jsonl, <lang>/<split>.jsonl, or one <split>.jsonl whose rows carry "lang"."""
  template, pieces, _, _ = _INTERMEDIATE[task]
  layout = layouts.LAYOUTS[pieces[0][0]]
  tmpl = templates.TEMPLATES[template]
  labels = tmpl.labels if tmpl.family == "classification" else ()
  expected = (f"JSON lines with {task}'s fields ({', '.join(layout.schema)})"
              + (f", label one of {', '.join(labels)}" if labels else "")
              + f"; rows of a shared file carry \"lang\": \"{lang}\"")
  splits = {
      split: [sources_base.Part.of(
          [f"{task}/{split}.{lang}.jsonl", f"{task}/{lang}/{split}.jsonl", f"{task}/{split}.jsonl"],
          sources_common.read_schema_jsonl, expected, root=lambda: b.cfg.folder("translated"),
          schema=tuple(layout.schema.items()), labels=tuple(labels), lang=lang)]
      for split in ("train", "validation")}
  return sources_base.FileSource(f"{task}_translated.{lang}", lambda: b.cfg.data_dir, splits,
                                 layout.schema, description=f"files: {expected}")


def _translated(b: _Builder, translated: Mapping[str, Sequence[str]]):
  for task, languages in translated.items():
    template, _, metrics, _ = _INTERMEDIATE[task]
    names = []
    for lang in languages:
      name = f"{task}_translated.{lang}"
      b.add(name, _translated_source(b, task, lang), template, metrics, role="intermediate",
            language=lang, eval_split="validation",
            note=f"{task}'s data machine-translated into {lang} (the translated baseline)")
      names.append(name)
    b.mixture(f"{task}_translated", names,
              note=f"{task} translated into {', '.join(languages)}, equal rates")


def _eval_splits(dataset):
  return [s for s in layouts.LAYOUTS[dataset].splits if s != "train"]


def _targets(b: _Builder, languages: Mapping[str, Sequence[str]]):
  squad_metrics = ["squad_em_f1"]
  # ---- English training tasks
  b.add("xnli_train", b.source("xnli_train", [("mnli", None, {})], ["train", "validation"]),
        "xnli", target="xnli", role="target_train", eval_split="validation",
        note="MNLI data in XNLI's template")
  b.add("xcopa_train.siqa", b.source("xcopa_train.siqa", [("siqa", None, {})]), "xcopa",
        target="xcopa", role="target_train", eval_split="validation")
  b.add("xcopa_train.copa", b.source("xcopa_train.copa", [("copa", None, {})]), "xcopa",
        target="xcopa", role="target_train", eval_split="validation")
  b.add("udpos_train", b.source("udpos_train", [("udpos", "en", {})], ["train", "validation"]),
        "udpos", target="udpos", role="target_train", eval_split="validation")
  b.add("panx_train", b.source("panx_train", [("panx", "en", {})], ["train", "validation"]),
        "panx", target="panx", role="target_train", eval_split="validation")
  for t in ("xquad", "mlqa"):
    b.add(f"{t}_train", b.source(f"{t}_train", [("squad_v1", None, {})]), "squad",
          squad_metrics, target=t, role="target_train", eval_split="validation",
          note="SQuAD v1.1")
  b.add("tydiqa_train", b.source("tydiqa_train", [("tydiqa", "en", {"id_prefix": "english-"})]),
        "squad", squad_metrics, target="tydiqa", role="target_train", eval_split="validation")
  # the dual encoder's pairs (catalog: model "dual_encoder"); trained, not evaluated as such
  b.add("lareqa_train", b.source("lareqa_train", [("lareqa_train", None, {})]), "lareqa_pair",
        [], mode="train", target="lareqa", role="target_train", eval_split="validation",
        note="SQuAD v1.1: question -> answer sentence + paragraph (dual encoder)")
  b.add("mewslix_train", b.source("mewslix_train", [("mewslix_train", None, {})]),
        "mewslix_pair", [], mode="train", target="mewslix", role="target_train",
        eval_split="validation",
        note="English Wikipedia mention -> entity description (dual encoder)")
  # ---- per-language evaluation tasks
  for t in catalog.TARGETS:
    for lang in languages[t]:
      info = dict(target=t, language=lang, role="eval", eval_split=b.eval_splits[t])
      name = f"{t}.{lang}"
      if t == "xnli":
        b.add(name, b.source(name, [("xnli", lang, {})]), "xnli", **info)
      elif t == "xcopa":
        b.add(name, b.source(name, [("xcopa", lang, {})]), "xcopa", **info)
        b.add(f"xcopa_rank.{lang}", b.source(name, [("xcopa", lang, {})]), "xcopa", mode="rank",
              **info)
      elif t == "udpos":
        b.add(name, b.source(name, [("udpos", lang, {})], _eval_splits("udpos")), "udpos",
              **info)
      elif t == "panx":
        b.add(name, b.source(name, [("panx", lang, {})], _eval_splits("panx")), "panx", **info)
      elif t == "xquad":
        b.add(name, b.source(name, [("xquad", lang, {})]), "squad", squad_metrics, **info)
      elif t == "mlqa":
        b.add(name, b.source(name, [("mlqa", lang, {})]), "squad",
              [metrics_lib.mlqa_em_f1(lang)], **info)
      elif t == "tydiqa":
        prefix = f"{TYDIQA_LANGUAGE_NAMES[lang]}-"
        b.add(name, b.source(name, [("tydiqa", lang, {"id_prefix": prefix})], ["validation"]),
              "squad", squad_metrics, **info)
      elif t == "tatoeba":
        pool = f"tatoeba_candidates.{lang}"
        b.add(name, b.source(name, [("tatoeba", lang, {})]), "tatoeba", ["retrieval_accuracy"],
              mode="retrieve", candidates_task=pool, **info)
        b.add(pool, b.source(pool, [("tatoeba_candidates", lang, {})]), "tatoeba", [],
              mode="embed", target=t, language="en", role="candidates",
              eval_split=b.eval_splits[t], note=f"English sides of the {lang} pairs")
      elif t == "lareqa":
        b.add(name, b.source(name, [("lareqa", lang, {})]), "lareqa_question",
              ["mean_average_precision_at_k"], mode="retrieve", candidates_task="lareqa_candidates",
              **info)
      elif t == "mewslix":
        b.add(name, b.source(name, [("mewslix", lang, {})]), "mewslix_mention", ["mrr_at_k"],
              mode="retrieve", candidates_task="mewslix_candidates", **info)
  if languages["lareqa"]:
    b.add("lareqa_candidates", b.source("lareqa_candidates", [("lareqa_candidates", None, {})]),
          "lareqa_answer", [], mode="embed", target="lareqa", language="*", role="candidates",
          eval_split=b.eval_splits["lareqa"], note="sentences of every language, pooled")
  if languages["mewslix"]:
    b.add("mewslix_candidates",
          b.source("mewslix_candidates", [("mewslix_candidates", None, {})]), "mewslix_entity",
          [], mode="embed", target="mewslix", language="*", role="candidates",
          eval_split=b.eval_splits["mewslix"], note="the candidate entity set")
  # ---- zero-shot mixtures
  for t in catalog.TARGETS:
    train = list(catalog.TARGET_SPECS[t].train_stages)
    b.mixture(f"{t}_zeroshot", train + [f"{t}.{lang}" for lang in languages[t]],
              note="English training task(s) + every language's eval task")
  b.mixture("xcopa_rank_zeroshot", list(catalog.TARGET_SPECS["xcopa"].train_stages) +
            [f"xcopa_rank.{lang}" for lang in languages["xcopa"]],
            note="training decodes the choice; evaluation ranks the choices")


@gin.configurable
def register_tasks(vocabulary: Optional[seqio.Vocabulary] = None,
                   data_dir: Optional[str] = None,
                   *,
                   data_dirs: Optional[Mapping[str, str]] = None,
                   sources: Optional[Mapping[str, str]] = None,
                   tfds_data_dir: Optional[str] = None,
                   mixture_cap: int = catalog.DEFAULT_MIXTURE_CAP,
                   mixture_sizes: Optional[Mapping[str, int]] = None,
                   ccg_path: Optional[str] = None,
                   eval_splits: Optional[Mapping[str, str]] = None,
                   languages: Optional[Mapping[str, Sequence[str]]] = None,
                   sequence_lengths: Optional[Mapping[str, Mapping[str, int]]] = None,
                   mlm_languages: Optional[Sequence[str]] = None,
                   mlm_alpha: float = MLM_ALPHA,
                   translated: Optional[Mapping[str, Sequence[str]]] = None,
                   ) -> List[str]:
  """Registers every task and mixture of the study; returns the task names.

  Called again with the same arguments it does nothing; with other arguments (another
  vocabulary, data dir, ...) it removes what it registered before and registers again.
  Nothing is read here: files are opened when a dataset is requested.

  Args:
    vocabulary: the SeqIO vocabulary (default: vocab.default_vocabulary(), the mT5 one).
    data_dir: the root holding one folder per dataset (layouts.LAYOUTS names them).
    data_dirs: {dataset: folder} overrides (e.g. {"xnli": "/data/XNLI-1.0"}).
    sources: {task or dataset: "file" | "tfds"}; default "file" everywhere.
    tfds_data_dir: where prepared TFDS datasets live (TFDS never downloads here).
    mixture_cap: intermediate_all's rate cap, in examples.
    mixture_sizes: {task: size} overriding Phang et al.'s sizes for the rates.
    ccg_path: CCGbank folder; without it `ccg` fails with the reason and is left out of
      intermediate_all.
    eval_splits: {target: split} overriding XTREME-R's reported splits (catalog.EVAL_SPLITS).
    languages: {target: [langs]} restricting a target's languages (demo, tests).
    sequence_lengths: {family: {"inputs": n, "targets": m}} overriding RESEARCH.md's defaults
      (catalog.SEQUENCE_LENGTHS; families classification, multiple_choice, qa, tagging,
      retrieval, span_corruption); each task's TaskInfo.sequence_length holds the result.
    mlm_languages: the languages of the `mlm` baseline (tasks mlm.<lang>, read from
      <data_dir>/mlm/<lang>.txt, one document per line; data_dirs={"mlm": folder} elsewhere);
      default: every language of the study's targets.
    mlm_alpha: the `mlm` mixture's rates are each language's text size^mlm_alpha.
    translated: {intermediate task: [languages]}: the translated baseline, tasks
      <task>_translated.<lang> and the mixture <task>_translated, reading JSON lines with the
      task's own fields from <data_dir>/translated/<task>/ (_translated_source).
  """
  if vocabulary is None:
    vocabulary = vocab_lib.default_vocabulary()
  langs = {t: tuple(catalog.TARGET_LANGUAGES[t]) for t in catalog.TARGETS}
  for t, chosen in dict(languages or {}).items():
    unknown = sorted(set(chosen) - set(catalog.TARGET_LANGUAGES[t]))
    if unknown:
      raise ValueError(f"{t} has no language(s) {unknown}; it has {catalog.TARGET_LANGUAGES[t]}")
    langs[t] = tuple(chosen)
  unknown = sorted(set(dict(sequence_lengths or {})) - set(catalog.SEQUENCE_LENGTHS))
  if unknown:
    raise ValueError(f"sequence_lengths: unknown families {unknown}; known: "
                     f"{sorted(catalog.SEQUENCE_LENGTHS)}")
  unknown = sorted(set(dict(translated or {})) - set(_INTERMEDIATE))
  if unknown:
    raise ValueError(f"translated: {unknown} are not intermediate tasks; translated copies "
                     f"exist for {', '.join(_INTERMEDIATE)}")
  freeze = lambda m: tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v)
                                  for k, v in dict(m or {}).items()))
  key = (vocab_lib.vocabulary_key(vocabulary), data_dir, freeze(data_dirs), freeze(sources),
         tfds_data_dir, mixture_cap, freeze(mixture_sizes), ccg_path, freeze(eval_splits),
         freeze(langs), freeze({k: freeze(v) for k, v in dict(sequence_lengths or {}).items()}),
         tuple(mlm_languages or ()), mlm_alpha, freeze(translated))
  if not registry.begin(key, vocabulary):
    return list(registry.current_tasks())
  cfg = layouts.DataConfig(data_dir, dict(data_dirs or {}), tfds_data_dir, ccg_path)
  b = _Builder(cfg, vocabulary, sources, eval_splits, sequence_lengths)
  try:
    _intermediate(b, mixture_cap, mixture_sizes)
    _mlm(b, tuple(mlm_languages) if mlm_languages else tuple(
        dict.fromkeys(l for t in catalog.TARGETS for l in catalog.TARGET_LANGUAGES[t])),
         mlm_alpha)
    _translated(b, dict(translated or {}))
    _targets(b, langs)
  except BaseException:
    registry.track(b.tasks, b.mixtures)
    registry.unregister_all()
    raise
  registry.track(b.tasks, b.mixtures)
  return list(b.tasks)
