"""Where each dataset's released files sit under the data dir, and the sources that read them.

Each dataset has a folder under the data dir (alternatives: its name, the release's own name)
and, per split, glob patterns relative to that folder (alternatives again: the release layout
first, XTREME's download layout after). `{lang}` and `{lang3}` (Tatoeba's three-letter code)
are filled per language. A `data_dirs={dataset: folder}` binding points one dataset elsewhere.
"""
import dataclasses
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

from xfer_t5x.tasks import catalog
from xfer_t5x.tasks.sources import base
from xfer_t5x.tasks.sources import classification as cls
from xfer_t5x.tasks.sources import files
from xfer_t5x.tasks.sources import multiple_choice as mc
from xfer_t5x.tasks.sources import retrieval as ret
from xfer_t5x.tasks.sources import squad
from xfer_t5x.tasks.sources import tagging
from xfer_t5x.tasks.sources import text
from xfer_t5x.tasks.sources import tfds as tfds_sources


@dataclasses.dataclass(frozen=True)
class Layout:
  folders: Tuple[str, ...]
  splits: Mapping[str, Sequence[Sequence[str]]]  # split -> parts -> alternative patterns
  reader: Callable
  schema: Mapping[str, str]
  expected_format: str
  kwargs: Mapping = dataclasses.field(default_factory=dict)
  takes: Tuple[str, ...] = ()   # which of "lang", "lang3" the reader is given


def _one(*patterns):
  return [list(patterns)]


_ANLI = {r: Layout(("anli",), {s: _one(f"R{r}/{f}.jsonl", f"anli_v1.0/R{r}/{f}.jsonl",
                                       f"*/R{r}/{f}.jsonl")
                               for s, f in (("train", "train"), ("validation", "dev"),
                                            ("test", "test"))},
                   cls.read_anli_jsonl, cls.NLI_SCHEMA, "ANLI JSON lines (R1-R3)")
         for r in (1, 2, 3)}
_CCG_SECTIONS = {"train": ("0[2-9]", "1[0-9]", "2[01]"), "validation": ("00",), "test": ("23",)}

