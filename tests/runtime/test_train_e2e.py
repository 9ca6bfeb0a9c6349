"""Tier 4: the real `xfer-t5x train` CLI on a tiny model and the demo data: checkpoints,
resume after SIGKILL (bitwise), SIGTERM (checkpoint and exit 0), the model-dir files, and the
refusal of a model dir that holds another model's checkpoint."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

pytestmark = pytest.mark.slow

STEPS = 40
PERIOD = 10


def _cmd(ws, model_dir, model="mt5_tiny", steps=STEPS, extra=()):
  return [sys.executable, "-m", "xfer_t5x", "train",
          "--gin_file", f"models/{model}.gin", "--gin_file", "runs/finetune.gin",
          f"--gin.MODEL_DIR={model_dir}", "--gin.MIXTURE_OR_TASK_NAME=mnli",
          f"--gin.TRAIN_STEPS={steps}", "--gin.INITIAL_CHECKPOINT=None", "--gin.BATCH_SIZE=8",
          "--gin.TASK_FEATURE_LENGTHS={'inputs': 48, 'targets': 8}",
          f"--gin.default_vocabulary.path={ws['vocab']}",
          f"--gin.register_tasks.data_dir={ws['data_dir']}",
          f"--gin.train.checkpoint_period={PERIOD}", "--gin.train.log_every=10",
          "--gin.train.keep_checkpoints=10", *extra]


def _env():
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("XLA_FLAGS", None)
  return env


def _run(cmd, cwd):
  proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=cwd, timeout=600)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


def _params(model_dir, step):
  """The parameters saved at `step`, read straight from the Orbax checkpoint."""
  import jax  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  path = str(pathlib.Path(model_dir) / f"checkpoint_{step}" / "state")
  checkpointer = ocp.PyTreeCheckpointer()
  # As host numpy arrays: a checkpoint written by several processes (other devices) reads too.
  meta = checkpointer.metadata(path)
  meta = getattr(meta, "item_metadata", meta)
  meta = getattr(meta, "tree", meta)
  tree = checkpointer.restore(path, restore_args=jax.tree_util.tree_map(
      lambda _: ocp.RestoreArgs(restore_type=np.ndarray), meta))
  params = tree["params"] if isinstance(tree, dict) else tree[1]
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  return {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(params).items()}


def _wait_for(path: pathlib.Path, proc, timeout=300):
  t = time.time()
  while not path.exists():
    assert proc.poll() is None, "the run ended before the checkpoint appeared"
    assert time.time() - t < timeout, f"{path} never appeared"
    time.sleep(0.05)


@pytest.fixture(scope="module")
def uninterrupted(demo_workspace, tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("uninterrupted") / "model"
  proc = _run(_cmd(demo_workspace, model_dir), cwd=tmp_path_factory.mktemp("cwd"))
  return model_dir, proc


def test_model_dir_files(uninterrupted):
  model_dir, proc = uninterrupted
  assert "step 40/40" in proc.stdout
  for name in ("config.gin", "model-info.txt", f"checkpoint_{STEPS}", "train"):
    assert (model_dir / name).exists(), name
  import json  # pylint: disable=g-import-not-at-top
  report = json.loads((model_dir / "data_report.json").read_text())
  assert len(report["data_version"]) == 64
  (mnli,) = [f for f in report["files"] if f["task"] == "mnli" and f["split"] == "train"]
  assert mnli["kept"] > 0 and mnli["malformed"] == 0 and mnli["path"].endswith(".tsv")
  info = (model_dir / "model-info.txt").read_text()
  assert "state/params/encoder/layers_0/attention/query/kernel  (64, 64)  float32" in info
  assert "('embed', 'joined_kv')" in info
  config = (model_dir / "config.gin").read_text()
  assert "TRAIN_STEPS = 40" in config and "train.train_steps = %TRAIN_STEPS" in config
  assert list((model_dir / "train").glob("events.out.tfevents.*"))


def test_resume_after_sigkill_is_bitwise(demo_workspace, uninterrupted, tmp_path):
  ref_dir, _ = uninterrupted
  model_dir = tmp_path / "model"
  proc = subprocess.Popen(_cmd(demo_workspace, model_dir), env=_env(), cwd=tmp_path,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  _wait_for(model_dir / f"checkpoint_{PERIOD}", proc)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (model_dir / f"checkpoint_{STEPS}").exists(), "killed too late to test a resume"
  proc = _run(_cmd(demo_workspace, model_dir), cwd=tmp_path)
  assert "resumed from" in proc.stdout
  # The real tasks' pipelines serialise: the input continues from its saved iterator.
  assert "input: restored this host's iterator" in proc.stdout, proc.stdout[-3000:]
  assert "nothing replayed" in proc.stdout
  got, want = _params(model_dir, STEPS), _params(ref_dir, STEPS)
  assert got.keys() == want.keys()
  for k in want:
    assert np.array_equal(got[k], want[k]), k


def test_sigterm_saves_and_exits_zero(demo_workspace, uninterrupted, tmp_path):
  ref_dir, _ = uninterrupted
  model_dir = tmp_path / "model"
  proc = subprocess.Popen(_cmd(demo_workspace, model_dir, steps=2000), env=_env(), cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  _wait_for(model_dir / f"checkpoint_{PERIOD}", proc)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out[-3000:]
  assert "preemption requested" in out
  steps = sorted(int(p.name.split("_")[1]) for p in model_dir.glob("checkpoint_*"))
  # The checkpoint written on SIGTERM is the step the run stopped at, before the end.
  assert f"saved checkpoint_{steps[-1]}, exiting" in out, (steps, out[-2000:])
  assert PERIOD <= steps[-1] < 2000, steps


def test_refuses_checkpoint_of_another_model(demo_workspace, uninterrupted, tmp_path):
  ref_dir, _ = uninterrupted
  proc = subprocess.run(_cmd(demo_workspace, ref_dir, model="mt5_mini", steps=STEPS + 10),
                        capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=600)
  assert proc.returncode != 0
  err = proc.stdout + proc.stderr
  assert "another model" in err and "(64,)" in err and "(128,)" in err, err[-2000:]
  assert "Traceback" not in err, "a user error should be a message, not a traceback"
  assert (ref_dir / f"checkpoint_{STEPS}").is_dir()  # nothing lost
  assert "TRAIN_STEPS = 40" in (ref_dir / "config.gin").read_text()  # nor overwritten


def _from_real_t5x_checkpoint(demo_workspace, tmp_path, model_dir, steps, extra=()):
  """The train command starting from the checkpoint T5X itself wrote (../shared/data), with a
  vocabulary of its size: 320 pieces + 64 sentinels = its 384-row embedding."""
  from tests.conftest import shared_path  # pylint: disable=g-import-not-at-top
  from xfer_t5x.tasks import demo_data, vocab  # pylint: disable=g-import-not-at-top
  ckpt = shared_path("t5x_checkpoint", "checkpoint_20")
  spm = tmp_path / "spm320.model"
  english = [t for t in demo_data.demo_texts(demo_workspace["data_dir"]) if t.isascii()]
  vocab.build_local_vocabulary(english, str(spm), vocab_size=320)
  ws = dict(demo_workspace, vocab=str(spm))
  cmd = _cmd(ws, model_dir, steps=steps, extra=(f"--gin.INITIAL_CHECKPOINT={ckpt}",
                                                "--gin.default_vocabulary.extra_ids=64",
                                                "--gin.DROPOUT_RATE=0.0", *extra))
  return [c for c in cmd if c != "--gin.INITIAL_CHECKPOINT=None"]


def test_finetune_starts_from_a_t5x_checkpoint(demo_workspace, tmp_path):
  """INITIAL_CHECKPOINT: the checkpoint T5X itself wrote (../shared/data) starts the run; after
  one Adafactor step (lr 1e-3 x parameter RMS) the parameters are still those of T5X."""
  from tests.conftest import shared_path  # pylint: disable=g-import-not-at-top
  want = dict(np.load(shared_path("t5x_checkpoint", "params_step20.npz")))
  model_dir = tmp_path / "model"
  proc = _run(_from_real_t5x_checkpoint(demo_workspace, tmp_path, model_dir, steps=1,
                                        extra=("--gin.INITIAL_STATE=params",)), cwd=tmp_path)
  assert "initialised from" in proc.stdout
  got = _params(model_dir, 1)
  assert got.keys() == want.keys()
  for k in want:
    rms = float(np.sqrt(np.mean(want[k] ** 2)))
    change = float(np.max(np.abs(got[k] - want[k])))
    assert change <= 2e-3 * max(rms, 1e-3) + 1e-7, (k, change, rms)


def _opt_v(model_dir, step):
  """{param path: Adafactor v} saved at `step`, read straight from the Orbax checkpoint."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  path = str(pathlib.Path(model_dir) / f"checkpoint_{step}" / "state")
  checkpointer = ocp.PyTreeCheckpointer()
  meta = checkpointer.metadata(path)
  meta = getattr(getattr(meta, "item_metadata", meta), "tree", meta)
  tree = checkpointer.restore(path, restore_args=jax.tree_util.tree_map(
      lambda _: ocp.RestoreArgs(restore_type=np.ndarray), meta))
  flat = {}
  for keys, value in jax.tree_util.tree_flatten_with_path(tree["opt_state"])[0]:
    names = [str(getattr(k, "key", getattr(k, "idx", k))) for k in keys]
    if names[-1] in ("v", "0") and "stats" in names[0]:
      flat["/".join(names[1:-1])] = value
  return flat, int(np.asarray(tree["step"]))


