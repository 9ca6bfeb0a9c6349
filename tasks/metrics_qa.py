"""Extractive QA metrics as XTREME-R's official scorer computes them (EM and F1 in percent).

- XQuAD and TyDiQA-GoldP: the SQuAD v1.1 evaluation (`squad_em_f1`): lower-case, drop ASCII
  punctuation (`string.punctuation`), drop the English articles a/an/the as whole words, collapse
  whitespace; F1 over whitespace tokens; both maximised over the gold answers.
- MLQA (`mlqa_em_f1(lang)`): MLQA's own evaluation. Punctuation is every Unicode character whose
  category starts with "P" plus `string.punctuation`; articles per answer language (es, de, en,
  vi; none for hi, zh; Arabic removes every occurrence of "ال", even inside words, because the
  other alternative of its pattern can never match); tokens are whitespace-separated, except for
  zh, where each character in U+4E00..U+9FA5 becomes its own token (mixed segmentation).
- SQuAD 2.0 (`squad_v2_em_f1`, the intermediate task, not part of XTREME-R): the official v2.0
  rule that an empty prediction matches an unanswerable question (gold [""] or no answers).

Targets are lists of gold answer strings (one list per question); predictions are strings.
A v1.1-style F1 is 0 when nothing is shared, including when both sides normalise to nothing.
"""
import collections
import functools
import re
import string
import sys
import unicodedata
from typing import Callable, Dict, List

_ASCII_PUNCT = frozenset(string.punctuation)


@functools.lru_cache(maxsize=1)
def unicode_punctuation() -> frozenset:
  """MLQA's punctuation: Unicode categories P* plus ASCII punctuation (built once, on first use).

  The scorer enumerates chr(0) .. chr(sys.maxunicode - 1); the last code point is unassigned.
  """
  return frozenset(chr(i) for i in range(sys.maxunicode)
                   if unicodedata.category(chr(i)).startswith("P")) | _ASCII_PUNCT

_ENGLISH_ARTICLES = re.compile(r"\b(a|an|the)\b")
_MLQA_ARTICLES = {
    "en": _ENGLISH_ARTICLES,
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
}
_MLQA_NO_ARTICLES = ("hi", "zh")
_ARABIC_ARTICLE = "ال"
MLQA_LANGUAGES = ("ar", "de", "en", "es", "hi", "vi", "zh")
_CJK_SINGLE = re.compile("[\u4e00-\u9fa5]")


def normalize_squad(text: str) -> str:
  """SQuAD v1.1 answer normalisation (also used by XQuAD and TyDiQA-GoldP)."""
  text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
  text = _ENGLISH_ARTICLES.sub(" ", text)
  return " ".join(text.split())


def _mixed_segmentation(text: str) -> List[str]:
  """MLQA's Chinese tokens: each CJK character (or punctuation mark) alone, the rest by spaces."""
  punctuation = unicode_punctuation()
  tokens, pending = [], []
  for ch in text:
    if _CJK_SINGLE.match(ch) or ch in punctuation:
      tokens.extend("".join(pending).split())
      pending = []
      tokens.append(ch)
    else:
      pending.append(ch)
  tokens.extend("".join(pending).split())
  return tokens


def normalize_mlqa(text: str, lang: str) -> str:
  """MLQA's answer normalisation for the answer language `lang` (one of MLQA_LANGUAGES)."""
  if lang not in MLQA_LANGUAGES:
    raise ValueError(f"MLQA normalisation has no rules for language {lang!r}; the scorer knows "
                     f"{', '.join(MLQA_LANGUAGES)}")
  punctuation = unicode_punctuation()
  text = "".join(ch for ch in text.lower() if ch not in punctuation)
  if lang == "ar":
    text = text.replace(_ARABIC_ARTICLE, " ")
  elif lang not in _MLQA_NO_ARTICLES:
    text = _MLQA_ARTICLES[lang].sub(" ", text)
  tokens = _mixed_segmentation(text) if lang == "zh" else text.split()
  return " ".join(t for t in tokens if t.strip())


def _token_f1(prediction_tokens: List[str], gold_tokens: List[str]) -> float:
  common = collections.Counter(prediction_tokens) & collections.Counter(gold_tokens)
  n_same = sum(common.values())
  if n_same == 0:
    return 0.0
  precision = 1.0 * n_same / len(prediction_tokens)
  recall = 1.0 * n_same / len(gold_tokens)
  return (2 * precision * recall) / (precision + recall)