LAYOUTS: Dict[str, Layout] = {
    "mnli": Layout(("mnli", "MNLI", "glue/MNLI"),
                   {"train": _one("train.tsv"), "validation": _one("dev_matched.tsv")},
                   cls.read_glue_mnli, cls.NLI_SCHEMA, "GLUE MNLI TSV"),
    "qqp": Layout(("qqp", "QQP", "glue/QQP"),
                  {"train": _one("train.tsv"), "validation": _one("dev.tsv")},
                  cls.read_glue_qqp, cls.QQP_SCHEMA, "GLUE QQP TSV"),
    "sst2": Layout(("sst2", "SST-2", "glue/SST-2"),
                   {"train": _one("train.tsv"), "validation": _one("dev.tsv")},
                   cls.read_glue_sst2, cls.SST2_SCHEMA, "GLUE SST-2 TSV"),
    "snli": Layout(("snli", "snli_1.0"),
                   {"train": _one("snli_1.0_train.jsonl", "snli_1.0/snli_1.0_train.jsonl"),
                    "validation": _one("snli_1.0_dev.jsonl", "snli_1.0/snli_1.0_dev.jsonl")},
                   cls.read_snli_jsonl, cls.NLI_SCHEMA, "SNLI 1.0 JSON lines"),
    "anli_r1": _ANLI[1], "anli_r2": _ANLI[2], "anli_r3": _ANLI[3],
    "squad_v2": Layout(("squad_v2", "squad"),
                       {"train": _one("train-v2.0.json"),
                        "validation": _one("dev-v2.0.json", "dev-v2.0*.json")},
                       squad.read_squad_json, squad.QA_SCHEMA, "SQuAD v2.0 JSON",
                       {"allow_unanswerable": True}),
    "squad_v1": Layout(("squad", "squad_v1"),
                       {"train": _one("train-v1.1.json"), "validation": _one("dev-v1.1.json")},
                       squad.read_squad_json, squad.QA_SCHEMA, "SQuAD v1.1 JSON"),
    "hellaswag": Layout(("hellaswag",), {"train": _one("hellaswag_train.jsonl"),
                                         "validation": _one("hellaswag_val.jsonl")},
                        mc.read_hellaswag_jsonl, mc.MC_SCHEMA, "HellaSwag JSON lines"),
    "cosmosqa": Layout(("cosmosqa", "cosmos_qa"), {"train": _one("train.csv"),
                                                   "validation": _one("valid.csv")},
                       mc.read_cosmosqa, mc.MC_SCHEMA, "Cosmos QA CSV"),
    "commonsenseqa": Layout(("commonsenseqa", "commonsense_qa"),
                            {"train": _one("train_rand_split.jsonl"),
                             "validation": _one("dev_rand_split.jsonl")},
                            mc.read_commonsenseqa_jsonl, mc.MC_SCHEMA,
                            "CommonsenseQA JSON lines"),
    "siqa": Layout(("siqa", "socialiqa"),
                   {"train": _one("train.jsonl", "socialiqa-train-dev/train.jsonl"),
                    "validation": _one("dev.jsonl", "socialiqa-train-dev/dev.jsonl")},
                   mc.read_siqa_jsonl, mc.MC_SCHEMA, "Social IQa JSON lines + labels .lst"),
    "copa": Layout(("copa", "COPA"),
                   {"train": _one("train.jsonl"), "validation": _one("val.jsonl")},
                   mc.read_copa_jsonl, mc.MC_SCHEMA, "SuperGLUE COPA JSON lines"),
    "xnli": Layout(("xnli", "XNLI-1.0"),
                   {"validation": _one("xnli.dev.tsv", "XNLI-1.0/xnli.dev.tsv"),
                    "test": _one("xnli.test.tsv", "XNLI-1.0/xnli.test.tsv")},
                   cls.read_xnli_tsv, cls.NLI_SCHEMA, "XNLI 1.0 TSV", takes=("lang",)),
    "xcopa": Layout(("xcopa",),
                    {"validation": _one("data/{lang}/val.{lang}.jsonl", "{lang}/val.{lang}.jsonl"),
                     "test": _one("data/{lang}/test.{lang}.jsonl", "{lang}/test.{lang}.jsonl")},
                    mc.read_copa_jsonl, mc.MC_SCHEMA, "XCOPA JSON lines"),
    "udpos": Layout(("udpos",), {"train": _one("train-{lang}.tsv"),
                                 "validation": _one("dev-{lang}.tsv"),
                                 "test": _one("test-{lang}.tsv")},
                    tagging.read_token_tag_tsv, tagging.TAG_SCHEMA,
                    "token<TAB>UPOS lines (XTREME's udpos/)", {"tag_set": tagging.UPOS_TAGS}),
    "panx": Layout(("panx", "wikiann"),
                   {"train": _one("train-{lang}.tsv", "{lang}/train"),
                    "validation": _one("dev-{lang}.tsv", "{lang}/dev"),
                    "test": _one("test-{lang}.tsv", "{lang}/test")},
                   tagging.read_token_tag_tsv, tagging.TAG_SCHEMA,
                   "token<TAB>BIO-tag lines (XTREME's panx/ or WikiANN)",
                   {"tag_set": tagging.NER_TAGS}, takes=("lang",)),
    "xquad": Layout(("xquad",), {"test": _one("xquad.{lang}.json")}, squad.read_squad_json,
                    squad.QA_SCHEMA, "XQuAD (SQuAD v1.1 JSON)"),
    "mlqa": Layout(("mlqa",),
                   {s: _one(f"MLQA_V1/{f}/{f}-context-{{lang}}-question-{{lang}}.json",
                            f"{f}/{f}-context-{{lang}}-question-{{lang}}.json")
                    for s, f in (("validation", "dev"), ("test", "test"))},
                   squad.read_squad_json, squad.QA_SCHEMA, "MLQA (SQuAD v1.1 JSON)"),
    "tydiqa": Layout(("tydiqa", "tydiqa_goldp"),
                     {"train": _one("tydiqa-goldp-v1.1-train.json",
                                    "tydiqa-goldp-v1.1-train/tydiqa.en.train.json"),
                      "validation": _one("tydiqa-goldp-v1.1-dev.json",
                                         "tydiqa-goldp-v1.1-dev/tydiqa.{lang}.dev.json")},
                     squad.read_squad_json, squad.QA_SCHEMA, "TyDi QA GoldP (SQuAD JSON)"),
    "mewslix": Layout(("mewslix", "mewsli_x", "mewsli-x"),
                      {s: _one(f"wikinews_mentions-{f}.jsonl",
                               f"wikinews_mentions/{f}-{{lang}}.jsonl")
                       for s, f in (("validation", "dev"), ("test", "test"))},
                      ret.read_mewslix_mentions, ret.RETRIEVAL_SCHEMA,
                      "Mewsli-X wikinews_mentions JSON lines", takes=("lang",)),
    "mewslix_train": Layout(("mewslix", "mewsli_x", "mewsli-x"),
                            {"train": _one("wikipedia_pairs-train.jsonl"),
                             "validation": _one("wikipedia_pairs-dev.jsonl")},
                            ret.read_mewslix_pairs, ret.PAIR_SCHEMA,
                            "Mewsli-X wikipedia_pairs JSON lines (English Wikipedia)"),
    "lareqa_train": Layout(("squad", "squad_v1"),
                           {"train": _one("train-v1.1.json"), "validation": _one("dev-v1.1.json")},
                           ret.read_lareqa_pairs, ret.PAIR_SCHEMA,
                           "SQuAD v1.1 JSON (LAReQA's question-sentence pairs)"),
    "mewslix_candidates": Layout(("mewslix", "mewsli_x", "mewsli-x"),
                                 {"validation": _one("candidate_set_entities.jsonl"),
                                  "test": _one("candidate_set_entities.jsonl")},
                                 ret.read_mewslix_entities, ret.RETRIEVAL_SCHEMA,
                                 "Mewsli-X candidate_set_entities JSON lines"),
    "lareqa": Layout(("lareqa",), {"test": _one("{lang}.json", "xquad-r/{lang}.json")},
                     ret.read_lareqa_queries, ret.RETRIEVAL_SCHEMA, "XQuAD-R JSON (LAReQA)",
                     {"pool_langs": catalog.TARGET_LANGUAGES["lareqa"]}, takes=("lang",)),
    "lareqa_candidates": Layout(("lareqa",), {"test": _one("*.json", "xquad-r/*.json")},
                                ret.read_lareqa_candidates, ret.RETRIEVAL_SCHEMA,
                                "XQuAD-R JSON (LAReQA)",
                                {"pool_langs": catalog.TARGET_LANGUAGES["lareqa"]}),
    "tatoeba": Layout(("tatoeba",), {"test": _one("tatoeba.{lang3}-eng.{lang3}",
                                                  "v1/tatoeba.{lang3}-eng.{lang3}")},
                      ret.read_tatoeba_queries, ret.RETRIEVAL_SCHEMA,
                      "Tatoeba aligned text files (LASER v1)", takes=("lang", "lang3")),
    "tatoeba_candidates": Layout(("tatoeba",), {"test": _one("tatoeba.{lang3}-eng.{lang3}",
                                                             "v1/tatoeba.{lang3}-eng.{lang3}")},
                                 ret.read_tatoeba_candidates, ret.RETRIEVAL_SCHEMA,
                                 "Tatoeba aligned text files (LASER v1)", takes=("lang3",)),
    "mlm": Layout(("mlm", "mc4"), {"train": _one("{lang}.txt", "{lang}.txt.gz", "{lang}/*.txt",
                                                   "{lang}/*.txt.gz")},
                  text.read_text_lines, text.TEXT_SCHEMA,
                  "plain text, one document per line, one file (or folder) per language"),
    # the translated baseline's copies (study._translated_source builds their parts)
    "translated": Layout(("translated",), {}, None, {}, "JSON lines per intermediate task"),
    "ccg": Layout((), {s: [[f"data/AUTO/{sec}/*.auto", f"AUTO/{sec}/*.auto", f"{sec}/*.auto"]
                           for sec in secs] for s, secs in _CCG_SECTIONS.items()},
                  tagging.read_ccgbank_auto, tagging.TAG_SCHEMA, "CCGbank .auto derivations"),
}


