"""Gin on the command line: --gin.NAME=VALUE parsing, --gin_file lookup, config files written."""
import io
import contextlib
import pathlib

import gin
import pytest

from xfer_t5x.runtime import gin_utils
from xfer_t5x.runtime import print_config_cmd


@gin.configurable
def _gin_utils_probe(x=None, y="default-y"):
  return x, y


@gin.configurable
def _gin_utils_factory():
  return "made-by-factory"


@pytest.fixture(autouse=True)
def _clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def _bound_value(flag_value):
  """What `_gin_utils_probe.x` becomes after `--gin._gin_utils_probe.x=<flag_value>`."""
  _, bindings = gin_utils.extract_gin_bindings([f"--gin._gin_utils_probe.x={flag_value}"])
  gin.parse_config(["PROBE_MACRO = 7"] + bindings)
  return _gin_utils_probe()[0]


@pytest.mark.parametrize("flag_value, expected", [
    # Not gin syntax -> a plain string, no quotes needed.
    ("xnli_train", "xnli_train"),
    ("/tmp/x", "/tmp/x"),
    ("gs://bucket/mt5_base/checkpoint_1000000", "gs://bucket/mt5_base/checkpoint_1000000"),
    ("xnli.en", "xnli.en"),
    ("mnli,xnli", "mnli,xnli"),
    ("two words", "two words"),
    ("3abc", "3abc"),
    ("[a, b]", "[a, b]"),
    ("'unterminated", "'unterminated"),
    ("", ""),
    ("true", "true"),
    # Gin syntax keeps its meaning.
    ("True", True),
    ("False", False),
    ("None", None),
    ("1", 1),
    ("-3", -3),
    ("1e-3", 1e-3),
    ("0.5", 0.5),
    ("[1, 2]", [1, 2]),
    ("(4, 2)", (4, 2)),
    ("(4,)", (4,)),
    ("{'inputs': 16, 'targets': 8}", {"inputs": 16, "targets": 8}),
    ("['a', None, 2]", ["a", None, 2]),
    ('"literal"', "literal"),
    ("'literal'", "literal"),
    ("'\"quoted\"'", '"quoted"'),
    ("'True'", "True"),
    ("%PROBE_MACRO", 7),
    ("[%PROBE_MACRO, 1]", [7, 1]),
    ("@_gin_utils_factory()", "made-by-factory"),
])
def test_gin_flag_values(flag_value, expected):
  value = _bound_value(flag_value)
  assert value == expected
  assert type(value) is type(expected)


def test_gin_flag_reference_without_call_is_the_function():
  assert _bound_value("@_gin_utils_factory")() == "made-by-factory"


def test_unknown_reference_is_an_error_not_a_string():
  # '@nope' is gin syntax: it must stay a reference (and fail as one), not become a string.
  _, bindings = gin_utils.extract_gin_bindings(["--gin._gin_utils_probe.x=@nope_not_registered"])
  assert bindings == ["_gin_utils_probe.x = @nope_not_registered"]
  with pytest.raises(ValueError, match="nope_not_registered"):
    gin.parse_config(bindings)


def test_extract_both_spellings_and_keeps_other_args():
  rest, bindings = gin_utils.extract_gin_bindings([
      "--gin_file", "a.gin", "--gin.MODEL_DIR=/tmp/x", "--gin.BATCH_SIZE", "8", "--verbose",
      "--gin.A=b=c", "--", "--gin.NOT_ME=1"])
  assert rest == ["--gin_file", "a.gin", "--verbose", "--", "--gin.NOT_ME=1"]
  assert bindings == ["MODEL_DIR = '/tmp/x'", "BATCH_SIZE = 8", "A = 'b=c'"]


def test_extract_errors():
  with pytest.raises(ValueError, match="has no value"):
    gin_utils.extract_gin_bindings(["--gin.MODEL_DIR"])
  with pytest.raises(ValueError, match="empty name"):
    gin_utils.extract_gin_bindings(["--gin.=3"])


def test_parse_gin_args_collects_everything():
  args = gin_utils.parse_gin_args([
      "--gin_file", "models/mt5_tiny.gin", "--gin.X=1", "--gin_file=runs/x.gin",
      "--gin_search_paths", "a,b", "--gin_search_paths=c", "--gin.Y", "abc"])
  assert args.gin_file == ["models/mt5_tiny.gin", "runs/x.gin"]
  assert args.gin_search_paths == ["a", "b", "c"]
  assert args.gin_bindings == ["X = 1", "Y = 'abc'"]


