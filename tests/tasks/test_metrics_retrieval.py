"""LAReQA mAP@20, Mewsli-X MRR@20 ("map@20") and Tatoeba accuracy, hand-computed."""
import pytest

from xfer_t5x.tasks import metrics

approx = lambda v: pytest.approx(v, rel=1e-9, abs=1e-9)  # noqa: E731

# A pool of candidates from three languages: the answer sentence of question 1 (xling id 1) and
# of question 2 in en, de and zh. Both questions are German; each ranks the whole pool.
RELEVANT = [{"en1", "de1", "zh1"}, {"en2", "de2", "zh2"}]
RANKED = [["de1", "en2", "en1", "zh2", "zh1", "de2"],
          ["en1", "de2", "zh1", "zh2", "de1", "en2"]]


def test_map_at_20_on_pooled_candidates():
  # q1: hits at ranks 1, 3, 5 -> (1/1 + 2/3 + 3/5) / 3 = 2.2667 / 3 = 0.75556
  # q2: hits at ranks 2, 4, 6 -> (1/2 + 2/4 + 3/6) / 3 = 0.5
  # mAP = (0.75556 + 0.5) / 2 = 0.62778 -> 62.78
  expected = ((1 + 2 / 3 + 3 / 5) / 3 + 0.5) / 2 * 100
  assert metrics.mean_average_precision_at_k(RELEVANT, RANKED) == {"map@20": approx(expected)}


def test_map_cut_off_divides_by_min_of_relevant_and_k():
  # k = 4: q1 [de1, en2, en1, zh2] -> (1 + 2/3) / min(3, 4) = 0.5556;
  #        q2 [en1, de2, zh1, zh2] -> (1/2 + 2/4) / 3 = 0.3333; mean 0.4444
  assert metrics.mean_average_precision_at_k(RELEVANT, RANKED, k=4) == {
      "map@4": approx(((1 + 2 / 3) / 3 + 1 / 3) / 2 * 100)}
  # k = 2: q1 [de1, en2] -> 1 / min(3, 2) = 0.5; q2 [en1, de2] -> (1/2) / 2 = 0.25; mean 0.375
  assert metrics.mean_average_precision_at_k(RELEVANT, RANKED, k=2) == {"map@2": approx(37.5)}


def test_average_precision_counts_a_repeated_candidate_once():
  # [a, a, b]: a at rank 1 (1/1), the repeat is skipped, b at rank 3 (2/3) -> (1 + 2/3) / 2
  assert metrics.average_precision_at_k({"a", "b"}, ["a", "a", "b"]) == approx(5 / 6)
  with pytest.raises(ValueError, match="at least one relevant"):
    metrics.average_precision_at_k(set(), ["a"])


def test_map_by_question_language():
  out = metrics.mean_average_precision_by_group(["de", "zh"], RELEVANT, RANKED)
  assert out == {"de": {"map@20": approx((1 + 2 / 3 + 3 / 5) / 3 * 100)},
                 "zh": {"map@20": approx(50.0)}}


def test_mrr_at_20_single_gold():
  targets = ["Q1", ["Q2"], "Q3", " Q4 "]
  predictions = [["Q1", "Q5"], ["Q9", "Q2"], ["Q0"] * 20 + ["Q3"], ["a", "b", "c", "Q4"]]
  # reciprocal ranks: 1, 1/2, 0 (rank 21 is past k = 20), 1/4 (gold stripped as the scorer does)
  # MRR = (1 + 0.5 + 0 + 0.25) / 4 = 0.4375 -> 43.75
  assert metrics.mrr_at_k(targets, predictions) == {"map@20": approx(43.75)}
  assert metrics.mrr_at_k(targets, predictions, k=1) == {"map@1": approx(25.0)}


def test_tatoeba_accuracy():
  # top-1 of each: 0 (right), [1, 0] -> 1 (right), [] (wrong), 2 vs 3 (wrong) -> 2/4
  assert metrics.retrieval_accuracy([0, 1, 2, 3], [0, [1, 0], [], 2]) == {"accuracy": 50.0}


def test_retrieval_input_errors():
  with pytest.raises(ValueError, match="1 targets but 2 predictions"):
    metrics.mrr_at_k(["a"], [["a"], ["b"]])
  with pytest.raises(TypeError, match="ranked list"):
    metrics.mean_average_precision_at_k([{"a"}], ["a"])
  with pytest.raises(ValueError, match="no queries"):
    metrics.retrieval_accuracy([], [])
