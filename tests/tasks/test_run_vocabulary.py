"""One vocabulary per run: a task added without one follows the run's gin binding even when its
module was imported before the binding was applied; a task with its own vocabulary is refused;
classification files may give label words or their indices."""
import json
import sys

import gin
import pytest
import seqio

from xfer_t5x.runtime import gin_utils, vocab_setup
from xfer_t5x.tasks import registry, templates, vocab
from xfer_t5x.tasks.sources import common

NLI = templates.NLI_LABELS


@pytest.fixture
def clean():
  """Leaves gin, the run's vocabulary and the tasks these tests add as they were."""
  added = []
  yield added
  gin.clear_config()
  vocab.set_run_vocabulary(None)
  for name in added:
    seqio.TaskRegistry.remove(name)
  sys.modules.pop("import_time_tasks", None)


def _nli_file(path, labels):
  rows = [{"premise": f"A man reads book {i}.", "hypothesis": f"He reads {i}.", "label": label}
          for i, label in enumerate(labels)]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  return str(path)


def test_task_added_at_import_uses_the_vocabulary_bound_later(clean, local_vocab, tmp_path,
                                                              monkeypatch):
  data = _nli_file(tmp_path / "nli.jsonl", [0, 1, 2, 1])
  (tmp_path / "import_time_tasks.py").write_text(
      "from xfer_t5x.tasks import add_task\n"
      f"add_task('import_time_nli', {{'train': {data!r}}}, 'xnli')\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  clean.append("import_time_nli")
  import import_time_tasks  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  # The binding comes after the import, as `--gin.default_vocabulary.path` does on the CLI.
  gin_utils.setup_gin([], [f"default_vocabulary.path = {local_vocab.sentencepiece_model_file!r}"],
                      finalize=False)
  run = vocab_setup.setup_vocabulary_and_tasks(register=False)
  task = seqio.get_mixture_or_task("import_time_nli")
  used = task.output_features["targets"].vocabulary
  assert vocab.resolve(used).sentencepiece_model_file == local_vocab.sentencepiece_model_file
  registry.check_vocabulary(["import_time_nli"], run)  # no error
  ex = next(iter(task.get_dataset({"inputs": 64, "targets": 8}, split="train", shuffle=False)))
  assert ex["inputs"].numpy()[:-1].tolist() == local_vocab.encode(
      ex["inputs_pretokenized"].numpy().decode())
  assert ex["targets_pretokenized"].numpy().decode() == "entailment"  # label 0


def test_task_with_its_own_vocabulary_is_refused(clean, local_vocab, tmp_path):
  data = _nli_file(tmp_path / "nli.jsonl", [0])
  own = seqio.SentencePieceVocabulary(local_vocab.sentencepiece_model_file, extra_ids=0)
  clean.extend(["own_vocab_nli", "run_vocab_nli"])
  registry.add_task("own_vocab_nli", {"train": data}, "xnli", vocabulary=own)
  registry.add_task("run_vocab_nli", {"train": data}, "xnli")
  vocab.set_run_vocabulary(local_vocab)
  registry.check_vocabulary(["run_vocab_nli"], local_vocab)
  with pytest.raises(registry.VocabularyMismatchError) as e:
    registry.check_vocabulary(["run_vocab_nli", "own_vocab_nli"], local_vocab)
  text = str(e.value)
  assert "task 'own_vocab_nli'" in text and "(0 extra ids" in text and "(100 extra ids" in text
  assert "--gin.default_vocabulary.extra_ids=0" in text


@pytest.mark.parametrize("value,expected", [
    ("neutral", ("neutral", "")), (2, ("contradiction", "")), ("1", ("neutral", "")),
    (3, (None, "label 3 is outside 0..2 (entailment, neutral, contradiction)")),
    ("maybe", (None, "label 'maybe' is not one of entailment, neutral, contradiction or 0..2")),
    (True, (None, "label True is not one of entailment, neutral, contradiction or 0..2")),
])
def test_label_word_takes_words_and_indices(value, expected):
  assert common.label_word(value, NLI) == expected


def test_label_word_without_a_label_list():
  assert common.label_word("yes", ()) == ("yes", "")
  word, why = common.label_word(1, ())
  assert word is None and "no label list" in why


def test_integer_labels_are_read_and_minus_one_is_unlabeled(clean, local_vocab, tmp_path):
  from xfer_t5x.tasks import data_report  # pylint: disable=g-import-not-at-top
  data = _nli_file(tmp_path / "glue_export.jsonl", [2, 0, -1, "neutral", 1, 0])
  clean.append("int_label_nli")
  data_report.reset_data_report()
  task = registry.add_task("int_label_nli", {"train": data}, "xnli", vocabulary=local_vocab)
  targets = [ex["targets_pretokenized"].decode() for ex in
             task.get_dataset(None, split="train", shuffle=False).as_numpy_iterator()]
  assert targets == ["contradiction", "entailment", "neutral", "neutral", "entailment"]
  (report,) = [r for r in data_report.data_report("int_label_nli")]
  assert (report["kept"], report["unlabeled"], report["malformed"]) == (5, 1, 0)


def test_tasks_show_states_the_label_format_and_vocabulary(clean, local_vocab, tmp_path, capsys):
  from xfer_t5x.tasks import cli  # pylint: disable=g-import-not-at-top
  data = _nli_file(tmp_path / "nli.jsonl", [0])
  clean.append("shown_nli")
  registry.add_task("shown_nli", {"train": data}, "xnli")
  assert cli._show("shown_nli", sys.stdout) == 0  # pylint: disable=protected-access
  out = capsys.readouterr().out
  assert "labels: entailment, neutral, contradiction (a file may give the word or its index 0..2" \
      in out
  assert "vocabulary: the run's" in out


def test_model_vocab_size_reads_only_local_files(local_vocab):
  assert vocab.model_vocab_size(local_vocab, remote_default=-1) == local_vocab.vocab_size
  # mT5's own file is never read offline: plan sizes the model from the known size.
  assert vocab.model_vocab_size(vocab.default_vocabulary(), remote_default=250112) == 250112
  assert "size not read" in vocab.describe(vocab.default_vocabulary())