def test_gin_dir_holds_the_model_files():
  assert (gin_utils.gin_dir() / "models" / "mt5_tiny.gin").is_file()
  assert not (gin_utils.gin_dir() / "__init__.py").exists()


def test_resolve_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert gin_utils.resolve_gin_file("models/mt5_tiny.gin") == str(
      gin_utils.gin_dir() / "models" / "mt5_tiny.gin")
  # The current directory comes before the packaged files ...
  (tmp_path / "models").mkdir()
  (tmp_path / "models" / "mt5_tiny.gin").write_text("# mine\n")
  assert gin_utils.resolve_gin_file("models/mt5_tiny.gin") == str(
      pathlib.Path.cwd() / "models" / "mt5_tiny.gin")
  # ... and --gin_search_paths before the current directory.
  other = tmp_path / "other"
  (other / "models").mkdir(parents=True)
  (other / "models" / "mt5_tiny.gin").write_text("# other\n")
  assert gin_utils.resolve_gin_file("models/mt5_tiny.gin", [str(other)]) == str(
      other / "models" / "mt5_tiny.gin")


def test_missing_gin_file_names_where_it_looked(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(FileNotFoundError, match="nope.gin.*looked in"):
    gin_utils.resolve_gin_file("models/nope.gin")
  with pytest.raises(FileNotFoundError, match="no such file"):
    gin_utils.resolve_gin_file(str(tmp_path / "absent.gin"))


def test_setup_gin_files_then_bindings_and_includes(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  inc = tmp_path / "inc"
  inc.mkdir()
  (inc / "base.gin").write_text("_gin_utils_probe.y = 'from-include'\n")
  (tmp_path / "top.gin").write_text("include 'base.gin'\n_gin_utils_probe.x = 1\n")
  gin_utils.setup_gin(
      ["models/mt5_tiny.gin", "top.gin"], ["_gin_utils_probe.x = 2"], [str(inc)], finalize=True)
  assert gin.config_is_locked()
  assert _gin_utils_probe() == (2, "from-include")  # the flag overrides the file
  assert gin.query_parameter("T5Config.emb_dim") == 64


def test_write_operative_config_keeps_a_different_old_one(tmp_path):
  gin.parse_config(["_gin_utils_probe.x = 5"])
  _gin_utils_probe()
  path = gin_utils.write_operative_config(tmp_path)
  assert pathlib.Path(path) == tmp_path / "config.gin"
  text = pathlib.Path(path).read_text()
  assert "_gin_utils_probe.x = 5" in text
  assert "_gin_utils_probe.y = 'default-y'" in text  # operative: defaults of called functions
  # Same content again: nothing kept aside.
  gin_utils.write_operative_config(tmp_path)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["config.gin"]
  # A different config: the old one survives as config.gin.<timestamp>.
  gin.clear_config()
  gin.parse_config(["_gin_utils_probe.x = 6"])
  _gin_utils_probe()
  gin_utils.write_operative_config(tmp_path)
  names = sorted(p.name for p in tmp_path.iterdir())
  assert len(names) == 2 and names[0] == "config.gin" and names[1].startswith("config.gin.")
  assert "_gin_utils_probe.x = 6" in (tmp_path / "config.gin").read_text()
  assert "_gin_utils_probe.x = 5" in (tmp_path / names[1]).read_text()
  # What was written parses back as gin.
  gin.clear_config()
  gin.parse_config_file(str(tmp_path / "config.gin"))
  assert _gin_utils_probe() == (6, "default-y")


def test_write_model_info(tmp_path):
  lines = ["params/encoder/token_embedder/embedding (256, 64) float32 ('vocab', 'embed') "
           "PartitionSpec('model', None)", "params/decoder/logits_dense/kernel (64, 256)\n"]
  path = gin_utils.write_model_info(tmp_path, lines)
  assert pathlib.Path(path).read_text().splitlines() == [lines[0], lines[1].rstrip("\n")]


def test_print_config_shows_bindings_and_defaults(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    rc = print_config_cmd.main(["--gin_file", "models/mt5_tiny.gin",
                                "--gin.T5Config.dropout_rate=0.0", "--gin.MODEL_DIR=/tmp/x"])
  assert rc == 0
  text = out.getvalue()
  assert "MODEL_DIR = '/tmp/x'" in text
  assert "T5Config.dropout_rate = 0.0" in text
  assert "T5Config.emb_dim = 64" in text
  assert "T5Config.scan_layers = False" in text  # an unbound default
  # Printed config is valid gin and means the same thing.
  gin.clear_config()
  gin.parse_config(text)
  assert gin.query_parameter("T5Config.dropout_rate") == 0.0
  assert gin.query_parameter("T5Config.scan_layers") is False
  assert gin.query_parameter("%MODEL_DIR") == "/tmp/x"


def test_print_config_bad_file_is_a_clear_error(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  assert print_config_cmd.main(["--gin_file", "models/nope.gin"]) == 1
  assert "models/nope.gin" in capsys.readouterr().err


def test_cli_print_config_takes_gin_flags(tmp_path, monkeypatch, capsys):
  from xfer_t5x import cli  # pylint: disable=g-import-not-at-top
  monkeypatch.chdir(tmp_path)
  assert cli.main(["print-config", "--gin_file", "models/mt5_tiny.gin",
                   "--gin.T5Config.dtype=float32", "--gin.MIXTURE_OR_TASK_NAME", "xnli_train"]) == 0
  out = capsys.readouterr().out
  assert "T5Config.dtype = 'float32'" in out
  assert "MIXTURE_OR_TASK_NAME = 'xnli_train'" in out


def test_a_misspelled_macro_is_refused_with_the_near_names(tmp_path):
  gin.clear_config()
  run = tmp_path / "run.gin"
  run.write_text("import xfer_t5x.runtime.trainer\nLEARNING_RATE = 1.0\nTRAIN_STEPS = 5\n"
                 "train.train_steps = %TRAIN_STEPS\n")
  files = [str(run)]
  with pytest.raises(gin_utils.UnknownMacroError,
                     match=r"LEARNING_RATEE: .*did you mean LEARNING_RATE\?"):
    gin_utils.setup_gin(files, ["LEARNING_RATEE = 0.5"], finalize=False, check_macros=True)
  gin.clear_config()
  # Defined macros, parameters, and a new macro that another binding uses all pass.
  gin_utils.setup_gin(files, ["LEARNING_RATE = 0.5", "train.batch_size = 4", "STEPS2 = 7",
                              "train.train_steps = %STEPS2"], finalize=False, check_macros=True)
  assert gin.query_parameter("train.batch_size") == 4
  assert gin.query_parameter("LEARNING_RATE/macro.value") == 0.5
  gin.clear_config()
  # Without the check (the grid's and the phases' own bindings) gin's behaviour is unchanged.
  gin_utils.setup_gin(files, ["LEARNING_RATEE = 0.5"], finalize=False)
  gin.clear_config()



def _shipped(folder):
  return sorted(str(p.relative_to(gin_utils.gin_dir())) for p in (gin_utils.gin_dir() / folder)
                .glob("*.gin"))


@pytest.mark.parametrize("run_file", _shipped("runs") + _shipped("experiments"))
def test_print_config_on_every_run_and_experiment_file(run_file, tmp_path, monkeypatch):
  """Every shipped run and experiment file prints (macros, `@` references and scopes included):
  the bindings alone parse back to the same config, and with the defaults they parse too."""
  monkeypatch.chdir(tmp_path)
  argv = ["--gin_file", run_file]
  if run_file.startswith("runs/"):
    argv = ["--gin_file", "models/mt5_tiny.gin"] + argv + ["--gin.MODEL_DIR=/tmp/x"]
  texts = {}
  for flags in ([], ["--no_defaults"]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      assert print_config_cmd.main(argv + flags) == 0
    texts[bool(flags)] = out.getvalue()
  bound = gin.config_str()
  gin.clear_config()
  gin.parse_config(texts[True])
  assert gin.config_str() == bound
  gin.clear_config()
  gin.parse_config(texts[False])
  assert len(texts[False]) > len(texts[True])  # the unbound defaults were added
  gin.clear_config()
