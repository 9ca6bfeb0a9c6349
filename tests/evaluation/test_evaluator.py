"""Evaluation on one device: batching, task expansion, rank classification, retrieval, and the
model-dir files (predictions, metrics.jsonl, summary.json/summary.txt)."""
import json
import math

import jax
import numpy as np
import pytest
import seqio

from xfer_t5x.evaluation import batching
from xfer_t5x.evaluation import examples as examples_lib
from xfer_t5x.evaluation import retrieve as retrieve_lib
from xfer_t5x.evaluation import summary as summary_lib
from xfer_t5x.evaluation.evaluator import evaluate
from xfer_t5x.evaluation.results import TaskResult
from xfer_t5x.evaluation.runner import MeshRunner
from xfer_t5x.model.api import EncoderDecoderModel
from xfer_t5x.model.config import T5Config
from xfer_t5x.runtime.partitioning import Partitioner, make_mesh
from xfer_t5x.tasks import demo_data, registry, study, vocab
from xfer_t5x.tasks.metrics import xtreme_r_aggregate

MC_ROWS = [
    ("The glass fell off the table.", "What happened as a result?", ["It broke.", "It sang.", "It grew."], 0),
    ("The man lost his keys.", "What was the cause?", ["He was careless.", "He was tall.", "It rained."], 0),
    ("The girl was hungry.", "What happened as a result?", ["She slept.", "She ate.", "She ran."], 1),
    ("The ice melted.", "What was the cause?", ["It was cold.", "It was dark.", "It was hot."], 2),
    ("The dog barked.", "What was the cause?", ["A stranger came.", "The sun rose.", "Fish swam."], 0),
    ("The road was wet.", "What was the cause?", ["It rained.", "It was dry.", "Birds sang."], 0),
    ("The child laughed.", "What was the cause?", ["A joke.", "A storm.", "A loss."], 0),
]
SENTENCES = ["the red house", "a small green boat", "many birds fly south", "she reads a book",
             "the river is long", "we eat rice today"]


def _strict_json(text):
  def reject(name):
    raise ValueError(f"{name} in JSON")
  return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  """A local vocabulary, a tiny float32 model at a fixed random init, and a 1-device mesh."""
  tmp = tmp_path_factory.mktemp("eval_env")
  texts = list(demo_data.demo_texts(demo_data.write_demo_data(str(tmp / "data"), n_train=8,
                                                                n_eval=4)))
  texts += [" ".join([c, q] + ch) for c, q, ch, _ in MC_ROWS] + SENTENCES
  voc = vocab.build_local_vocabulary(texts, str(tmp / "spm.model"))
  model = EncoderDecoderModel(T5Config(
      emb_dim=32, num_heads=2, head_dim=16, mlp_dim=64, num_encoder_layers=2,
      num_decoder_layers=2, dtype="float32", dropout_rate=0.0).with_vocab(voc.vocab_size))
  params = model.init(jax.random.PRNGKey(3))
  part = Partitioner(make_mesh(1, 1, devices=jax.devices()[:1]))
  return {"tmp": tmp, "vocab": voc, "model": model, "params": params, "part": part}


# ------------------------------------------------------------------------------ batching
def test_run_batched_pads_the_last_batch_and_drops_the_padding():
  part = Partitioner(make_mesh(1, 1, devices=jax.devices()[:1]))
  x = np.arange(7 * 3, dtype=np.int32).reshape(7, 3)
  seen = []

  def fn(batch):
    seen.append(batch["x"].shape)
    return batch["x"] * 2, batch["x"].sum(axis=1)
  doubled, sums = batching.run_batched(fn, {"x": x}, 3, part)
  assert seen == [(3, 3)] * 3  # 7 rows -> three batches of 3, the last padded
  np.testing.assert_array_equal(doubled, x * 2)
  np.testing.assert_array_equal(sums, x.sum(axis=1))


def test_pad_tokens_and_buckets():
  arr = batching.pad_tokens([[5, 1], [7, 8, 9, 1]], batching.bucket_length([[5, 1], [7, 8, 9, 1]],
                                                                           8))
  assert arr.shape == (2, 8) and arr[1, :4].tolist() == [7, 8, 9, 1] and arr[0, 2:].sum() == 0
  with pytest.raises(ValueError, match="more than the length"):
    batching.pad_tokens([[1, 2, 3]], 2)
  np.testing.assert_array_equal(batching.shift_right(np.array([[4, 5, 1, 0]])), [[0, 4, 5, 1]])


