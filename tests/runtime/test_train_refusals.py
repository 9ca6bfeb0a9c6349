"""`xfer-t5x train` refusing what it cannot do, through the command's entry point (`cli.main`, in
this process for speed): exit status 2, one message naming the cause, the file or binding and the
fix, no traceback, and nothing created or changed in the model dir. Also: a full disk mid-run is
one message and a restart after space is freed finishes the run; `--traceback` shows the
traceback.

The full-disk and read-only cases mount a small tmpfs (root only); elsewhere they skip saying so.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import gin
import pytest

from xfer_t5x import cli
from xfer_t5x import locking

LABELS = ("entailment", "neutral", "contradiction")

TASKS = '''
import os
from xfer_t5x.tasks import add_task
HERE = os.path.dirname(os.path.abspath(__file__))
add_task("rel_nli", {"train": os.path.join(HERE, "train.jsonl"),
                     "validation": os.path.join(HERE, "train.jsonl")},
         "xnli", ["accuracy"], eval_split="validation")
add_task("rel_bad_nli", {"train": os.path.join(HERE, "bad.jsonl"),
                         "validation": os.path.join(HERE, "train.jsonl")},
         "xnli", ["accuracy"], eval_split="validation")
'''


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
  from xfer_t5x.tasks import vocab  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("refusals")
  rows = [{"premise": f"The child {i} sees the river.", "hypothesis": f"The child {i} sees it.",
           "label": i % 3} for i in range(40)]
  (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  (root / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:10]) +
                                  "{not json\n" * 4)
  texts = [r["premise"] + " " + r["hypothesis"] for r in rows] + list(LABELS) * 20
  vocab.build_local_vocabulary(texts, str(root / "spm.model"), vocab_size=320)
  (root / "reliability_tasks.py").write_text(TASKS)
  return root


@pytest.fixture(autouse=True)
def _isolated(ws, monkeypatch):
  """gin cleared, the workspace as cwd (for --module) and SIGTERM's handler given back."""
  monkeypatch.chdir(ws)
  handler = signal.getsignal(signal.SIGTERM)
  gin.clear_config()
  yield
  gin.clear_config()
  signal.signal(signal.SIGTERM, handler)


def _train(ws, model_dir, *flags, task="rel_nli"):
  return cli.main([
      "train", "--module", "reliability_tasks", "--gin_file", "models/mt5_tiny.gin",
      "--gin_file", "runs/train.gin", f"--gin.MODEL_DIR={model_dir}",
      f"--gin.MIXTURE_OR_TASK_NAME={task}", "--gin.TRAIN_STEPS=4", "--gin.BATCH_SIZE=8",
      "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 4}",
      f"--gin.default_vocabulary.path={ws / 'spm.model'}", "--gin.train.checkpoint_period=2",
      "--gin.train.async_checkpointing=False", *flags])


def _snapshot(path):
  """Every file under `path` (or the file itself) with its bytes and mtime; of the lock file
  (which names its last holder) only that it is there."""
  path = pathlib.Path(path)
  if not path.exists():
    return None
  if path.is_file():
    return {str(path): (path.read_bytes(), path.stat().st_mtime_ns)}
  return {str(p): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
          if p.name != "train.lock" else "lock" for p in sorted(path.rglob("*"))}


@pytest.fixture(scope="module")
def trained(ws, tmp_path_factory):
  """A model dir trained 4 steps with batch 8 (checkpoints 2 and 4)."""
  handler = signal.getsignal(signal.SIGTERM)
  cwd = os.getcwd()
  os.chdir(ws)
  gin.clear_config()
  try:
    model_dir = tmp_path_factory.mktemp("trained") / "model"
    assert _train(ws, model_dir) == 0
  finally:
    gin.clear_config()
    os.chdir(cwd)
    signal.signal(signal.SIGTERM, handler)
  return model_dir


def _is_a_file(ws, tmp):
  path = tmp / "model"
  path.write_text("I am a file\n")
  return path, [], "is a file, not a folder"


def _under_a_file(ws, tmp):
  (tmp / "afile").write_text("x\n")
  return tmp / "afile" / "model", [], "is a file, not a folder"


def _bad_data(ws, tmp):
  return tmp / "model", ["TASK=rel_bad_nli"], "bad.jsonl: 4 of 14 rows"


def _unknown_parameter(ws, tmp):
  return tmp / "model", ["--gin.train.batch_sise=8"], "did you mean train.batch_size?"


