"""Facts about the study's datasets: languages, splits, sizes, sequence lengths (RESEARCH.md).

Plain data, no SeqIO: the registry, the CLI and the experiments read it.
"""
import dataclasses
from typing import Dict, Optional, Tuple

# ------------------------------------------------------------------ XTREME-R target languages
TARGET_LANGUAGES: Dict[str, Tuple[str, ...]] = {
    "xnli": tuple("ar bg de el en es fr hi ru sw th tr ur vi zh".split()),
    "xcopa": tuple("et ht id it qu sw ta th tr vi zh".split()),
    "udpos": tuple(("af ar bg de el en es et eu fa fi fr he hi hu id it ja kk ko lt mr nl pl pt "
                    "ro ru ta te th tl tr uk ur vi wo yo zh").split()),
    "panx": tuple(("ar he vi id jv ms tl eu ml ta te af nl en de el bn hi mr ur fa fr it pt es "
                   "bg ru ja ka ko th sw yo my zh kk tr et fi hu qu pl uk az lt pa gu ro").split()),
    "xquad": tuple("en es de el ru tr ar vi th zh hi ro".split()),
    "mlqa": tuple("en es de ar hi vi zh".split()),
    "tydiqa": tuple("en ar bn fi id ko ru sw te".split()),
    "mewslix": tuple("ar de en es fa ja pl ro ta tr uk".split()),
    "lareqa": tuple("ar de el en es hi ru th tr vi zh".split()),
    "tatoeba": tuple(("af ar az bg bn de el es et eu fa fi fr he hi hu id it ja jv ka kk ko lt ml "
                      "mr nl pl pt ro ru sw ta te th tl tr uk ur vi zh").split()),
}
TARGETS = tuple(TARGET_LANGUAGES)

# Tatoeba's files use three-letter codes (LASER's v1 test set, as XTREME reads it).
TATOEBA_CODES = {
    "af": "afr", "ar": "ara", "az": "aze", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell",
    "es": "spa", "et": "est", "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb",
    "hi": "hin", "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat",
    "kk": "kaz", "ko": "kor", "lt": "lit", "ml": "mal", "mr": "mar", "nl": "nld", "pl": "pol",
    "pt": "por", "ro": "ron", "ru": "rus", "sw": "swh", "ta": "tam", "te": "tel", "th": "tha",
    "tl": "tgl", "tr": "tur", "uk": "ukr", "ur": "urd", "vi": "vie", "zh": "cmn",
}

# The split XTREME-R reports for each target (TyDiQA-GoldP's only labelled eval set is dev).
EVAL_SPLITS = {t: "test" for t in TARGETS}
EVAL_SPLITS["tydiqa"] = "validation"

# ------------------------------------------------------------------ intermediate tasks
INTERMEDIATE_TASKS = ("anli", "mnli", "qqp", "squad_v2", "hellaswag", "ccg", "cosmosqa",
                      "commonsenseqa", "sst2")
# Training-set sizes as in Phang et al. (2020); the mixture's rates start from these.
INTERMEDIATE_SIZES = {
    "anli": 1104934, "mnli": 392702, "qqp": 363846, "squad_v2": 130319, "hellaswag": 39905,
    "ccg": 38015, "cosmosqa": 25262, "commonsenseqa": 9741, "sst2": 67349,
}
DEFAULT_MIXTURE_CAP = 2 ** 19  # examples; a task's rate is min(size, cap)

# ------------------------------------------------------------------ sequence lengths
SEQUENCE_LENGTHS = {
    "classification": {"inputs": 1024, "targets": 128},
    "multiple_choice": {"inputs": 1024, "targets": 128},
    "qa": {"inputs": 1024, "targets": 512},
    "tagging": {"inputs": 1024, "targets": 512},
    "retrieval": {"inputs": 512, "targets": 8},
    # the dual encoder's training pairs: a question or mention -> a candidate with its context
    "retrieval_pairs": {"inputs": 128, "targets": 512},
    # mT5's pretraining lengths: 1137 tokens corrupt into 1024 inputs and 229 targets
    "span_corruption": {"inputs": 1024, "targets": 229},
}


@dataclasses.dataclass(frozen=True)
class Target:
  """How a target is trained and evaluated (the experiments read this)."""
  name: str
  family: str                      # key of SEQUENCE_LENGTHS
  train_stages: Tuple[str, ...]    # English training tasks, in order
  eval_mode: str                   # "generate", "rank" or "retrieve"
  encoder_from: Optional[str] = None  # Tatoeba: embed with the encoder of this target's model
  note: str = ""
  model: str = "encoder_decoder"   # or "dual_encoder" (trained and evaluated as one)
  train_family: Optional[str] = None  # SEQUENCE_LENGTHS key of its training stages, if not family


TARGET_SPECS = {
    "xnli": Target("xnli", "classification", ("xnli_train",), "generate"),
    "xcopa": Target("xcopa", "multiple_choice", ("xcopa_train.siqa", "xcopa_train.copa"),
                    "generate", note="rank-classification variant: xcopa_rank.<lang>"),
    "udpos": Target("udpos", "tagging", ("udpos_train",), "generate"),
    "panx": Target("panx", "tagging", ("panx_train",), "generate"),
    "xquad": Target("xquad", "qa", ("xquad_train",), "generate"),
    "mlqa": Target("mlqa", "qa", ("mlqa_train",), "generate"),
    "tydiqa": Target("tydiqa", "qa", ("tydiqa_train",), "generate"),
    "mewslix": Target("mewslix", "retrieval", ("mewslix_train",), "retrieve",
                      note="a dual encoder trained on English Wikipedia mention-entity pairs",
                      model="dual_encoder", train_family="retrieval_pairs"),
    "lareqa": Target("lareqa", "retrieval", ("lareqa_train",), "retrieve",
                     note="a dual encoder trained on SQuAD v1.1 question-sentence pairs",
                     model="dual_encoder", train_family="retrieval_pairs"),
    "tatoeba": Target("tatoeba", "retrieval", (), "retrieve", encoder_from="xquad",
                      note="no training data: embeds with the encoder of the xquad target's "
                      "model at a middle layer"),
}

# A training stage whose lengths are not its target's evaluation lengths (the dual encoder's).
STAGE_FAMILIES = {stage: spec.train_family for spec in TARGET_SPECS.values() if spec.train_family
                  for stage in spec.train_stages}