@dataclasses.dataclass
class DataConfig:
  """Where the data is: one root, per-dataset overrides, the TFDS data dir, the CCGbank path."""
  data_dir: Optional[str] = None
  data_dirs: Mapping[str, str] = dataclasses.field(default_factory=dict)
  tfds_data_dir: Optional[str] = None
  ccg_path: Optional[str] = None

  def folder(self, dataset: str) -> str:
    """The dataset's folder: its override, else the first existing alternative under data_dir."""
    if dataset == "ccg":
      if not self.ccg_path:
        raise FileNotFoundError("no CCGbank path bound (register_tasks.ccg_path)")
      return self.ccg_path
    if dataset in self.data_dirs:
      return self.data_dirs[dataset]
    layout = LAYOUTS[dataset]
    family_key = dataset.split("_candidates")[0]
    if family_key in self.data_dirs:
      return self.data_dirs[family_key]
    if not self.data_dir:
      raise FileNotFoundError(
          f"dataset {dataset!r} is read from files but no data dir is set: pass data_dir to "
          "register_tasks (gin: register_tasks.data_dir) or data_dirs={...}")
    root = files.expand(self.data_dir)
    for name in layout.folders:
      if files.isdir(files.join(root, name)):
        return files.join(root, name)
    return files.join(root, layout.folders[0])


