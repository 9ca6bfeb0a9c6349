"""T5X's gin names in the run files: INITIAL_CHECKPOINT_PATH and USE_CACHED_TASKS reach `train`
as this library's INITIAL_CHECKPOINT does; CHECKPOINT_PATH and EVAL_OUTPUT_DIR reach `evaluate`
(their effect through the eval command: tests/evaluation/test_eval_cmd.py)."""
import gin
import pytest

from xfer_t5x.runtime import gin_utils


@gin.configurable
def _probe(value=None):
  return value


def _value(parameter):
  """What gin hands `parameter` when the configurable is called (macros evaluated)."""
  gin.bind_parameter("_probe.value", gin.query_parameter(parameter))
  return _probe()


@pytest.fixture(autouse=True)
def _clear():
  gin.clear_config()
  yield
  gin.clear_config()


@pytest.mark.parametrize("run_file", ["runs/finetune.gin", "runs/train.gin"])
def test_t5x_training_names(run_file):
  gin_utils.setup_gin(["models/mt5_tiny.gin", run_file],
                      ["INITIAL_CHECKPOINT_PATH = '/t5x/checkpoint_1000000'",
                       "USE_CACHED_TASKS = True"], finalize=False)
  assert _value("train.initial_checkpoint") == "/t5x/checkpoint_1000000"
  assert _value("train.use_cached") is True


def test_this_librarys_name_still_wins_alone():
  gin_utils.setup_gin(["models/mt5_tiny.gin", "runs/finetune.gin"],
                      ["INITIAL_CHECKPOINT = '/ours/checkpoint_7'"], finalize=False)
  assert _value("train.initial_checkpoint") == "/ours/checkpoint_7"
  assert _value("train.use_cached") is False
  assert _value("train.initial_state") == "train_state"


def test_t5x_eval_names():
  gin_utils.setup_gin(["models/mt5_tiny.gin", "runs/eval.gin"],
                      ["CHECKPOINT_PATH = '/run/checkpoint_15'", "EVAL_OUTPUT_DIR = '/out'",
                       "EVAL_TASKS = ['xnli.de']"], finalize=False)
  assert _value("evaluate.checkpoint_path") == "/run/checkpoint_15"
  assert _value("evaluate.output_dir") == "/out"
  assert _value("evaluate.model_dir") is None


def test_checkpoint_path_names_model_dir_and_step():
  from xfer_t5x.evaluation import evaluator  # pylint: disable=g-import-not-at-top
  split = evaluator._split_checkpoint_path  # pylint: disable=protected-access
  assert split("gs://b/run/checkpoint_20000/", None, None) == ("gs://b/run", 20000)
  assert split("/run/checkpoint_5", "/run", 5) == ("/run", 5)
  with pytest.raises(ValueError, match="must name a <model_dir>/checkpoint_<step> folder"):
    split("/run/state", None, None)
  with pytest.raises(ValueError, match="is step 5, but step=6"):
    split("/run/checkpoint_5", None, 6)
  with pytest.raises(ValueError, match="is not in model_dir"):
    split("/run/checkpoint_5", "/other", None)
