"""Every registered task yields tokenized examples through seqio.get_dataset from small data."""
import numpy as np
import pytest
import seqio

from tests.tasks.conftest import MLM_TEXT, STUDY_LANGUAGES
from xfer_t5x.tasks import catalog, registry, study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registered(local_vocab, study_data):
  data_dir, data_dirs = study_data
  ccg = data_dir + "/ccgbank"
  names = study.register_tasks(local_vocab, data_dir, data_dirs=data_dirs, ccg_path=ccg,
                               languages=STUDY_LANGUAGES, mlm_languages=sorted(MLM_TEXT))
  return names


def _available_splits(task):
  out = []
  for split in task.splits:
    try:
      task.source.files(split)
    except FileNotFoundError:
      continue
    out.append(split)
  return out


def test_every_task_yields_tokenized_examples(registered, local_vocab):
  empty, checked = [], 0
  for name in registered:
    task = seqio.get_mixture_or_task(name)
    splits = _available_splits(task)
    assert splits, f"{name}: no split has data in the test data dir"
    got = 0
    for split in splits:
      ds = task.get_dataset({"inputs": 256, "targets": 64}, split=split, shuffle=False)
      for ex in ds.take(2):
        inputs, targets = ex["inputs"].numpy(), ex["targets"].numpy()
        assert inputs.dtype == np.int32 and inputs.ndim == 1 and len(inputs) > 1, name
        assert targets[-1] == 1 and len(targets) <= 64, name  # EOS appended, trimmed
        assert inputs.max() < local_vocab.vocab_size
        if registry.task_info(name).family == "span_corruption":  # token ids, no text form
          assert targets[0] == local_vocab.vocab_size - 1 and (inputs[:-1] ==
                                                               targets[0]).sum() == 1, name
          got += 1
          continue
        text = ex["inputs_pretokenized"].numpy().decode("utf-8")
        assert local_vocab.decode(inputs[:-1].tolist()).split()[:1] == text.split()[:1]
        got += 1
    checked += 1
    if not got:
      empty.append(name)
  assert not empty, f"tasks with no examples in any split: {empty}"
  assert checked == len(registered)


def test_registered_names_follow_the_contract(registered):
  names = set(registered)
  for task in catalog.INTERMEDIATE_TASKS:
    assert task in names
  for target in catalog.TARGETS:
    for lang in STUDY_LANGUAGES[target]:
      assert f"{target}.{lang}" in names
    assert f"{target}_zeroshot" in registry.registered_mixtures()
    for stage in catalog.TARGET_SPECS[target].train_stages:
      assert stage in names
  assert {"xcopa_train.siqa", "xcopa_train.copa"} <= names
  assert registry.mixture_info("intermediate_all")["tasks"] == [
      "anli", "mnli", "qqp", "squad_v2", "hellaswag", "ccg", "cosmosqa", "commonsenseqa",
      "sst2"]
  # The XNLI training task reads MNLI in XNLI's template; the mnli task keeps its own.
  assert registry.task_info("xnli_train").template == registry.task_info("xnli.de").template
  assert registry.task_info("mnli").template == "mnli"
  assert registry.task_info("xcopa_rank.et").mode == "rank"
  assert registry.task_info("lareqa.de").candidates_task == "lareqa_candidates"
  assert registry.task_info("tydiqa.ar").eval_split == "validation"
  assert registry.task_info("xnli.de").eval_split == "test"


def test_ccg_from_a_bound_ccgbank(registered):
  ds = seqio.get_mixture_or_task("ccg").get_dataset(None, split="train", shuffle=False)
  exs = list(ds)
  assert len(exs) == 3  # one sentence in each of sections 02, 12 and 21
  ex = exs[0]
  assert ex["inputs_pretokenized"].numpy().decode() == "ccg: Pierre likes apples"
  assert ex["targets_pretokenized"].numpy().decode() == "N (S[dcl]\\NP)/NP N"


def test_zeroshot_mixture_trains_on_english_only(registered):
  mix = seqio.get_mixture_or_task("xnli_zeroshot")
  ds = mix.get_dataset({"inputs": 128, "targets": 16}, split="train", shuffle=False)
  exs = list(ds.take(5))
  assert len(exs) == 5
  names = {t.name for t in mix.tasks}
  assert names == {"xnli_train", "xnli.en", "xnli.de"}
  # Only xnli_train has a train split: its English MNLI rows in XNLI's template.
  vocab = mix.output_features["inputs"].vocabulary
  for ex in exs:
    assert vocab.decode(ex["inputs"].numpy().tolist()).startswith("xnli premise:")


def test_retrieval_gold_ids_are_in_the_candidate_pool(registered):
  pools = {}
  for name in ("tatoeba.de", "lareqa.de", "mewslix.de"):
    info = registry.task_info(name)
    split = info.eval_split if info.eval_split in seqio.get_mixture_or_task(name).splits else (
        "test")
    pool_ds = seqio.get_mixture_or_task(info.candidates_task).get_dataset(
        None, split=split, shuffle=False)
    pools[name] = {ex["id"].numpy().decode() for ex in pool_ds}
    queries = list(seqio.get_mixture_or_task(name).get_dataset(None, split=split, shuffle=False))
    assert queries
    for ex in queries:
      gold = {g.decode() for g in ex["gold"].numpy()}
      assert gold and gold <= pools[name], name
  assert len(pools["tatoeba.de"]) == 1000
  # LAReQA's pool holds the sentences of every language present (en 1180, de 1276, zh 1196).
  assert len(pools["lareqa.de"]) == 1180 + 1276 + 1196


def test_metric_functions_match_the_evaluation_mode(registered):
  for name in registered:
    task, info = seqio.get_mixture_or_task(name), registry.task_info(name)
    predict, score = task.predict_metric_fns, task.score_metric_fns  # seqio validates them
    if info.mode == "rank":
      assert score and not predict, name
    elif info.mode in ("embed", "train"):  # train: training only (the mlm baseline)
      assert not predict and not score, name
    else:
      assert predict and not score, name
