"""The translated baseline: each intermediate task's machine-translated copies, one task per
language and a mixture over them, read from JSON lines with the task's own fields (a language
code per file or per row)."""
import json

import pytest
import seqio

from xfer_t5x.tasks import registry, study


def _jsonl(path, rows):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture()
def translated(local_vocab, tmp_path):
  root = tmp_path / "translated"
  # German: a file per language; French: one shared file whose rows carry "lang"
  _jsonl(root / "mnli" / "train.de.jsonl", [
      {"premise": "Ein Mann liest.", "hypothesis": "Niemand liest.", "label": 2},
      {"premise": "Die Katze schlaeft.", "hypothesis": "Ein Tier ruht.", "label": "entailment"},
      {"premise": "Ohne Etikett.", "hypothesis": "Nichts.", "label": -1}])
  _jsonl(root / "mnli" / "train.jsonl", [
      {"lang": "fr", "premise": "Un homme lit.", "hypothesis": "Personne ne lit.", "label": 2},
      {"lang": "es", "premise": "Un hombre lee.", "hypothesis": "Nadie lee.", "label": 2},
      {"lang": "fr", "premise": "Le chat dort.", "hypothesis": "Un animal dort.", "label": 0}])
  _jsonl(root / "squad_v2" / "sw" / "train.jsonl", [
      {"context": "Paka ni mnyama.", "question": "Paka ni nini?", "answers": ["mnyama"],
       "answer_starts": [8]}])
  study.register_tasks(local_vocab, str(tmp_path), languages={"xnli": ["en"]},
                       mlm_languages=["en"],
                       translated={"mnli": ["de", "fr"], "squad_v2": ["sw"]})
  yield tmp_path
  registry.unregister_all()


def _texts(name):
  task = seqio.get_mixture_or_task(name)
  ds = task.get_dataset({"inputs": 64, "targets": 8}, split="train", shuffle=False)
  return [(ex["inputs_pretokenized"].decode(), ex["targets_pretokenized"].decode())
          for ex in ds.as_numpy_iterator()]


def test_translated_tasks_read_each_language_with_the_tasks_template(translated):
  assert _texts("mnli_translated.de") == [
      ("mnli hypothesis: Niemand liest. premise: Ein Mann liest.", "contradiction"),
      ("mnli hypothesis: Ein Tier ruht. premise: Die Katze schlaeft.", "entailment")]
  assert _texts("mnli_translated.fr") == [  # only the French rows of the shared file
      ("mnli hypothesis: Personne ne lit. premise: Un homme lit.", "contradiction"),
      ("mnli hypothesis: Un animal dort. premise: Le chat dort.", "entailment")]
  assert _texts("squad_v2_translated.sw") == [
      ("question: Paka ni nini? context: Paka ni mnyama.", "mnyama")]
  info = registry.task_info("mnli_translated.fr")
  assert info.language == "fr" and info.role == "intermediate" and info.template == "mnli"
  assert info.metrics == registry.task_info("mnli").metrics


def test_translated_mixture_and_bad_input(translated, local_vocab):
  mix = seqio.get_mixture_or_task("mnli_translated")
  assert sorted(t.name for t in mix.tasks) == ["mnli_translated.de", "mnli_translated.fr"]
  assert registry.mixture_info("mnli_translated")["note"].startswith("mnli translated into")
  with pytest.raises(ValueError, match="not intermediate tasks"):
    study.register_tasks(local_vocab, str(translated), translated={"xnli": ["de"]})
  assert seqio.get_mixture_or_task("mnli_translated.de")  # refused before anything changed


def test_a_missing_translation_names_what_was_looked_for(translated):
  with pytest.raises(FileNotFoundError, match=r"validation\.de\.jsonl"):
    seqio.get_mixture_or_task("mnli_translated.de").source.files("validation")