def _as_text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _answer_lists(targets, predictions) -> List[List[str]]:
  targets = list(targets)
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions; QA metrics "
                     "need one list of gold answers per prediction")
  out = []
  for i, answers in enumerate(targets):
    if isinstance(answers, (str, bytes)):
      raise TypeError(f"targets[{i}] is a string; give each question a list of gold answers "
                      "(postprocessors.qa_postprocessor returns that for targets)")
    out.append([_as_text(a) for a in answers])
  return out


def _em_f1(targets, predictions, normalize: Callable[[str], str]) -> Dict[str, float]:
  predictions = [_as_text(p) for p in predictions]
  golds = _answer_lists(targets, predictions)
  if not predictions:
    raise ValueError("no predictions to score")
  em_sum = f1_sum = 0.0
  for i, (answers, prediction) in enumerate(zip(golds, predictions)):
    if not answers:
      raise ValueError(f"targets[{i}] has no gold answer; SQuAD-style EM/F1 needs at least one "
                       "(use squad_v2_em_f1 for unanswerable questions)")
    pred_norm = normalize(prediction)
    gold_norms = [normalize(a) for a in answers]
    em_sum += max(float(pred_norm == g) for g in gold_norms)
    f1_sum += max(_token_f1(pred_norm.split(), g.split()) for g in gold_norms)
  return {"em": 100.0 * em_sum / len(predictions), "f1": 100.0 * f1_sum / len(predictions)}


def squad_em_f1(targets, predictions) -> Dict[str, float]:
  """SQuAD v1.1 exact match and F1 in percent (XQuAD, TyDiQA-GoldP, SQuAD v1.1).

  Args:
    targets: one list of gold answer strings per question.
    predictions: one predicted answer string per question.

  Returns:
    {"em", "f1"}: the mean over questions of the best score over its gold answers, times 100.
  """
  return _em_f1(targets, predictions, normalize_squad)


def mlqa_em_f1(lang: str) -> Callable[..., Dict[str, float]]:
  """A seqio metric fn (targets, predictions) -> {"em", "f1"} with MLQA's normalisation for `lang`.

  `lang` is the answer (context) language, as the official scorer takes it per test file.
  """
  if lang not in MLQA_LANGUAGES:
    raise ValueError(f"MLQA has no answer language {lang!r}; choose one of "
                     f"{', '.join(MLQA_LANGUAGES)}")

  def metric(targets, predictions) -> Dict[str, float]:
    return _em_f1(targets, predictions, lambda text: normalize_mlqa(text, lang))

  metric.__name__ = f"mlqa_em_f1_{lang}"
  metric.__doc__ = f"MLQA exact match and F1 (percent) with the {lang} answer normalisation."
  return metric


def squad_v2_em_f1(targets, predictions) -> Dict[str, float]:
  """SQuAD 2.0's official EM and F1 in percent (intermediate task `squad_v2`).

  Args:
    targets: one list of gold answers per question; an unanswerable question has no answers or
      only empty ones (postprocessors.qa_answer maps the unanswerable word to "").
    predictions: predicted answer strings, "" for "unanswerable".

  Returns:
    {"em", "f1"}. Unlike v1.1, when either side normalises to no tokens F1 is 1 if both do, and
    gold answers that normalise to nothing are dropped unless none is left (then the gold is "").
  """
  predictions = [_as_text(p) for p in predictions]
  golds = _answer_lists(targets, predictions)
  if not predictions:
    raise ValueError("no predictions to score")
  em_sum = f1_sum = 0.0
  for answers, prediction in zip(golds, predictions):
    answers = [a for a in answers if normalize_squad(a)] or [""]
    pred_tokens = normalize_squad(prediction).split()
    best_em = best_f1 = 0.0
    for answer in answers:
      gold_tokens = normalize_squad(answer).split()
      best_em = max(best_em, float(pred_tokens == gold_tokens))
      if not gold_tokens or not pred_tokens:
        best_f1 = max(best_f1, float(gold_tokens == pred_tokens))
      else:
        best_f1 = max(best_f1, _token_f1(pred_tokens, gold_tokens))
    em_sum += best_em
    f1_sum += best_f1
  return {"em": 100.0 * em_sum / len(predictions), "f1": 100.0 * f1_sum / len(predictions)}


def qa_metric_for(target: str, lang: str) -> Callable[..., Dict[str, float]]:
  """The EM/F1 metric XTREME-R uses for a QA target and language (MLQA's per language)."""
  if target == "mlqa":
    return mlqa_em_f1(lang)
  if target in ("xquad", "tydiqa", "squad"):
    return squad_em_f1
  raise ValueError(f"no QA metric for target {target!r}; known: mlqa, xquad, tydiqa, squad")


__all__ = ["MLQA_LANGUAGES", "normalize_squad", "normalize_mlqa", "squad_em_f1", "mlqa_em_f1",
           "squad_v2_em_f1", "qa_metric_for"]
