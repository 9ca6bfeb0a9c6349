"""NER span F1 and UD-POS F1 as XTREME-R's scorer (seqeval 1.2) computes them, hand-computed."""
import pytest

from xfer_t5x.tasks import metrics

approx = lambda v: pytest.approx(v, rel=1e-9, abs=1e-9)  # noqa: E731


def test_span_f1_partial_overlaps_count_as_errors():
  targets = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-LOC"], ["O", "B-ORG", "I-ORG", "O"]]
  predictions = [["B-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC"], ["O", "B-ORG", "I-ORG", "B-ORG"]]
  # gold entities: PER[0-1], LOC[3-5], ORG[1-2] (3); predicted: PER[0-0] (overlaps the gold PER
  # only partially: no credit), LOC[3-5], ORG[1-2], ORG[3-3] (4). True positives: LOC, ORG = 2.
  # P = 2/4 = 50, R = 2/3 = 66.67, F1 = 2 * 0.5 * (2/3) / (0.5 + 2/3) = 4/7 = 57.14.
  assert metrics.span_f1(targets, predictions) == {
      "f1": approx(400 / 7), "precision": approx(50.0), "recall": approx(200 / 3)}


def test_span_f1_inside_without_begin_starts_an_entity():
  # seqeval: I- after O (or after another type) opens an entity, so this prediction is right.
  assert metrics.span_f1([["B-PER", "I-PER", "B-LOC", "I-LOC"]],
                         [["I-PER", "I-PER", "I-LOC", "I-LOC"]])["f1"] == approx(100.0)
  # A type change inside an entity splits it: PER[0-0], LOC[1-1] vs gold PER[0-1] -> 0.
  assert metrics.span_f1([["B-PER", "I-PER"]], [["B-PER", "I-LOC"]]) == {
      "f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_span_f1_sentences_do_not_join():
  # Each sentence ends with an implicit "O": the gold is PER[0-0] and PER[2-2] in the
  # concatenation, which B-PER / B-PER reproduces exactly.
  assert metrics.chunks_of([["B-PER"], ["I-PER"]]) == [("PER", 0, 0), ("PER", 2, 2)]
  assert metrics.span_f1([["B-PER"], ["I-PER"]], [["B-PER"], ["B-PER"]])["f1"] == approx(100.0)


def test_span_f1_without_entities_is_zero():
  assert metrics.span_f1([["O", "O"]], [["O", "O"]]) == {"f1": 0.0, "precision": 0.0,
                                                         "recall": 0.0}


def test_span_f1_requires_matching_shapes():
  with pytest.raises(ValueError, match="sentence 0: 2 gold vs 1 predicted"):
    metrics.span_f1([["O", "O"]], [["O"]])
  with pytest.raises(ValueError, match="2 gold vs 1 predicted sentences"):
    metrics.span_f1([["O"], ["O"]], [["O"]])
  with pytest.raises(TypeError, match="one list of tags per sentence"):
    metrics.span_f1(["B-PER O"], ["B-PER O"])


def test_pos_f1_chunks_runs_of_equal_tags():
  targets = [["DET", "NOUN", "NOUN", "VERB", "PUNCT"]]
  predictions = [["DET", "NOUN", "VERB", "VERB", "PUNCT"]]
  # seqeval reads "NOUN" as letter N, type "OUN"; a run of equal tags is one chunk.
  # gold chunks: ET[0-0], OUN[1-2], ERB[3-3], UNCT[4-4]; predicted: ET[0-0], OUN[1-1],
  # ERB[2-3], UNCT[4-4]. True positives: DET, PUNCT = 2 -> P = R = F1 = 2/4 = 50.
  # Token accuracy: 4 of 5 tags right = 80.
  assert metrics.pos_f1(targets, predictions) == {
      "f1": approx(50.0), "precision": approx(50.0), "recall": approx(50.0),
      "token_accuracy": approx(80.0)}


def test_pos_f1_conjunctions_share_a_type():
  # CCONJ -> (C, "CONJ"), SCONJ -> (S, "CONJ"): the same chunk (CONJ, 0, 0) -> F1 100 while
  # the tag is wrong (token accuracy 0).
  assert metrics.pos_f1([["CCONJ"]], [["SCONJ"]]) == {
      "f1": approx(100.0), "precision": approx(100.0), "recall": approx(100.0),
      "token_accuracy": 0.0}


def test_pos_f1_x_after_a_sentence_keeps_a_stale_chunk_start():
  # "X" has the type "_" of "O": after the separating "O" it opens no chunk, so the chunk that
  # closes at the next tag starts where the previous chunk started (seqeval's state machine).
  targets = [["NOUN"], ["X", "NOUN"]]
  # flat: NOUN O X NOUN O -> OUN[0-0], _[0-2], OUN[3-3]
  assert metrics.chunks_of(targets) == [("OUN", 0, 0), ("_", 0, 2), ("OUN", 3, 3)]
  predictions = [["NOUN"], ["NOUN", "NOUN"]]
  # predicted: OUN[0-0], OUN[2-3]. True positives 1 -> P 1/2, R 1/3,
  # F1 = 2 * (1/2) * (1/3) / (5/6) = 0.4 -> 40. Token accuracy 2/3.
  assert metrics.pos_f1(targets, predictions) == {
      "f1": approx(40.0), "precision": approx(50.0), "recall": approx(100 / 3),
      "token_accuracy": approx(200 / 3)}


def test_bio_spans_of_one_sentence():
  assert metrics.bio_spans(["I-LOC", "I-LOC", "O", "B-PER", "B-PER", "I-ORG"]) == [
      ("LOC", 0, 1), ("PER", 3, 3), ("PER", 4, 4), ("ORG", 5, 5)]
