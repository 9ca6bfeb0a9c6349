"""A dual encoder evaluated on the real LAReQA (XQuAD-R) and Tatoeba samples in ../shared/data,
end to end through `evaluate`: the official metrics, and rankings equal to a brute-force
cosine ranking of the model's own embeddings."""
import json

import jax
import numpy as np
import pytest

from tests.conftest import SHARED_DATA, shared_path
from xfer_t5x.evaluation import batching, examples as examples_lib
from xfer_t5x.evaluation import retrieve as retrieve_lib
from xfer_t5x.evaluation.evaluator import evaluate
from xfer_t5x.model.config import T5Config
from xfer_t5x.model.dual_encoder import DualEncoderModel
from xfer_t5x.runtime.partitioning import Partitioner, make_mesh
from xfer_t5x.tasks import registry, study, vocab

pytestmark = pytest.mark.slow
LENGTHS = {"inputs": 64, "targets": 8}
N_QUERIES = 30


@pytest.fixture(scope="module")
def env(demo_workspace):
  shared_path("lareqa", "de.json")
  shared_path("tatoeba", "tatoeba.deu-eng.deu")
  voc = vocab.default_vocabulary(demo_workspace["vocab"])
  study.register_tasks(voc, "/nonexistent", data_dirs={
      "lareqa": str(SHARED_DATA / "lareqa"), "tatoeba": str(SHARED_DATA / "tatoeba")},
                       languages={"lareqa": ["de", "zh"], "tatoeba": ["de", "ja"]})
  tiny = dict(emb_dim=64, num_heads=4, head_dim=16, mlp_dim=128, num_encoder_layers=2,
              num_decoder_layers=2, dtype="float32", dropout_rate=0.0)
  model = DualEncoderModel(T5Config(**tiny).with_vocab(voc.vocab_size), projection_dim=32)
  params = jax.jit(model.init)(jax.random.PRNGKey(0))
  part = Partitioner(make_mesh(1, 1, devices=jax.devices()[:1]))
  yield {"model": model, "params": params, "part": part}
  registry.unregister_all()


def _brute_force_top(model, params, queries, pool, k):
  def embed(rows):
    length = batching.bucket_length([ex["inputs"] for ex in rows], 8)
    return np.asarray(model.embed_batch(params, batching.pad_tokens(
        [ex["inputs"] for ex in rows], length)))
  q, c = embed(queries), embed(pool)
  sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (
      c / np.linalg.norm(c, axis=1, keepdims=True)).T
  return np.argsort(-sims, axis=1, kind="stable")[:, :k], np.sort(sims, axis=1)[:, ::-1][:, :k]


def _records(out_dir, task, step):
  path = out_dir / "inference_eval" / f"{task}-{step}.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines()]


def test_lareqa_and_tatoeba_from_the_real_samples(env, tmp_path):
  tasks = ["lareqa.de", "lareqa.zh", "tatoeba.de", "tatoeba.ja"]
  metrics = evaluate(str(tmp_path), tasks, model=env["model"], params=env["params"], step=1,
                     partitioner=env["part"], batch_size=64, max_examples=N_QUERIES,
                     feature_lengths=LENGTHS)
  assert set(metrics) == set(tasks)
  for t in ("lareqa.de", "lareqa.zh"):
    assert set(metrics[t]) == {"map@20"} and 0.0 <= metrics[t]["map@20"] <= 100.0
  for t in ("tatoeba.de", "tatoeba.ja"):
    assert set(metrics[t]) == {"accuracy"} and 0.0 <= metrics[t]["accuracy"] <= 100.0

  # LAReQA: the pool is every sentence of the three sample languages, the query's gold its
  # answer sentence in each; the ranking is the model's own cosine ranking, and map@20 is
  # xtreme's average_precision_at_k over it.
  pool = examples_lib.load_examples("lareqa_candidates", "test", LENGTHS)
  assert len(pool) == 1180 + 1276 + 1196
  queries = examples_lib.load_examples("lareqa.de", "test", LENGTHS, N_QUERIES)
  top, sims = _brute_force_top(env["model"], env["params"], queries, pool, 20)
  records = _records(tmp_path, "lareqa.de", 1)
  ids = [examples_lib.text(ex["id"]) for ex in pool]
  ap = []
  for rec, row, row_sims in zip(records, top, sims):
    np.testing.assert_allclose(rec["similarities"], row_sims, rtol=1e-4, atol=1e-5)
    assert rec["prediction"][:5] == [ids[j] for j in row[:5]] or np.isclose(
        row_sims[4], row_sims[5], atol=1e-6)
    gold = set(rec["target"])
    assert len(gold) == 3  # the answer sentence in en, de and zh
    hits, precisions = 0, []
    for rank, cid in enumerate(rec["prediction"][:20], 1):
      if cid in gold:
        hits += 1
        precisions.append(hits / rank)
    ap.append(sum(precisions) / min(len(gold), 20))
  assert metrics["lareqa.de"]["map@20"] == pytest.approx(100.0 * np.mean(ap), abs=1e-4)

  # Tatoeba: top-1 accuracy against the English side of the same language's pairs.
  records = _records(tmp_path, "tatoeba.ja", 1)
  correct = [r["prediction"][0] in ([r["target"]] if isinstance(r["target"], str)
                                    else r["target"]) for r in records]
  assert metrics["tatoeba.ja"]["accuracy"] == pytest.approx(100.0 * np.mean(correct))


def test_a_dual_encoder_embeds_tatoeba_at_its_top_and_refuses_generation(env, tmp_path):
  assert retrieve_lib.resolve_layer(None, "tatoeba", 2, dual_encoder=True) is None
  assert retrieve_lib.resolve_layer(None, "tatoeba", 2) == 1
  with pytest.raises(ValueError, match="only embeds"):
    evaluate(str(tmp_path), ["xnli.de"], model=env["model"], params=env["params"], step=1,
             partitioner=env["part"], write=False)
