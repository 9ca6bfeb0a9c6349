"""The dual encoder's training tasks: LAReQA's pairs from SQuAD v1.1 and Mewsli-X's from
English Wikipedia, rendered exactly as the evaluation renders queries and candidates."""
import json
import shutil

import pytest
import seqio

from tests.conftest import shared_path
from tests.tasks.conftest import wikipedia_pair
from xfer_t5x.tasks import registry, study, templates
from xfer_t5x.tasks.sources.retrieval import sentence_spans


def _rows(name, split="train"):
  ds = seqio.get_mixture_or_task(name).get_dataset({"inputs": 512, "targets": 512}, split=split,
                                                   shuffle=False)
  return list(ds.as_numpy_iterator())


def test_sentence_splitter_agrees_with_xquad_r_sentence_breaks():
  """XQuAD-R (LAReQA's release) ships its sentence breaks: our splitter, which SQuAD v1.1
  needs, reproduces most of them on the English paragraphs."""
  doc = json.loads(shared_path("lareqa", "en.json").read_text(encoding="utf-8"))
  paragraphs = same = sentences = agreed = 0
  for article in doc["data"]:
    for p in article["paragraphs"]:
      c = p["context"]
      ref = [c[b:e].strip() for b, e in p["sentence_breaks"]]
      ours = [c[b:e].strip() for b, e in sentence_spans(c)]
      paragraphs += 1
      same += ref == ours
      sentences += len(ref)
      agreed += len(set(ref) & set(ours))
  assert paragraphs == 240
  assert same / paragraphs >= 0.85 and agreed / sentences >= 0.95, (same, agreed, sentences)


def test_sentence_splitter_rules():
  text = 'Dr. Smith came. The U.S. Army left! "Yes," he said. 3 cats ran. 東京です。大阪。'
  assert [text[b:e] for b, e in sentence_spans(text)] == [
      "Dr. Smith came.", "The U.S. Army left!", '"Yes," he said.', "3 cats ran.", "東京です。",
      "大阪。"]


@pytest.fixture()
def pairs_dir(local_vocab, tmp_path):
  """XQuAD's English file (SQuAD v1.1 format) as SQuAD's train file, and XQuAD-R beside it."""
  squad = tmp_path / "squad"
  squad.mkdir()
  shutil.copy(shared_path("xquad", "xquad.en.json"), squad / "train-v1.1.json")
  (tmp_path / "lareqa").symlink_to(shared_path("lareqa"))
  mewslix = tmp_path / "mewslix"
  mewslix.mkdir()
  rows = [wikipedia_pair("p1", "Q64", "Berlin", "Berlin is big. It is the capital.", 0, 6,
                         "Capital of Germany."),
          wikipedia_pair("p2", "Q90", "Paris", "Tom left. He moved to {Paris} in 1920.", 23, 28,
                         "Capital of France.")]
  text = rows[1]["contextual_mention"]["context"]["text"]
  rows[1]["contextual_mention"]["context"]["sentence_spans"] = [
      {"start": 0, "end": 9}, {"start": 10, "end": len(text)}]  # the mention's is the second
  rows += [wikipedia_pair(f"q{i}", f"Q{i}", "Rome", f"Rome {i}.", 0, 4, "A city.")
           for i in range(200)]
  rows.insert(1, {"contextual_mention": {"context": {"text": "x"}}, "entity": {}})  # malformed
  (mewslix / "wikipedia_pairs-train.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
  study.register_tasks(local_vocab, str(tmp_path), languages={"lareqa": ["en"]})
  yield tmp_path
  registry.unregister_all()


def test_lareqa_pairs_from_squad_match_xquad_r_gold_candidates(pairs_dir):
  """Every English XQuAD question becomes a pair whose candidate is the sentence holding the
  answer; rendered, it equals XQuAD-R's gold candidate for nearly every question."""
  rows = _rows("lareqa_train")
  assert len(rows) >= 1180  # 1190 questions; an answer across a split boundary is dropped
  for ex in rows[:50]:
    assert ex["inputs_pretokenized"].decode().startswith("question: ")
  pool = {ex["id"].decode(): ex["inputs_pretokenized"].decode()
          for ex in _rows("lareqa_candidates", "test") if ex["id"].decode().startswith("en_")}
  queries = {ex["id"].decode()[:-len("_en")]: [g.decode() for g in ex["gold"]]
             for ex in _rows("lareqa.en", "test")}
  matched = 0
  for ex in rows:
    gold = [g for g in queries.get(ex["id"].decode(), []) if g.startswith("en_")]
    matched += bool(gold) and pool[gold[0]] == ex["targets_pretokenized"].decode()
  assert matched / len(rows) >= 0.95
  info = registry.task_info("lareqa_train")
  assert (info.mode, info.role, info.target, info.family) == (
      "train", "target_train", "lareqa", "retrieval_pairs")


def test_mewslix_pairs_render_as_the_wikinews_queries_and_the_candidate_entities(pairs_dir):
  rows = _rows("mewslix_train")
  assert [ex["id"].decode() for ex in rows[:3]] == ["p1", "p2", "q0"]  # the malformed one skipped
  assert len(rows) == 202
  assert rows[1]["inputs_pretokenized"].decode() == (
      "mention: Paris context: He moved to ( { Paris } ) in 1920.")
  assert rows[1]["targets_pretokenized"].decode() == (
      "entity: Paris description: Capital of France.")
  # The evaluation's templates give the same strings for the same fields.
  fields = {"text": "Paris", "context": "He moved to ( { Paris } ) in 1920."}
  assert templates.TEMPLATES["mewslix_mention"].render(
      {**fields})[0] == rows[1]["inputs_pretokenized"].decode()
  assert templates.TEMPLATES["mewslix_entity"].render(
      {"text": "Capital of France.", "context": "Paris"})[0] == (
          rows[1]["targets_pretokenized"].decode())


def test_training_only_tasks_are_refused_by_evaluation(pairs_dir):
  from xfer_t5x.evaluation import examples  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="training-only task"):
    examples.expand_tasks(["lareqa_train"])
  assert examples.expand_tasks(["lareqa_zeroshot"]) == ["lareqa.en"]