# ------------------------------------------------------------------------------ task expansion
def test_zeroshot_mixture_expands_to_every_language_of_its_target(env):
  langs = ["en", "de", "es", "sw", "zh"]
  study.register_tasks(env["vocab"], data_dir=str(env["tmp"] / "data"),
                       languages={"xnli": langs, "panx": ["en", "de"]})
  assert examples_lib.expand_tasks(["xnli_zeroshot"]) == [f"xnli.{lang}" for lang in langs]
  assert examples_lib.expand_tasks(["panx_zeroshot", "panx.de", "mnli"]) == [
      "panx.en", "panx.de", "mnli"]
  members = registry.mixture_info("intermediate_all")["tasks"]
  assert examples_lib.expand_tasks("intermediate_all") == members
  assert examples_lib.eval_split("xnli.de") == "test"
  assert examples_lib.eval_split("mnli") == "validation"
  with pytest.raises(ValueError, match="neither a registered task nor a mixture"):
    examples_lib.expand_tasks(["xnli.xx"])


# ------------------------------------------------------------------------------ rank classification
def _mc_task(env, name):
  path = env["tmp"] / f"{name}.jsonl"
  path.write_text("".join(json.dumps({"id": str(i), "context": c, "question": q, "choices": ch,
                                      "label": lab}) + "\n"
                          for i, (c, q, ch, lab) in enumerate(MC_ROWS)))
  registry.add_task(name, {"validation": str(path)}, "xcopa", mode="rank",
                    vocabulary=env["vocab"], target="xcopa", language="sw", role="eval",
                    eval_split="validation")


@pytest.mark.slow
def test_rank_classification_picks_the_choice_with_the_highest_score(env, tmp_path):
  _mc_task(env, "evaltest_rank.sw")
  model, params = env["model"], env["params"]
  metrics = evaluate(str(tmp_path), ["evaltest_rank.sw"], model=model, params=params, step=0,
                     partitioner=env["part"], batch_size=4)
  records = [json.loads(line) for line in (
      tmp_path / "inference_eval" / "evaltest_rank.sw-0.jsonl").read_text().splitlines()]
  assert len(records) == len(MC_ROWS)

  # Independent scores: one jitted, unsharded score_batch call over every (row, choice), padded
  # to other lengths than the evaluator's.
  voc = env["vocab"]
  ds = seqio.get_mixture_or_task("evaltest_rank.sw").get_dataset(
      None, split="validation", shuffle=False)
  pairs = [(r["inputs"], choice) for r, (_, _, choices, _) in zip(records, MC_ROWS)
           for choice in choices]
  enc = batching.pad_tokens([voc.encode(i) + [1] for i, _ in pairs], 80)
  tgt = batching.pad_tokens([voc.encode(c) + [1] for _, c in pairs], 20)
  flat = np.asarray(jax.jit(model.score_batch)(params, {
      "encoder_input_tokens": enc, "decoder_target_tokens": tgt,
      "decoder_input_tokens": batching.shift_right(tgt)}))
  correct = 0
  for n, (record, (_, _, choices, label)) in enumerate(zip(records, MC_ROWS)):
    ref = flat[3 * n:3 * n + 3]
    top = sorted(ref)[-2:]
    assert top[1] - top[0] > 1e-3  # a clear winner, so argmax is meaningful
    np.testing.assert_allclose(record["choice_scores"], ref, rtol=1e-5, atol=1e-4)
    assert record["choices"] == choices
    assert record["prediction"] == choices[int(np.argmax(ref))]
    assert record["target"] == choices[label]
    correct += int(np.argmax(ref)) == label
  assert len(list(ds.as_numpy_iterator())) == 3 * len(MC_ROWS)
  assert metrics["evaltest_rank.sw"]["accuracy"] == pytest.approx(100.0 * correct / len(MC_ROWS))


