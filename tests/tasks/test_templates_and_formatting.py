"""The template table, the text formatting of each family, and rank classification."""
import numpy as np
import pytest
import tensorflow as tf

from xfer_t5x.tasks import formatting, postprocessors, rank_classification, templates
from xfer_t5x.tasks.sources import base
from xfer_t5x.tasks.sources.multiple_choice import MC_SCHEMA
from xfer_t5x.tasks.sources.squad import QA_SCHEMA
from xfer_t5x.tasks.sources.tagging import TAG_SCHEMA


def _format(rows, schema, template):
  ds = formatting.format_examples(base.rows_to_dataset(rows, schema), template)
  return [(ex["inputs"].numpy().decode(), ex["targets"].numpy().decode()) for ex in ds]


def test_contract_templates():
  t = templates.TEMPLATES
  assert t["xnli"].inputs == "xnli premise: {premise} hypothesis: {hypothesis}"
  assert t["mnli"].inputs == "mnli hypothesis: {hypothesis} premise: {premise}"
  assert t["anli"].inputs == "anli premise: {premise} hypothesis: {hypothesis}"
  assert t["qqp"].inputs == "qqp question1: {question1} question2: {question2}"
  assert t["sst2"].inputs == "sst2 sentence: {sentence}"
  assert t["squad_v2"].inputs == "question: {question} context: {context}"
  assert t["ccg"].inputs == "ccg: {words}" and t["ccg"].targets == "{tag_seq}"
  assert templates.UNANSWERABLE == postprocessors.UNANSWERABLE
  for tmpl in t.values():
    assert tmpl.family in ("classification", "qa", "multiple_choice", "tagging", "ner",
                           "retrieval", "retrieval_pairs", "span_corruption"), tmpl


def test_squad_v2_unanswerable_is_the_fixed_word():
  rows = [{"id": "1", "context": "C.", "question": "Q?", "answers": ["a", "b"],
           "answer_starts": [0, 1]},
          {"id": "2", "context": "C.", "question": "Q?", "answers": [], "answer_starts": []}]
  out = _format(rows, QA_SCHEMA, "squad_v2")
  assert out == [("question: Q? context: C.", "a"), ("question: Q? context: C.", "unanswerable")]
  # and the postprocessor maps it back to SQuAD 2.0's empty answer
  assert postprocessors.qa_answer(out[1][1]) == ""


def test_pos_targets_one_tag_per_word():
  rows = [{"id": "1", "tokens": ["Die", "Katze", "schläft", "."],
           "tags": ["DET", "NOUN", "VERB", "PUNCT"]}]
  (inputs, targets), = _format(rows, TAG_SCHEMA, "udpos")
  assert inputs == "pos: Die Katze schläft ." and targets == "DET NOUN VERB PUNCT"
  assert len(targets.split()) == len(inputs.split()) - 1


def test_ner_spans_round_trip_through_the_postprocessor():
  tokens = ["Angela", "Merkel", "besuchte", "New", "York", "und", "die", "UNO", "."]
  tags = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O", "B-ORG", "O"]
  rows = [{"id": "1", "tokens": tokens, "tags": tags},
          {"id": "2", "tokens": ["nichts", "."], "tags": ["O", "O"]}]
  out = _format(rows, TAG_SCHEMA, "panx")
  assert out[0] == ("tag: Angela Merkel besuchte New York und die UNO .",
                    "PER: Angela Merkel $$ LOC: New York $$ ORG: UNO")
  assert out[1][1] == "None"
  assert postprocessors.ner_tags_from_spans(out[0][1], tokens) == tags


def test_multiple_choice_generation_and_rank_classification():
  rows = [{"id": "a", "context": "The man broke his toe.", "question": "cause",
           "choices": ["He dropped a hammer.", "He got a hole in his sock."], "label": 0},
          {"id": "b", "context": "I ran.", "question": "effect",
           "choices": ["I was tired.", "I flew."], "label": 1}]
  out = _format(rows, MC_SCHEMA, "xcopa")
  assert out[0] == ("xcopa premise: The man broke his toe. question: cause options: "
                    "(A) He dropped a hammer. (B) He got a hole in his sock.",
                    "He dropped a hammer.")
  assert out[1][1] == "I flew."
  ranked = list(formatting.rank_classification(base.rows_to_dataset(rows, MC_SCHEMA), "xcopa"))
  assert len(ranked) == 4
  assert [ex["idx"].numpy().tolist() for ex in ranked] == [[0, 0], [0, 1], [1, 0], [1, 1]]
  assert [bool(ex["is_correct"]) for ex in ranked] == [True, False, False, True]
  assert ranked[3]["targets"].numpy().decode() == "I flew."
  assert ranked[0]["inputs"].numpy() == ranked[1]["inputs"].numpy()


def test_rank_accuracy_hand_computed():
  examples = [{"idx": np.array([0, 0]), "is_correct": True},
              {"idx": np.array([0, 1]), "is_correct": False},
              {"idx": np.array([1, 0]), "is_correct": False},
              {"idx": np.array([1, 1]), "is_correct": True},
              {"idx": np.array([1, 2]), "is_correct": False},
              {"idx": np.array([2, 0]), "is_correct": False},
              {"idx": np.array([2, 1]), "is_correct": True}]
  targets = [rank_classification.rank_postprocess(b"x", ex, is_target=True) for ex in examples]
  scores = [-1.0, -2.0, -3.0, -0.5, -0.7, -0.1, -0.2]
  # row 0: choice 0 wins (correct); row 1: choice 1 (correct); row 2: choice 0 (wrong)
  assert rank_classification.rank_accuracy(targets, scores) == {"accuracy": pytest.approx(
      200.0 / 3, rel=1e-5)}
  with pytest.raises(ValueError, match="3 targets but 2 scores"):
    rank_classification.rank_accuracy(targets[:3], scores[:2])


def test_rows_to_dataset_empty_and_unicode():
  ds = base.rows_to_dataset([], TAG_SCHEMA)
  assert list(ds) == []
  ds = base.rows_to_dataset([{"id": "1", "tokens": ["东京", "ß"], "tags": ["B-LOC", "O"]}],
                            TAG_SCHEMA)
  (ex,) = list(ds)
  assert [t.decode() for t in ex["tokens"].numpy()] == ["东京", "ß"]
  assert ex["tokens"].dtype == tf.string
