"""`xfer-t5x tasks`: list, show and preview, offline with the demo data and a local vocabulary."""
import gin
import pytest

from xfer_t5x import cli


@pytest.fixture(autouse=True)
def fresh_gin():
  """Each command runs as in a new process: no gin bindings left over from another test."""
  gin.clear_config()
  yield
  gin.clear_config()


@pytest.fixture
def demo_root(demo_dir, tmp_path):
  """A copy-free demo folder: links to the session's demo data (the CLI writes its vocab there)."""
  for name in ("mnli", "sst2", "xnli", "panx"):
    (tmp_path / name).symlink_to(demo_dir / name)
  return tmp_path


def test_preview_prints_inputs_targets_and_token_counts(demo_root, capsys):
  assert cli.main(["tasks", "--demo", str(demo_root), "--preview", "xnli.de", "-n", "2"]) == 0
  out = capsys.readouterr().out
  assert out.startswith("xnli.de [test]\n")
  assert out.count("--- example") == 2
  assert "inputs  (" in out and "tokens): xnli premise: " in out
  assert any(f"tokens): {label}" in out for label in ("entailment", "neutral", "contradiction"))
  assert (demo_root / "vocab.model").exists()


def test_preview_of_ner_and_a_split(demo_root, capsys):
  assert cli.main(["tasks", "--demo", str(demo_root), "--preview", "panx.zh", "-n", "1",
                   "--split", "validation"]) == 0
  out = capsys.readouterr().out
  assert "panx.zh [validation]" in out and "tokens): tag: " in out and "PER: " in out


def test_show_names_source_files_metrics_and_template(demo_root, capsys):
  assert cli.main(["tasks", "--demo", str(demo_root), "--show", "xnli.de"]) == 0
  out = capsys.readouterr().out
  assert "source: files: XNLI 1.0 TSV" in out
  assert "evaluation reads test" in out and "metrics: accuracy" in out
  assert "inputs:  xnli premise: {premise} hypothesis: {hypothesis}" in out
  assert f"{demo_root}/xnli" in out and "[1 file(s)]" in out
  assert cli.main(["tasks", "--demo", str(demo_root), "--show", "intermediate_all"]) == 0
  out = capsys.readouterr().out
  assert "mixture intermediate_all" in out and "anli  rate 524288" in out and "ccg" in out


def test_list_and_filter(demo_root, capsys):
  assert cli.main(["tasks", "--demo", str(demo_root), "--filter", "tatoeba"]) == 0
  out = capsys.readouterr().out
  assert "tatoeba.de" in out and "tatoeba_candidates.de" in out and "xnli.de" not in out
  assert "tatoeba_zeroshot" in out


def test_gin_binding_reaches_register_tasks(demo_root, capsys):
  args = ["tasks", "--demo", str(demo_root), "--gin.register_tasks.languages={'xnli': ['sw']}",
          "--filter", "xnli."]
  assert cli.main(args) == 0
  out = capsys.readouterr().out
  assert "xnli.sw" in out and "xnli.de" not in out


def test_preview_missing_data_is_a_clear_error(demo_root, capsys):
  assert cli.main(["tasks", "--demo", str(demo_root), "--preview", "xquad.de"]) == 1
  err = capsys.readouterr().err
  assert "no file under" in err and "xquad.de.json" in err