# ------------------------------------------------------------------------------ retrieval
def test_top_k_ranks_by_cosine_similarity(env):
  runner = MeshRunner(env["model"], env["params"], env["part"], batch_size=2)
  queries = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.9]], np.float32)
  cands = np.array([[0.0, 2.0], [3.0, 0.0], [1.0, 1.2], [-1.0, 0.0]], np.float32)
  idx, sims = runner.top_k(queries, cands, 3)
  assert idx.tolist() == [[1, 2, 0], [0, 2, 1], [2, 1, 0]]
  np.testing.assert_allclose(sims[0], [1.0, 1 / math.sqrt(2.44), 0.0], atol=1e-6)


def _retrieval_tasks(env):
  def write(name, rows):
    path = env["tmp"] / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)
  pool = [{"id": f"c{i}", "text": s, "context": "-", "gold": [], "lang": "en"}
          for i, s in enumerate(SENTENCES)]
  # Each query is word for word its candidate's text, but the last one's gold is c0: a miss.
  queries = [{"id": f"q{i}", "text": s, "context": "-", "gold": [f"c{i}"], "lang": "xx"}
             for i, s in enumerate(SENTENCES[:4])]
  queries[3]["gold"] = ["c0"]
  registry.add_task("evaltest_pool", {"test": write("evaltest_pool", pool)}, "tatoeba", [],
                    mode="embed", vocabulary=env["vocab"], target="tatoeba", role="candidates",
                    eval_split="test")
  for metric in ("retrieval_accuracy", "mrr_at_k"):
    registry.add_task(f"evaltest_{metric}", {"test": write("evaltest_q", queries)}, "tatoeba",
                      [metric], mode="retrieve", vocabulary=env["vocab"], target="tatoeba",
                      language="xx", role="eval", eval_split="test",
                      candidates_task="evaltest_pool")


def test_retrieval_metrics_on_a_constructed_case(env, tmp_path):
  _retrieval_tasks(env)
  with pytest.raises(ValueError, match="candidate pool"):
    examples_lib.expand_tasks(["evaltest_pool"])
  metrics = evaluate(str(tmp_path), ["evaltest_retrieval_accuracy", "evaltest_mrr_at_k"],
                     model=env["model"], params=env["params"], step=5, partitioner=env["part"],
                     batch_size=2)
  records = [json.loads(line) for line in (
      tmp_path / "inference_eval" / "evaltest_mrr_at_k-5.jsonl").read_text().splitlines()]
  # Identical texts embed identically: every query's nearest candidate is its own text.
  assert [r["prediction"][0] for r in records] == ["c0", "c1", "c2", "c3"]
  for r in records:
    assert r["score"] == pytest.approx(1.0, abs=1e-5)
    assert len(r["prediction"]) == len(SENTENCES)  # k=20 capped at the pool size
    assert r["similarities"] == sorted(r["similarities"], reverse=True)
  assert metrics["evaltest_retrieval_accuracy"] == {"accuracy": 75.0}
  rank_of_gold = records[3]["prediction"].index("c0") + 1
  assert metrics["evaltest_mrr_at_k"]["map@20"] == pytest.approx(
      100.0 * (3 + 1.0 / rank_of_gold) / 4)


def test_retrieval_layer_defaults():
  assert retrieve_lib.resolve_layer(None, "tatoeba", 12) == 6
  assert retrieve_lib.resolve_layer(None, "lareqa", 12) is None
  assert retrieve_lib.resolve_layer(3, "lareqa", 12) == 3
  assert retrieve_lib.resolve_layer(12, "tatoeba", 12) is None
  with pytest.raises(ValueError, match="embedding_layer"):
    retrieve_lib.resolve_layer(13, "tatoeba", 12)


# ------------------------------------------------------------------------------ model-dir files
def _result(name, target, lang, metrics, n=3, mode="generate"):
  info = registry.TaskInfo(name=name, template="x", family="x", mode=mode, target=target,
                           language=lang, role="eval" if target else "intermediate",
                           eval_split="test")
  records = [{"inputs": f"in {i}", "target": "t", "prediction": "p", "score": -1.0}
             for i in range(n)]
  return TaskResult(name, info, "test", metrics, records)


