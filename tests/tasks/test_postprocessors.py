"""Postprocessors: tags and NER spans back to one tag per token, QA answers; repairs counted."""
import collections
import random

import numpy as np
import pytest

from xfer_t5x.tasks import metrics
from xfer_t5x.tasks import postprocessors as pp

UPOS = pp.UPOS_TAGS
NER_TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")


def test_tags_from_text_exact():
  counts = collections.Counter()
  assert pp.tags_from_text("DET NOUN VERB", 3, UPOS, counts=counts) == ["DET", "NOUN", "VERB"]
  assert counts == {"tags.examples": 1}


def test_tags_from_text_repairs_lengths_and_unknown_tags():
  counts = collections.Counter()
  # UPOS has no "O": the default fill is "X".
  assert pp.tags_from_text("DET NOUN", 3, UPOS, counts=counts) == ["DET", "NOUN", "X"]
  assert pp.tags_from_text("DET NOUN VERB ADJ", 3, UPOS, counts=counts) == ["DET", "NOUN", "VERB"]
  assert pp.tags_from_text(b"DET banana  VERB\n", 3, UPOS, counts=counts) == ["DET", "X", "VERB"]
  # Unknown tags past the last token are dropped, not counted.
  assert pp.tags_from_text("B-PER I-XYZ junk", 2, NER_TAGS, counts=counts) == ["B-PER", "O"]
  assert pp.tags_from_text("", 2, NER_TAGS, fill="O", counts=counts) == ["O", "O"]
  assert counts == {"tags.examples": 5, "tags.padded": 2, "tags.truncated": 2, "tags.unknown": 2}


def test_tags_from_text_fill_errors():
  with pytest.raises(ValueError, match="not in the tag set"):
    pp.tags_from_text("A", 1, ["A", "B"], fill="Z")
  with pytest.raises(ValueError, match="needs `fill`"):
    pp.tags_from_text("A", 1, ["A", "B"])


def test_tags_from_text_counts_in_the_process_counter():
  pp.reset_repair_counts()
  pp.tags_from_text("NOUN", 2, UPOS)
  assert pp.repair_counts() == {"tags.examples": 1, "tags.padded": 1}
  pp.reset_repair_counts()
  assert pp.repair_counts() == {}


def test_spans_from_ner_tags_uses_mt5_format():
  tokens = ["rick", "and", "morty", "are", "cool", "."]
  # mT5's wikiann preprocessor test: the same sentence and target text.
  assert pp.spans_from_ner_tags(tokens, ["B-PER", "O", "B-PER", "O", "O", "O"]) == (
      "PER: rick $$ PER: morty")
  assert pp.spans_from_ner_tags(tokens, ["O"] * 6) == "None"
  # Multi-token entities; an I- without B- starts an entity as the scorer reads it.
  assert pp.spans_from_ner_tags(["in", "new", "york", "times"],
                                ["O", "I-LOC", "I-LOC", "B-ORG"]) == "LOC: new york $$ ORG: times"
  with pytest.raises(ValueError, match="2 tokens but 1 tags"):
    pp.spans_from_ner_tags(["a", "b"], ["O"])
  with pytest.raises(ValueError, match="'PER'"):
    pp.spans_from_ner_tags(["a"], ["PER"])


def test_ner_tags_from_spans_inverse():
  tokens = ["rick", "and", "morty", "are", "cool", "."]
  assert pp.ner_tags_from_spans("PER: rick $$ PER: morty", tokens) == [
      "B-PER", "O", "B-PER", "O", "O", "O"]
  assert pp.ner_tags_from_spans("None", tokens) == ["O"] * 6
  assert pp.ner_tags_from_spans("ORG: new york times", ["the", "new", "york", "times"]) == [
      "O", "B-ORG", "I-ORG", "I-ORG"]


def test_ner_tags_from_spans_repeated_words_follow_the_span_order():
  # Spans are listed in sentence order: the second "rick" goes after the first.
  assert pp.ner_tags_from_spans("PER: rick $$ PER: rick", ["rick", "met", "rick"]) == [
      "B-PER", "O", "B-PER"]
  # "a" is searched after "b" first: the one at index 2, not index 0.
  assert pp.ner_tags_from_spans("LOC: b $$ LOC: a", ["a", "b", "a"]) == ["O", "B-LOC", "B-LOC"]
  # Out of order: nothing free after the cursor, so the earliest free occurrence.
  assert pp.ner_tags_from_spans("LOC: b $$ LOC: a", ["a", "b"]) == ["B-LOC", "B-LOC"]