def file_parts(cfg: DataConfig, dataset: str, split: str, lang: Optional[str] = None,
               **kwargs) -> Tuple[base.Part, ...]:
  """The Parts of one dataset's split, for one language."""
  layout = LAYOUTS[dataset]
  fill = {"lang": lang or "", "lang3": catalog.TATOEBA_CODES.get(lang or "", "")}
  extra = {k: fill[k] for k in layout.takes}
  extra.update(layout.kwargs)
  extra.update(kwargs)
  return tuple(base.Part.of([p.format(**fill) for p in alternatives], layout.reader,
                            layout.expected_format, root=lambda d=dataset: cfg.folder(d), **extra)
               for alternatives in layout.splits[split])


def file_source(cfg: DataConfig, task_name: str, pieces: Sequence[Tuple], schema=None,
                splits: Optional[Sequence[str]] = None) -> base.FileSource:
  """A FileSource whose split `s` reads, for each (dataset, lang, kwargs) piece, that dataset's
  parts of split `s` (or the piece's own split mapping, `kwargs["split_map"]`)."""
  by_split: Dict[str, list] = {}
  first = pieces[0][0]
  wanted = splits or [s for s in LAYOUTS[first].splits]
  for split in wanted:
    for dataset, lang, kwargs in pieces:
      kwargs = dict(kwargs)
      split_map = kwargs.pop("split_map", None) or {}
      src_split = split_map.get(split, split)
      if src_split not in LAYOUTS[dataset].splits:
        continue
      by_split.setdefault(split, []).extend(file_parts(cfg, dataset, src_split, lang, **kwargs))
  described = ", ".join(sorted({LAYOUTS[d].expected_format for d, _, _ in pieces}))
  return base.FileSource(task_name, lambda: cfg.data_dir, by_split,
                         schema or LAYOUTS[first].schema, description=f"files: {described}")


def tfds_source(cfg: DataConfig, dataset: str, lang: Optional[str] = None,
                splits: Optional[Sequence[str]] = None, task: str = "") -> tfds_sources.TfdsSource:
  spec = tfds_sources.tfds_spec(dataset, lang)
  if spec is None:
    raise ValueError(f"TFDS has no source for {dataset!r} here; use the file source "
                     "(see sources/tfds.py for what TFDS offers)")
  chosen = [s for s in (splits or spec.splits) if s in spec.splits]
  return tfds_sources.TfdsSource(spec, cfg.tfds_data_dir, splits=chosen, task=task)
