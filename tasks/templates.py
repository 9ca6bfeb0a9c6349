"""The one table of text-to-text templates (CONTRACTS.md "Names of tasks").

`inputs` and `targets` are `str.format` patterns over a row's fields plus these derived ones:
  {answer}   QA: the first gold answer, or UNANSWERABLE for SQuAD 2.0's unanswerable questions;
             multiple choice: the right choice's text
  {options}  multiple choice: "(A) first (B) second ..." in the release's order
  {words}    tagging: the tokens joined by spaces
  {tag_seq}  POS / CCG: the tags joined by spaces, one per input word
  {spans}    NER, mT5's format: "PER: rick $$ LOC: earth" (type, colon, the entity's words;
             spans joined by " $$ "); "None" when the sentence has no entity
             (written by postprocessors.spans_from_ner_tags, read back by ner_tags_from_spans)
`xfer-t5x tasks --show NAME` prints a task's template from here.
"""
import dataclasses
import string
from typing import Dict, List, Tuple

from xfer_t5x.tasks.postprocessors import NER_DELIMITER, NER_NO_ENTITY, UNANSWERABLE  # noqa: F401

OPTION_LETTERS = "ABCDEFGHIJ"

# Label words of the classification templates, in the order the releases number them (GLUE,
# Hugging Face exports, XNLI, SNLI): an integer label i in a user's file means labels[i].
NLI_LABELS = ("entailment", "neutral", "contradiction")  # one order for MNLI, XNLI, ANLI, SNLI
QQP_LABELS = ("not_duplicate", "duplicate")
SST2_LABELS = ("negative", "positive")


@dataclasses.dataclass(frozen=True)
class Template:
  """A text-to-text form: `family` decides the derived fields, postprocessor and default metric
  (classification, qa, multiple_choice, tagging, ner, retrieval, retrieval_pairs)."""
  name: str
  family: str
  inputs: str
  targets: str
  note: str = ""
  # classification: the label words, so that files may give either a word or its index
  labels: Tuple[str, ...] = ()

  def fields(self) -> Tuple[str, ...]:
    out = []
    for pattern in (self.inputs, self.targets):
      out += [f for _, f, _, _ in string.Formatter().parse(pattern) if f]
    return tuple(dict.fromkeys(out))

  def render(self, row: Dict[str, str]) -> Tuple[str, str]:
    """Python rendering of one row whose derived fields are already filled in."""
    return self.inputs.format(**row), self.targets.format(**row)


def _t(name, family, inputs, targets, note="", labels=()):
  return name, Template(name, family, inputs, targets, note, tuple(labels))


TEMPLATES: Dict[str, Template] = dict([
    # ---- the `mlm` baseline: mT5's span corruption over plain text (span_corruption.py)
    _t("span_corruption", "span_corruption", "{text}, 15% of its tokens in spans of mean "
       "length 3 each replaced by a sentinel <extra_id_k>",
       "<extra_id_0> first span <extra_id_1> second span ...",
       "no text template: the inputs and targets are token ids (mT5's pretraining objective)"),
    # ---- NLI and classification (label words)
    _t("xnli", "classification", "xnli premise: {premise} hypothesis: {hypothesis}", "{label}",
       "XNLI eval tasks and their English training task (MNLI data) share it", NLI_LABELS),
    _t("mnli", "classification", "mnli hypothesis: {hypothesis} premise: {premise}", "{label}",
       "the MNLI intermediate task's own template", NLI_LABELS),
    _t("anli", "classification", "anli premise: {premise} hypothesis: {hypothesis}", "{label}",
       "ANLI+ = ANLI R1-R3 + MNLI + SNLI", NLI_LABELS),
    _t("qqp", "classification", "qqp question1: {question1} question2: {question2}", "{label}",
       "", QQP_LABELS),
    _t("sst2", "classification", "sst2 sentence: {sentence}", "{label}", "", SST2_LABELS),
    # ---- QA
    _t("squad_v2", "qa", "question: {question} context: {context}", "{answer}",
       f"unanswerable questions target the fixed word '{UNANSWERABLE}'"),
    _t("squad", "qa", "question: {question} context: {context}", "{answer}",
       "SQuAD v1.1, XQuAD, MLQA, TyDiQA-GoldP (target: the first gold answer)"),
    # ---- multiple choice (target: the right choice's text)
    _t("xcopa", "multiple_choice",
       "xcopa premise: {context} question: {question} options: {options}", "{answer}",
       "XCOPA eval, COPA-en and Social IQa training (COPA's question is cause/effect)"),
    _t("hellaswag", "multiple_choice", "hellaswag context: {context} options: {options}",
       "{answer}"),
    _t("cosmosqa", "multiple_choice",
       "cosmosqa context: {context} question: {question} options: {options}", "{answer}"),
    _t("commonsenseqa", "multiple_choice",
       "commonsenseqa question: {question} options: {options}", "{answer}"),
    # ---- tagging
    _t("udpos", "tagging", "pos: {words}", "{tag_seq}",
       "one UPOS tag per input word, space-separated"),
    _t("panx", "ner", "tag: {words}", "{spans}", "mT5's NER span format"),
    _t("ccg", "tagging", "ccg: {words}", "{tag_seq}", "one CCG supertag per input word"),
    # ---- retrieval (encoder inputs; targets unused)
    _t("tatoeba", "retrieval", "{text}", "",
       "query: the sentence; candidates: the English sentences"),
    _t("lareqa_question", "retrieval", "question: {text}", "", "LAReQA query"),
    _t("lareqa_answer", "retrieval", "answer: {text} context: {context}", "",
       "LAReQA candidate: the sentence and its paragraph"),
    _t("mewslix_mention", "retrieval", "mention: {text} context: {context}", "",
       "Mewsli-X query: the mention and its sentence with the mention in braces"),
    _t("mewslix_entity", "retrieval", "entity: {context} description: {text}", "",
       "Mewsli-X candidate: the entity's title and description"),
    # ---- the dual encoder's training pairs: inputs as the queries, targets as the candidates
    # are rendered above (the query and the candidate tokens of one row)
    _t("lareqa_pair", "retrieval_pairs", "question: {text}",
       "answer: {candidate_text} context: {candidate_context}",
       "LAReQA training (SQuAD v1.1): the question -> its answer sentence and paragraph"),
    _t("mewslix_pair", "retrieval_pairs", "mention: {text} context: {context}",
       "entity: {candidate_context} description: {candidate_text}",
       "Mewsli-X training (English Wikipedia): the mention -> its entity"),
])


def options_text(choices: List[str]) -> str:
  return " ".join(f"({OPTION_LETTERS[i]}) {c}" for i, c in enumerate(choices))