def test_ner_tags_from_spans_counts_garbage_missing_and_overlaps():
  counts = collections.Counter()
  tokens = ["the", "new", "york", "times", "rick"]
  text = ("ORG: new york times $$ LOC: new york $$ MISC: rick $$ PER: morty $$ lorem ipsum $$ "
          "PER: $$ $$ PER: rick $$ PER: rick")
  # ORG placed; LOC overlaps it; MISC unknown type; morty not in the sentence; "lorem ipsum"
  # and "PER:" malformed; the empty piece ignored; rick placed; the second rick overlaps.
  assert pp.ner_tags_from_spans(text, tokens, counts=counts) == [
      "O", "B-ORG", "I-ORG", "I-ORG", "B-PER"]
  assert counts == {"ner.examples": 1, "ner.spans": 2, "ner.overlap": 2,
                    "ner.unknown_type": 1, "ner.not_found": 1, "ner.malformed": 2}


def test_ner_tags_from_spans_matches_after_nfkc_and_space_collapse():
  # mT5's vocabulary normalises with NFKC, so generated text may differ from full-width input.
  assert pp.ner_tags_from_spans("PER:  Rick   Sanchez ", ["Ｒｉｃｋ", "Sanchez"]) == [
      "B-PER", "I-PER"]
  # A colon inside the entity is kept (only the first colon separates the type).
  assert pp.ner_tags_from_spans("ORG: Star: Wars", ["Star:", "Wars"]) == ["B-ORG", "I-ORG"]


def test_ner_round_trip_on_random_sentences():
  rng = random.Random(0)
  for _ in range(300):
    n = rng.randint(0, 12)
    tokens = [f"w{i}" for i in range(n)]  # distinct words: placement is unambiguous
    tags = [rng.choice(NER_TAGS) for _ in range(n)]
    decoded = pp.ner_tags_from_spans(pp.spans_from_ner_tags(tokens, tags), tokens)
    # The entities are the scorer's entities (I- without B- becomes B-).
    assert metrics.bio_spans(decoded) == metrics.bio_spans(tags)
    assert metrics.span_f1([tags], [decoded])["f1"] == (100.0 if metrics.bio_spans(tags) else 0.0)


def test_qa_answer():
  assert pp.qa_answer("  Paris \n") == "Paris"
  assert pp.qa_answer(" unanswerable") == ""
  assert pp.qa_answer(b"unanswerable") == ""
  assert pp.qa_answer("Unanswerable") == "Unanswerable"  # only the fixed word itself
  assert pp.qa_answer("none", unanswerable="none") == ""


def test_qa_postprocessor_gold_answers_from_example():
  post = pp.qa_postprocessor()
  example = {"answers": np.array([b"Paris", b" the city of Paris"])}
  assert post("Paris ", example=example) == "Paris"
  assert post("Paris", example=example, is_target=True) == ["Paris", "the city of Paris"]
  assert post("unanswerable", example={"answers": np.array([], dtype=object)},
              is_target=True) == [""]
  assert post("unanswerable", example={"answers": [b"unanswerable"]}, is_target=True) == [""]
  assert post("Rome", example=None, is_target=True) == ["Rome"]


def test_tag_and_ner_postprocessors_with_seqio_examples():
  example = {"tokens": np.array([b"rick", b"sleeps"]), "tags": np.array([b"PROPN", b"VERB"])}
  pos = pp.tag_postprocessor(UPOS)
  assert pos("PROPN VERB", example=example, is_target=True) == ["PROPN", "VERB"]
  assert pos("PROPN", example=example) == ["PROPN", "X"]
  ner_example = {"tokens": example["tokens"], "tags": np.array([b"B-PER", b"O"])}
  ner = pp.ner_postprocessor()
  assert ner("PER: rick", example=ner_example, is_target=True) == ["B-PER", "O"]
  assert ner("PER: sleeps", example=ner_example) == ["O", "B-PER"]
  with pytest.raises(ValueError, match="'tokens' feature"):
    ner("PER: rick", example={})


def test_strip_text():
  assert pp.strip_text(b" entailment \n") == "entailment"