def test_finetune_continues_t5xs_train_state(demo_workspace, tmp_path):
  """train.initial_state = 'train_state': the run continues at the T5X checkpoint's step 20 with
  its Adafactor statistics (one step later every v is at least decay x the imported v, which a
  fresh optimizer's is not); a TRAIN_STEPS not beyond step 20 is refused before anything is
  written."""
  from xfer_t5x.interop import t5x_state  # pylint: disable=g-import-not-at-top
  from tests.conftest import shared_path  # pylint: disable=g-import-not-at-top
  refused_dir = tmp_path / "refused"
  cmd = _from_real_t5x_checkpoint(demo_workspace, tmp_path, refused_dir, steps=20,
                                  extra=("--gin.INITIAL_STATE=train_state",))
  proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=600)
  assert proc.returncode == 2 and "not beyond the step 20" in proc.stderr, proc.stderr[-2000:]
  assert not refused_dir.exists()
  model_dir = tmp_path / "model"
  proc = _run(_from_real_t5x_checkpoint(demo_workspace, tmp_path, model_dir, steps=21,
                                        extra=("--gin.INITIAL_STATE=train_state",)),
              cwd=tmp_path)
  assert "T5X's Adafactor state and step 20" in proc.stdout + proc.stderr
  assert not (model_dir / "checkpoint_1").exists()
  got, step = _opt_v(model_dir, 21)
  assert step == 21
  _, sources = t5x_state._legacy_state(str(shared_path("t5x_checkpoint", "checkpoint_20")))  # pylint: disable=protected-access
  imported = {name[:-2]: np.asarray(src.read(())) for name, src in sources.items()
              if name.endswith("/v")}
  assert got.keys() == imported.keys()
  decay = 1.0 - 21.0 ** -0.8  # Adafactor's decay at count 20
  for name, v20 in imported.items():
    assert np.all(got[name] >= decay * v20 * (1 - 1e-5)), name
    assert not np.array_equal(got[name], v20), name