def _unknown_configurable(ws, tmp):
  return tmp / "model", ["--gin.trian.batch_size=8"], "no configurable named 'trian' is " \
      "registered; did you mean train?"


def _changed_batch(ws, tmp, trained):
  model_dir = tmp / "model"
  shutil.copytree(trained, model_dir)
  return (model_dir, ["--gin.BATCH_SIZE=4", "--gin.TRAIN_STEPS=6"],
          "differing fields: global_batch_size saved=8 now=4")


def _in_use(ws, tmp, trained, holder=[]):  # pylint: disable=dangerous-default-value
  model_dir = tmp / "model"
  shutil.copytree(trained, model_dir)
  # The lock taken by another process: a child that holds it until its stdin closes.
  proc = subprocess.Popen(
      [sys.executable, "-c", "import sys; from xfer_t5x import locking; "
       f"locking.FileLock({str(model_dir / 'train.lock')!r}).acquire(); print('held', "
       "flush=True); sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
      text=True)
  assert proc.stdout.readline().strip() == "held"
  holder.append(proc)
  return (model_dir, ["--gin.TRAIN_STEPS=6"],
          f"is in use by another training run (pid {proc.pid} on ")


CASES = {
    "model dir is a file": _is_a_file,
    "model dir under a file": _under_a_file,
    "malformed data": _bad_data,
    "unknown parameter": _unknown_parameter,
    "unknown configurable": _unknown_configurable,
    "resume with another batch size": _changed_batch,
    "model dir in use": _in_use,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_with_a_message_and_nothing_written(case, ws, trained, tmp_path, capsys):
  make = CASES[case]
  args = (ws, tmp_path, trained) if make in (_changed_batch, _in_use) else (ws, tmp_path)
  model_dir, flags, message = make(*args)
  task = "rel_nli"
  if flags[:1] and flags[0].startswith("TASK="):
    task, flags = flags[0][len("TASK="):], flags[1:]
  before = _snapshot(model_dir)
  try:
    assert _train(ws, model_dir, *flags, task=task) == 2
  finally:
    for proc in _in_use.__defaults__[0]:
      proc.stdin.close()
      proc.wait(timeout=60)
    _in_use.__defaults__[0].clear()
  err = capsys.readouterr().err
  assert message in err, err[-3000:]
  assert "Traceback" not in err
  assert err.strip().splitlines()[-1].startswith("xfer-t5x train: error: "), err[-3000:]
  assert _snapshot(model_dir) == before  # nothing created or changed


def test_traceback_flag_shows_the_traceback(ws, tmp_path, capsys):
  assert _train(ws, tmp_path / "model", "--gin.train.batch_sise=8", "--traceback") == 2
  err = capsys.readouterr().err
  assert "Traceback" in err and "did you mean train.batch_size?" in err, err[-3000:]


@pytest.fixture
def tmpfs(tmp_path):
  """mount(size, readonly) -> a tmpfs folder; skips where mounting is not permitted."""
  mounted = []

  def mount(size="64k", readonly=False):
    path = tmp_path / f"fs{len(mounted)}"
    path.mkdir()
    opts = f"size={size}" + (",ro" if readonly else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
      pytest.skip(f"cannot mount a tmpfs here to make a full or read-only file system "
                  f"(needs root): {proc.stderr.strip()}")
    mounted.append(path)
    return path

  yield mount
  for path in mounted:
    subprocess.run(["umount", str(path)], check=False)


def test_read_only_model_dir_is_refused(ws, tmpfs, capsys):
  fs = tmpfs(readonly=True)
  assert _train(ws, fs / "model") == 2
  err = capsys.readouterr().err
  assert f"MODEL_DIR {fs / 'model'}: cannot write in {fs}" in err and "read-only" in err, err
  assert "Traceback" not in err


def test_full_disk_is_one_message_and_a_restart_finishes(ws, tmpfs, capsys):
  fs = tmpfs(size="64k")
  model_dir = fs / "model"
  assert _train(ws, model_dir) == 2
  err = capsys.readouterr().err
  assert "the disk is full" in err and str(model_dir) in err, err[-3000:]
  assert "Traceback" not in err
  assert not list(model_dir.glob("checkpoint_*[0-9]"))  # no complete checkpoint claimed
  subprocess.run(["mount", "-o", "remount,size=64m", str(fs)], check=True)
  gin.clear_config()
  assert _train(ws, model_dir) == 0
  assert (model_dir / "checkpoint_4").is_dir()
