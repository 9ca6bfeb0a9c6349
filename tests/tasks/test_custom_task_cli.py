"""A user's own task, as a SeqIO user registers one: `add_task` in a module of their own (JSON
lines with integer labels), loaded with `--module` or a gin `import`, trained and evaluated
through the real CLI on the tiny model with a local vocabulary; and a task whose vocabulary is
not the run's refused by train, eval and infer before anything is written."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

LABELS = ("entailment", "neutral", "contradiction")
SUBJECTS = ["The farmer", "A child", "The old doctor", "My sister", "The pilot", "A teacher"]
OBJECTS = ["a book", "the river", "a small dog", "the market", "an apple", "the radio"]

MY_TASKS = '''
import os
from xfer_t5x.tasks import add_task
HERE = os.path.dirname(os.path.abspath(__file__))
add_task("my_nli", {"train": os.path.join(HERE, "nli_train.jsonl"),
                    "validation": os.path.join(HERE, "nli_dev.jsonl")},
         "xnli", ["accuracy"], eval_split="validation")
'''

OWN_VOCAB_TASKS = '''
import os
import seqio
from xfer_t5x.tasks import add_task
HERE = os.path.dirname(os.path.abspath(__file__))
add_task("my_nli_own_vocab", {"train": os.path.join(HERE, "nli_train.jsonl"),
                              "validation": os.path.join(HERE, "nli_dev.jsonl")},
         "xnli", ["accuracy"], eval_split="validation",
         vocabulary=seqio.SentencePieceVocabulary(os.path.join(HERE, "spm.model"), extra_ids=0))
'''


def _rows(n, offset):
  rows = []
  for i in range(n):
    s, o = SUBJECTS[(i + offset) % len(SUBJECTS)], OBJECTS[(i * 5 + offset) % len(OBJECTS)]
    label = i % 3
    hypothesis = [f"{s} sees {o}.", f"{s} may like {o}.", f"{s} never sees {o}."][label]
    rows.append({"premise": f"{s} sees {o} today.", "hypothesis": hypothesis, "label": label})
  return rows


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
  from xfer_t5x.tasks import vocab  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("user_task")
  train, dev = _rows(48, 0), _rows(9, 1)
  for name, rows in (("nli_train.jsonl", train), ("nli_dev.jsonl", dev)):
    (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
  texts = [r["premise"] + " " + r["hypothesis"] for r in train] + list(LABELS) * 20
  vocab.build_local_vocabulary(texts, str(root / "spm.model"), vocab_size=320)
  (root / "my_tasks.py").write_text(MY_TASKS)
  (root / "own_vocab_tasks.py").write_text(OWN_VOCAB_TASKS)
  (root / "my_tasks.gin").write_text("import my_tasks\n")
  return {"root": root, "spm": str(root / "spm.model"), "dev": dev,
          "model_dir": root / "model"}


def _cli(ws, *argv):
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, "-m", "xfer_t5x", *argv], capture_output=True,
                        text=True, env=env, cwd=ws["root"], timeout=600)


def _train_flags(ws, task, model_dir):
  return ["train", "--gin_file", "models/mt5_tiny.gin", "--gin_file", "runs/train.gin",
          f"--gin.MODEL_DIR={model_dir}", f"--gin.MIXTURE_OR_TASK_NAME={task}",
          "--gin.TRAIN_STEPS=6", "--gin.BATCH_SIZE=8",
          "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 4}",
          f"--gin.default_vocabulary.path={ws['spm']}", "--gin.train.checkpoint_period=6"]


def _eval_flags(ws, task):
  return ["eval", "--gin_file", "models/mt5_tiny.gin", "--gin_file", "runs/eval.gin",
          f"--gin.MODEL_DIR={ws['model_dir']}", f"--gin.EVAL_TASKS=['{task}']",
          f"--gin.default_vocabulary.path={ws['spm']}", "--gin.BATCH_SIZE=4"]


def _infer_flags(ws, task):
  return ["infer", "--gin_file", "models/mt5_tiny.gin", "--gin_file", "runs/infer.gin",
          f"--gin.MODEL_DIR={ws['model_dir']}", f"--gin.default_vocabulary.path={ws['spm']}",
          "--gin.MAX_DECODE_LENGTH=4", "--task", task, "-n", "3"]


@pytest.fixture(scope="module")
def trained(ws):
  """`train` then `eval` of the user's task, the module given with --module."""
  train = _cli(ws, "--module", "my_tasks", *_train_flags(ws, "my_nli", ws["model_dir"]))
  assert train.returncode == 0, train.stderr[-4000:]
  evaluated = _cli(ws, *_eval_flags(ws, "my_nli"), "--module", "my_tasks")
  assert evaluated.returncode == 0, evaluated.stderr[-4000:]
  return ws


def test_user_task_trains_and_evaluates_with_integer_labels(trained):
  model_dir = trained["model_dir"]
  summary = json.loads((model_dir / "summary.json").read_text())
  accuracy = summary["steps"]["6"]["tasks"]["my_nli"]["metrics"]["accuracy"]
  rows = [json.loads(line) for line in
          (model_dir / "inference_eval" / "my_nli-6.jsonl").read_text().splitlines()]
  # The integer labels reached the model as the template's label words, in the file's order.
  assert [r["target"] for r in rows] == [LABELS[r["label"]] for r in trained["dev"]]
  right = sum(r["prediction"] == r["target"] for r in rows)
  assert accuracy == pytest.approx(100.0 * right / len(rows))


def test_gin_import_loads_the_module_for_infer(trained):
  proc = _cli(trained, *_infer_flags(trained, "my_nli"), "--gin_file", "my_tasks.gin")
  assert proc.returncode == 0, proc.stderr[-4000:]
  records = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
  assert [r["target"] for r in records] == [LABELS[r["label"]] for r in trained["dev"][:3]]
  assert all(r["inputs"].startswith("xnli premise: ") for r in records)


def _files(path):
  return {str(p): p.stat().st_mtime_ns for p in path.rglob("*")}


@pytest.mark.parametrize("command", ["train", "eval", "infer"])
def test_task_with_another_vocabulary_is_refused(trained, command):
  ws = trained
  model_dir = ws["model_dir"] if command != "train" else ws["root"] / "refused_model"
  before = _files(ws["model_dir"])
  flags = {"train": _train_flags(ws, "my_nli_own_vocab", model_dir),
           "eval": _eval_flags(ws, "my_nli_own_vocab"),
           "infer": _infer_flags(ws, "my_nli_own_vocab")}[command]
  proc = _cli(ws, *flags, "--module", "own_vocab_tasks")
  assert proc.returncode == 2, proc.stderr[-4000:]
  assert "Traceback" not in proc.stderr
  message = proc.stderr
  assert "task 'my_nli_own_vocab' tokenizes its" in message
  assert f"{ws['spm']} (0 extra ids" in message and f"{ws['spm']} (100 extra ids" in message
  assert "--gin.default_vocabulary.extra_ids=0" in message
  assert _files(ws["model_dir"]) == before
  assert not (ws["root"] / "refused_model").exists()