def test_a_run_continues_another_runs_train_state(demo_workspace, uninterrupted, tmp_path):
  """This library's own checkpoint as the initial train state (a grid's target phase after its
  intermediate phase): parameters, Adafactor state and step 40 continue in a new model dir."""
  ref_dir, _ = uninterrupted
  model_dir = tmp_path / "model"
  cmd = _cmd(demo_workspace, model_dir, steps=STEPS + 2,
             extra=(f"--gin.INITIAL_CHECKPOINT={ref_dir / f'checkpoint_{STEPS}'}",
                    "--gin.INITIAL_STATE=train_state"))
  proc = _run([c for c in cmd if c != "--gin.INITIAL_CHECKPOINT=None"], cwd=tmp_path)
  assert f"optimizer state and step {STEPS}" in proc.stdout + proc.stderr
  before, _ = _opt_v(ref_dir, STEPS)
  after, step = _opt_v(model_dir, STEPS + 2)
  assert step == STEPS + 2 and before.keys() == after.keys()
  decay = 1.0 - (STEPS + 2.0) ** -0.8  # the second step's decay: v keeps most of what it had
  for name, v in before.items():
    assert np.all(after[name] >= decay * (1.0 - 1.0 / (STEPS + 1.0) ** 0.8) * v * 0.999), name


def test_a_run_exported_to_t5x_keeps_its_train_state(uninterrupted, tmp_path):
  """`convert --from orbax --to t5x` of a training run's checkpoint: T5X's legacy layout with the
  step and every Adafactor statistic, which reads back (parameters and state) to the same
  values."""
  from xfer_t5x.interop import t5x, t5x_state  # pylint: disable=g-import-not-at-top
  from xfer_t5x.model import scan  # pylint: disable=g-import-not-at-top
  ref_dir, _ = uninterrupted
  out = tmp_path / "t5x" / f"checkpoint_{STEPS}"
  proc = _run([sys.executable, "-m", "xfer_t5x", "convert", "--from", "orbax", "--to", "t5x",
               "--src", str(ref_dir / f"checkpoint_{STEPS}"), "--dst", str(out),
               "--model_size", "tiny"], cwd=tmp_path)
  assert f"with the Adafactor state of step {STEPS}" in proc.stdout
  step, sources = t5x_state._legacy_state(str(out))  # pylint: disable=protected-access
  assert step == STEPS
  exported = {name[:-2]: np.asarray(src.read(())) for name, src in sources.items()
              if name.endswith("/v")}
  ours, _ = _opt_v(ref_dir, STEPS)
  assert exported.keys() == ours.keys()
  for name, v in ours.items():
    np.testing.assert_array_equal(exported[name], v, err_msg=name)
  from tests.interop.hf_helpers import tiny_config  # pylint: disable=g-import-not-at-top
  want = _params(ref_dir, STEPS)
  vocab_rows = want["token_embedder/embedding"].shape[0]
  params = scan.flatten(t5x.load_t5x_checkpoint(str(out), tiny_config(vocab_size=vocab_rows)))
  for name, value in want.items():
    np.testing.assert_array_equal(params[name], value, err_msg=name)


