"""QA metrics: SQuAD v1.1, MLQA per-language normalisation, SQuAD 2.0 (hand-computed values)."""
import pytest

from xfer_t5x.tasks import metrics

approx = lambda v: pytest.approx(v, rel=1e-9, abs=1e-9)  # noqa: E731


def test_squad_max_over_gold_answers():
  targets = [["the cat", "a black cat"], ["Paris"]]
  predictions = ["Black cat!", "the city of Paris"]
  # 1: "black cat" vs "cat": P 1/2, R 1, F1 2/3; vs "black cat" (article dropped): EM 1, F1 1.
  #    max over golds -> EM 1, F1 1.
  # 2: "city of paris" vs "paris": P 1/3, R 1 -> F1 2*(1/3)/(4/3) = 0.5; EM 0.
  # EM = (1 + 0) / 2 = 50; F1 = (1 + 0.5) / 2 = 75.
  assert metrics.squad_em_f1(targets, predictions) == {"em": approx(50.0), "f1": approx(75.0)}


def test_squad_f1_is_zero_when_both_sides_empty():
  # v1.1: nothing shared -> F1 0, although the normalised strings are equal (EM 1).
  assert metrics.squad_em_f1([["the"]], ["a"]) == {"em": approx(100.0), "f1": approx(0.0)}


def test_squad_keeps_non_ascii_punctuation():
  # string.punctuation is ASCII only: "„faust“" != "faust" under SQuAD's normalisation.
  assert metrics.squad_em_f1([["Faust"]], ["„Faust“"]) == {"em": 0.0, "f1": 0.0}


def test_mlqa_chinese_mixed_segmentation():
  em_f1 = metrics.mlqa_em_f1("zh")
  # "北京大学。": "。" is Unicode punctuation (dropped), each CJK character is a token:
  # "北 京 大 学" on both sides -> EM 1, F1 1.
  assert em_f1([["北京 大学"]], ["北京大学。"]) == {"em": approx(100.0), "f1": approx(100.0)}
  # SQuAD's normalisation keeps "。" and does not split characters: one token vs two -> 0.
  assert metrics.squad_em_f1([["北京 大学"]], ["北京大学。"]) == {"em": 0.0, "f1": 0.0}
  targets = [["上海"], ["iphone 手机"], ["\u9fa6"]]
  predictions = ["上海市", "iPhone手机", "\u9fa6\u9fa6"]
  # 1: [上,海,市] vs [上,海]: 2 shared, P 2/3, R 1 -> F1 (4/3)/(5/3) = 0.8; EM 0.
  # 2: "iphone手机" -> [iphone, 手, 机] == gold tokens -> EM 1, F1 1.
  # 3: U+9FA6 is past the scorer's range U+4E00..U+9FA5, so "\u9fa6\u9fa6" stays one token
  #    and shares nothing with "\u9fa6" -> 0.
  # EM = 1/3 = 33.33; F1 = (0.8 + 1 + 0) / 3 = 60.
  assert em_f1(targets, predictions) == {"em": approx(100 / 3), "f1": approx(60.0)}


def test_mlqa_arabic_article_removed_everywhere():
  em_f1 = metrics.mlqa_em_f1("ar")
  assert metrics.normalize_mlqa("الكتاب", "ar") == "كتاب"
  # The scorer's pattern removes every "ال", also inside words: "المال" -> " م " and
  # "مال" -> "م " both normalise to "م".
  assert metrics.normalize_mlqa("المال", "ar") == "م"
  assert metrics.normalize_mlqa("مال", "ar") == "م"
  targets = [["كتاب"], ["مال"], ["القاهرة"]]
  predictions = ["الكتاب", "المال", "القاهرة، مصر"]
  # 1: EM 1. 2: EM 1 (quirk above). 3: "،" (U+060C) is punctuation -> [قاهرة, مصر] vs [قاهرة]:
  #    P 1/2, R 1 -> F1 2/3; EM 0.
  # EM = 2/3 = 66.67; F1 = (1 + 1 + 2/3) / 3 = 8/9 = 88.89.
  assert em_f1(targets, predictions) == {"em": approx(200 / 3), "f1": approx(800 / 9)}
  # SQuAD's normalisation knows no Arabic article.
  assert metrics.squad_em_f1([["مال"]], ["المال"])["em"] == 0.0


def test_mlqa_german_articles_and_quotes():
  em_f1 = metrics.mlqa_em_f1("de")
  targets = [["Hund"], ["Faust"], ["den Hund", "eine Katze"], ["Hund"]]
  predictions = ["Der Hund", "„Faust“", "die Katze und der Hund", "dieser Hund"]
  # 1: "der" is a German article -> "hund": EM 1.
  # 2: „ and “ are Unicode punctuation (Ps/Pi) -> "faust": EM 1.
  # 3: [katze, und, hund] vs [hund]: P 1/3, R 1 -> 0.5; vs [katze]: 0.5 -> F1 0.5, EM 0.
  # 4: "dieser" is no article (whole words only): [dieser, hund] vs [hund] -> F1 2/3, EM 0.
  # EM = 2/4 = 50; F1 = (1 + 1 + 0.5 + 2/3) / 4 = 0.791666... -> 79.17.
  assert em_f1(targets, predictions) == {"em": approx(50.0), "f1": approx(475 / 6)}
  # English articles are not German ones.
  assert metrics.normalize_mlqa("the Hund", "de") == "the hund"


def test_mlqa_other_languages():
  assert metrics.normalize_mlqa("La Casa Blanca", "es") == "casa blanca"
  assert metrics.normalize_mlqa("thủ đô của Pháp", "vi") == "thủ đô pháp"
  assert metrics.normalize_mlqa("The Taj", "hi") == "the taj"  # Hindi: no articles
  assert metrics.normalize_mlqa("The Taj!", "en") == "taj"


def test_mlqa_unknown_language_fails_with_reason():
  with pytest.raises(ValueError, match="fr"):
    metrics.mlqa_em_f1("fr")
  with pytest.raises(ValueError, match="ja"):
    metrics.normalize_mlqa("x", "ja")


def test_squad_v2_unanswerable():
  targets = [[""], [], ["Paris"], [""]]
  predictions = ["", "", "", "Paris"]
  # 1 and 2: no (non-empty) gold -> gold "" ; empty prediction -> EM 1, F1 1 (v2 rule).
  # 3: empty prediction for an answerable question -> 0. 4: answer for unanswerable -> 0.
  # EM = F1 = 2/4 = 50.
  assert metrics.squad_v2_em_f1(targets, predictions) == {"em": approx(50.0), "f1": approx(50.0)}


def test_qa_input_errors():
  with pytest.raises(ValueError, match="2 targets but 1 predictions"):
    metrics.squad_em_f1([["a"], ["b"]], ["a"])
  with pytest.raises(TypeError, match="list of gold answers"):
    metrics.squad_em_f1(["a"], ["a"])
  with pytest.raises(ValueError, match="no gold answer"):
    metrics.squad_em_f1([[]], ["a"])


def test_qa_metric_for_target():
  assert metrics.qa_metric_for("xquad", "zh") is metrics.squad_em_f1
  assert metrics.qa_metric_for("tydiqa", "ar") is metrics.squad_em_f1
  mlqa_zh = metrics.qa_metric_for("mlqa", "zh")
  assert mlqa_zh([["北京 大学"]], ["北京大学。"])["em"] == approx(100.0)
