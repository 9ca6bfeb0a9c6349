"""Registration: idempotent with the same vocabulary, re-registered with another, lazy, and the
one-call add_task."""
import json

import pytest
import seqio

from xfer_t5x.tasks import registry, study, templates, vocab


def test_same_vocabulary_is_a_no_op(local_vocab, demo_dir):
  names = study.register_tasks(local_vocab, str(demo_dir))
  task = seqio.get_mixture_or_task("xnli.de")
  again = study.register_tasks(local_vocab, str(demo_dir))
  assert again == names
  assert seqio.get_mixture_or_task("xnli.de") is task  # not rebuilt


def test_another_vocabulary_removes_and_adds_again(local_vocab, demo_dir, tmp_path):
  study.register_tasks(local_vocab, str(demo_dir), languages={"xnli": ["en", "de", "sw"]})
  assert "xnli.sw" in seqio.TaskRegistry.names()
  other = vocab.build_local_vocabulary(["a small other vocabulary"] * 20,
                                       str(tmp_path / "other.model"), vocab_size=300)
  names = study.register_tasks(other, str(demo_dir), languages={"xnli": ["en", "de"]})
  assert "xnli.sw" not in seqio.TaskRegistry.names()   # removed with the old registration
  assert "xnli.sw" not in registry.registered_tasks()
  task = seqio.get_mixture_or_task("xnli.de")
  assert task.output_features["targets"].vocabulary is other
  assert "xnli.de" in names and "xnli_zeroshot" in seqio.MixtureRegistry.names()
  mixture_tasks = {t.name for t in seqio.get_mixture_or_task("xnli_zeroshot").tasks}
  assert mixture_tasks == {"xnli_train", "xnli.en", "xnli.de"}
  ex = next(iter(task.get_dataset({"inputs": 64, "targets": 64}, split="test", shuffle=False)))
  assert other.decode(ex["targets"].numpy()[:-1].tolist()) == ex[
      "targets_pretokenized"].numpy().decode()


def test_default_vocabulary_is_never_resolved():
  v = vocab.default_vocabulary()
  assert v.sentencepiece_model_file == vocab.MT5_VOCAB_PATH and v.extra_ids == 100
  study.register_tasks(v, "/nonexistent")
  assert v._model is None  # pylint: disable=protected-access  (nothing opened gs://)
  assert registry.task_info("xnli.de").source.startswith("files")


def test_languages_must_belong_to_the_target(local_vocab):
  with pytest.raises(ValueError, match="xnli has no language"):
    study.register_tasks(local_vocab, "/x", languages={"xnli": ["qu"]})


def test_mixture_rates_are_capped_and_configurable(local_vocab):
  study.register_tasks(local_vocab, "/x", mixture_cap=100000, mixture_sizes={"sst2": 50})
  rates = registry.mixture_info("intermediate_all")["rates"]
  assert rates["anli"] == 100000 and rates["mnli"] == 100000
  assert rates["commonsenseqa"] == 9741 and rates["sst2"] == 50
  mixture = seqio.get_mixture_or_task("intermediate_all")
  assert mixture.get_rate(seqio.get_mixture_or_task("sst2")) == 50


def test_add_task_in_one_call(local_vocab, tmp_path, monkeypatch):
  path = tmp_path / "nli_de.jsonl"
  rows = [{"premise": "Es regnet.", "hypothesis": "Es ist nass.", "label": "entailment"},
          {"premise": "Es regnet.", "hypothesis": "Es ist trocken.", "label": "contradiction"}]
  path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
  monkeypatch.chdir(tmp_path)  # a relative path is relative to where add_task is called
  task = registry.add_task("mnli_translated.de", {"train": "nli_de.jsonl"}, "xnli", ["accuracy"],
                           vocabulary=local_vocab, language="de")
  monkeypatch.chdir("/")
  exs = list(task.get_dataset({"inputs": 64, "targets": 8}, split="train", shuffle=False))
  assert [e["inputs_pretokenized"].numpy().decode() for e in exs] == [
      "xnli premise: Es regnet. hypothesis: Es ist nass.",
      "xnli premise: Es regnet. hypothesis: Es ist trocken."]
  info = registry.task_info("mnli_translated.de")
  assert info.metrics == ("accuracy",) and info.language == "de" and info.family == (
      "classification")
  assert task.postprocess_fn(b" entailment ", is_target=False) == "entailment"


def test_add_task_with_a_new_template(local_vocab, tmp_path):
  path = tmp_path / "pairs.jsonl"
  path.write_text(json.dumps({"claim": "Sky is blue", "label": "true"}) + "\n" +
                  json.dumps({"claim": "", "label": "false"}) + "\n", encoding="utf-8")
  tmpl = templates.Template("claims", "classification", "claim: {claim}", "{label}")
  task = registry.add_task("claims", {"validation": str(path)}, tmpl, vocabulary=local_vocab)
  assert templates.TEMPLATES["claims"] is tmpl
  with pytest.raises(Exception, match="1 of 2 rows"):  # the empty claim is malformed: 50%
    list(task.get_dataset(None, split="validation", shuffle=False))
  with pytest.raises(ValueError, match="unknown template"):
    registry.add_task("x", {"train": str(path)}, "no_such_template")
  with pytest.raises(ValueError, match="rank classification needs a multiple-choice"):
    registry.add_task("x", {"train": str(path)}, "xnli", mode="rank")


def test_sequence_lengths_default_and_override(local_vocab):
  study.register_tasks(local_vocab, "/x")
  assert registry.task_info("xnli.de").sequence_length == {"inputs": 1024, "targets": 128}
  assert registry.task_info("xquad.de").sequence_length == {"inputs": 1024, "targets": 512}
  assert registry.task_info("panx.de").sequence_length == {"inputs": 1024, "targets": 512}
  study.register_tasks(local_vocab, "/x", sequence_lengths={"qa": {"inputs": 512}})
  assert registry.task_info("xquad.de").sequence_length == {"inputs": 512, "targets": 512}
  assert registry.task_info("xnli.de").sequence_length == {"inputs": 1024, "targets": 128}
  with pytest.raises(ValueError, match="unknown families"):
    study.register_tasks(local_vocab, "/x", sequence_lengths={"nli": {"inputs": 8}})
