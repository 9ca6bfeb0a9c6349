"""User errors through the real CLI: exit status 2, one message naming the cause and the fix, no
traceback, and nothing created in the model dir."""
import os
import subprocess
import sys

import pytest

TRAIN = ["train", "--gin_file", "models/mt5_tiny.gin", "--gin_file", "runs/train.gin",
         "--gin.TRAIN_STEPS=10"]

CASES = {
    "misspelled macro": (["--gin.MIXTURE_OR_TASK_NAME=mnli", "--gin.LEARNING_RATEE=0.5"],
                         "did you mean LEARNING_RATE?"),
    "unknown task": (["--gin.MIXTURE_OR_TASK_NAME=mnlii"],
                     "no task or mixture 'mnlii' is registered; did you mean mnli"),
    "unknown split": (["--gin.MIXTURE_OR_TASK_NAME=mnli", "--gin.train.split='trian'"],
                      "'mnli' has no split 'trian'; its splits are"),
    "train steps not a number": (["--gin.MIXTURE_OR_TASK_NAME=mnli", "--gin.TRAIN_STEPS=abc"],
                                 "train.train_steps (the run files' TRAIN_STEPS, "
                                 "--gin.TRAIN_STEPS=...) is 'abc'; it must be an integer >= 1"),
    "feature lengths not a dict": (["--gin.MIXTURE_OR_TASK_NAME=mnli",
                                    "--gin.TASK_FEATURE_LENGTHS=512"],
                                   "TASK_FEATURE_LENGTHS) is 512; give a dict with 'inputs'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_error_is_a_message_and_nothing_is_written(case, tmp_path):
  flags, message = CASES[case]
  model_dir = tmp_path / "model"
  proc = subprocess.run(
      [sys.executable, "-m", "xfer_t5x", *TRAIN, f"--gin.MODEL_DIR={model_dir}", *flags],
      capture_output=True, text=True, timeout=300, cwd=tmp_path,
      env=dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert message in proc.stderr, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  assert not model_dir.exists()


def _bad_vocabulary(tmp_path):
  path = tmp_path / "not_a_model.model"
  path.write_text("this is not a SentencePiece model\n")
  return path


VOCAB_CASES = {
    "missing vocabulary": (lambda tmp: tmp / "nowhere.model", "does not exist"),
    "unreadable vocabulary": (_bad_vocabulary, "is not a SentencePiece model"),
}


@pytest.mark.parametrize("case", sorted(VOCAB_CASES))
def test_vocabulary_file_errors_are_messages(case, tmp_path):
  make, message = VOCAB_CASES[case]
  path = make(tmp_path)
  model_dir = tmp_path / "model"
  proc = subprocess.run(
      [sys.executable, "-m", "xfer_t5x", *TRAIN, f"--gin.MODEL_DIR={model_dir}",
       "--gin.MIXTURE_OR_TASK_NAME=mnli", f"--gin.default_vocabulary.path={path}"],
      capture_output=True, text=True, timeout=300, cwd=tmp_path,
      env=dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert message in proc.stderr and str(path) in proc.stderr and "default_vocabulary.path" in \
      proc.stderr, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  assert not model_dir.exists()