def test_summary_updates_steps_and_agrees_with_metrics_lines(tmp_path):
  first = [_result("xnli.de", "xnli", "de", {"accuracy": 40.0}),
           _result("xnli.sw", "xnli", "sw", {"accuracy": 30.0}),
           _result("mnli", None, "en", {"accuracy": 50.0})]
  summary_lib.write_all(tmp_path, first, 10, "ck10")
  later = [_result("xquad.de", "xquad", "de", {"em": 20.0, "f1": 30.0}),
           _result("xcopa_rank.sw", "xcopa", "sw", {"accuracy": 90.0}, mode="rank"),
           _result("xcopa.sw", "xcopa", "sw", {"accuracy": 60.0})]
  summary_lib.write_all(tmp_path, later, 10, "ck10")
  summary_lib.write_all(tmp_path, [_result("xnli.de", "xnli", "de", {"accuracy": 70.0})], 20)

  summary = _strict_json((tmp_path / "summary.json").read_text())
  assert summary["latest_step"] == 20 and list(summary["steps"]) == ["10", "20"]
  step10 = summary["steps"]["10"]
  assert sorted(step10["tasks"]) == sorted(r.task for r in first + later)
  lines = [json.loads(line) for line in
           (tmp_path / "inference_eval" / "metrics.jsonl").read_text().splitlines()]
  assert len(lines) == 7
  # The XTREME-R aggregate equals the one recomputed from the per-language lines.
  by_target = {}
  for line in lines:
    if line["step"] == 10 and line["target"] and not line["task"].startswith("xcopa_rank"):
      by_target.setdefault(line["target"], {})[line["language"]] = line["metrics"]
  expected = xtreme_r_aggregate(by_target)
  assert step10["xtreme_r"]["tasks"] == pytest.approx(expected["tasks"])
  assert step10["xtreme_r"]["per_language"]["xcopa"] == {"sw": 60.0}  # xcopa.sw, not the rank one
  assert step10["xtreme_r"]["overall"] == pytest.approx((35.0 + 60.0 + 25.0) / 3)
  assert summary["steps"]["20"]["xtreme_r"]["tasks"] == {"xnli": 70.0}
  text = (tmp_path / "summary.txt").read_text()
  assert "== step 10" in text and "== step 20" in text
  assert "xnli        35.00  de 40.00  sw 30.00" in text
  assert "overall     40.00" in text
  for r in first:
    path = tmp_path / "inference_eval" / f"{r.task}-10.jsonl"
    assert [json.loads(x) for x in path.read_text().splitlines()] == r.records


@pytest.mark.slow
def test_a_failing_task_keeps_the_tasks_evaluated_before_it(env, tmp_path):
  """The second task's file is broken: the evaluation stops naming it, and the first task's
  predictions and metrics are already on disk."""
  from xfer_t5x.evaluation.evaluator import TaskEvaluationError  # pylint: disable=g-import-not-at-top
  good, broken = tmp_path / "good.jsonl", tmp_path / "broken.jsonl"
  good.write_text("".join(json.dumps({"premise": s, "hypothesis": s, "label": i % 3}) + "\n"
                          for i, s in enumerate(SENTENCES)))
  broken.write_text("".join(json.dumps({"premise": s}) + "\n" for s in SENTENCES))  # no fields
  for name, path in (("evaltest_good.en", good), ("evaltest_broken.sw", broken)):
    registry.add_task(name, {"validation": str(path)}, "xnli", vocabulary=env["vocab"],
                      eval_split="validation")
  vocab.set_run_vocabulary(env["vocab"])
  out = tmp_path / "model"
  with pytest.raises(TaskEvaluationError, match=r"evaluating evaltest_broken.sw \(validation "
                     r"split\) failed: .*evaltest_good.en\) are written to"):
    evaluate(str(out), ["evaltest_good.en", "evaltest_broken.sw"], model=env["model"],
             params=env["params"], step=0, partitioner=env["part"], batch_size=4,
             feature_lengths={"inputs": 32, "targets": 8})
  summary = json.loads((out / "summary.json").read_text())
  assert list(summary["steps"]["0"]["tasks"]) == ["evaltest_good.en"]
  assert len((out / "inference_eval" / "evaltest_good.en-0.jsonl").read_text().splitlines()) == 6