def test_periodic_evaluation_during_training(demo_workspace, tmp_path):
  """train.eval_tasks / eval_period: the tasks are evaluated with the training parameters every
  period and at the end, into the model dir's inference_eval/ and summary, keyed by step."""
  import json  # pylint: disable=g-import-not-at-top
  model_dir = tmp_path / "model"
  proc = _run(_cmd(demo_workspace, model_dir, steps=15, extra=(
      "--gin.train.eval_tasks=['xnli.de', 'panx.de']", "--gin.train.eval_period=10",
      "--gin.train.eval_max_examples=3")), cwd=tmp_path)
  assert "evaluated 2 task(s) at step 10" in proc.stdout + proc.stderr
  summary = json.loads((model_dir / "summary.json").read_text())
  assert list(summary["steps"]) == ["10", "15"]
  for step in ("10", "15"):
    assert sorted(summary["steps"][step]["tasks"]) == ["panx.de", "xnli.de"]
    assert "accuracy" in summary["steps"][step]["tasks"]["xnli.de"]["metrics"]
  rows = (model_dir / "inference_eval" / "xnli.de-15.jsonl").read_text().splitlines()
  assert len(rows) == 3 and {"inputs", "prediction", "target"} <= set(json.loads(rows[0]))
  lines = [json.loads(x) for x in (model_dir / "inference_eval" / "metrics.jsonl").read_text()
           .splitlines()]
  assert sorted((x["task"], x["step"]) for x in lines) == [
      ("panx.de", 10), ("panx.de", 15), ("xnli.de", 10), ("xnli.de", 15)]


@pytest.mark.parametrize("damaged", ["array", "state/_METADATA", "extra/metadata"])
def test_damaged_latest_checkpoint_is_moved_aside_and_the_previous_one_resumes(
    demo_workspace, uninterrupted, tmp_path, damaged):
  import shutil  # pylint: disable=g-import-not-at-top
  ref_dir, _ = uninterrupted
  model_dir = tmp_path / "model"
  shutil.copytree(ref_dir, model_dir)
  last = model_dir / f"checkpoint_{STEPS}"
  if damaged == "array":  # the largest OCDBT data file: where the parameters' bytes are
    target = max((last / "state").glob("ocdbt.process_0/d/*"), key=lambda p: p.stat().st_size)
  else:
    target = last / damaged
  with open(target, "r+b") as f:
    f.truncate(target.stat().st_size // 2)

  proc = _run(_cmd(demo_workspace, model_dir), cwd=tmp_path)
  out = proc.stdout
  assert f"checkpoint {last} cannot be read" in out, out[-3000:]
  named = "state/ (the array files)" if damaged == "array" else damaged
  assert named in out
  moved = model_dir / "corrupt" / f"checkpoint_{STEPS}-0"
  assert f"Moved it to {moved}" in out and moved.is_dir()       # kept, not deleted
  assert target.name in {p.name for p in moved.rglob("*")}
  assert f"resumed from {model_dir}/checkpoint_{STEPS - PERIOD}" in out
  got, want = _params(model_dir, STEPS), _params(ref_dir, STEPS)
  assert got.keys() == want.keys()
  for k in want:
    assert np.array_equal(got[k], want[k]), k


def _catches_sigterm(pid) -> bool:
  """Whether the process has a SIGTERM handler (Linux: the SigCgt mask of /proc/<pid>/status)."""
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("SigCgt:"):
          return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
  except OSError:
    pass
  return False


def test_sigterm_during_setup_exits_cleanly_before_the_first_step(demo_workspace, tmp_path):
  if not os.path.exists("/proc/self/status"):
    pytest.skip("needs /proc to see when the handler is in place")
  model_dir = tmp_path / "model"
  proc = subprocess.Popen(_cmd(demo_workspace, model_dir), env=_env(), cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  t = time.time()
  while not _catches_sigterm(proc.pid):
    assert proc.poll() is None and time.time() - t < 60, "no SIGTERM handler appeared"
    time.sleep(0.01)
  proc.send_signal(signal.SIGTERM)  # the command is still importing and setting up
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out[-3000:]
  assert "preemption requested during setup: exiting before the first step" in out, out[-3000:]
  assert not list(model_dir.glob("checkpoint_*"))
