"""What evaluation writes into the model dir (CONTRACTS.md "Model-dir layout").

  inference_eval/<task>-<step>.jsonl   one line per example: inputs, target, prediction, score
                                       (and id, and per-mode extras such as choice scores)
  inference_eval/metrics.jsonl         one line per task, language and step, appended
  summary.json, summary.txt            the XTREME-R table (per task, per language, overall),
                                       keyed by step

Each evaluation merges its tasks into the step's entry of summary.json: tasks evaluated before at
the same step or at other steps stay, a task evaluated again replaces its own entry, and the
XTREME-R aggregate of the step is recomputed from the merged per-language metrics with
`tasks.metrics.xtreme_r_aggregate`. summary.txt is rendered from summary.json, so the two always
agree. Every file is written to a temporary name and renamed (atomic on a local disk), so a
failing run never leaves a half-written file or loses what earlier runs wrote. Only process 0
calls these functions.
"""
import datetime
import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from etils import epath

from xfer_t5x import fileio
from xfer_t5x.evaluation.examples import json_safe
from xfer_t5x.evaluation.results import TaskResult, finite_or_none
from xfer_t5x.tasks import metrics as metrics_lib

EVAL_DIR = "inference_eval"
METRICS_FILE = "metrics.jsonl"
SUMMARY_JSON = "summary.json"
SUMMARY_TXT = "summary.txt"


def model_path(model_dir) -> epath.Path:
  text = os.fspath(model_dir)
  return epath.Path(text if "://" in text else os.path.abspath(os.path.expanduser(text)))


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def predictions_path(model_dir, task: str, step: int) -> epath.Path:
  return model_path(model_dir) / EVAL_DIR / f"{task}-{step}.jsonl"


def write_predictions(model_dir, result: TaskResult, step: int) -> epath.Path:
  """`inference_eval/<task>-<step>.jsonl`, one JSON object per example (replaced if present)."""
  path = predictions_path(model_dir, result.task, step)
  lines = [json.dumps(json_safe(r), ensure_ascii=False) for r in result.records]
  fileio.atomic_write(path, "".join(line + "\n" for line in lines))
  return path


def language_score(result_target: Optional[str], metrics: Mapping[str, float]) -> Optional[float]:
  """The language's XTREME-R task score, or None (not a target, or metrics lacking)."""
  if result_target not in metrics_lib.TASK_SCORE_METRICS:
    return None
  try:
    return metrics_lib.language_task_score(result_target, metrics)
  except ValueError:
    return None


def task_entry(result: TaskResult) -> Dict[str, Any]:
  info = result.info
  return {"target": info.target, "language": info.language, "split": result.split,
          "mode": info.mode, "role": info.role, "num_examples": result.num_examples,
          "metrics": {k: finite_or_none(v) for k, v in result.metrics.items()}}


def append_metrics(model_dir, results: Sequence[TaskResult], step: int,
                   checkpoint: Optional[str] = None) -> epath.Path:
  """Appends one line per task (= per task and language) at `step` to metrics.jsonl."""
  path = model_path(model_dir) / EVAL_DIR / METRICS_FILE
  old = path.read_text(encoding="utf-8") if path.exists() else ""
  if old and not old.endswith("\n"):
    old += "\n"
  when = _now()
  lines = []
  for r in results:
    entry = task_entry(r)
    line = {"step": int(step), "task": r.task, **entry,
            "task_score": finite_or_none(language_score(entry["target"], r.metrics)),
            "checkpoint": checkpoint, "evaluated_at": when}
    lines.append(json.dumps(line, ensure_ascii=False, sort_keys=False))
  fileio.atomic_write(path, old + "".join(line + "\n" for line in lines))
  return path


def read_metrics_lines(model_dir) -> List[Dict[str, Any]]:
  """Every line of metrics.jsonl, parsed (an empty list if there is none)."""
  path = model_path(model_dir) / EVAL_DIR / METRICS_FILE
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# --------------------------------------------------------------------------------- aggregation
def xtreme_scores(tasks: Mapping[str, Mapping[str, Any]]) -> Dict[str, Dict[str, Dict]]:
  """{target: {language: metrics}} from a step's task entries, for `xtreme_r_aggregate`.

  Only XTREME-R targets' tasks whose metrics hold the target's task-score metrics count. Where
  two tasks give the same target and language (`xcopa.sw` decoded and `xcopa_rank.sw` ranked),
  the one named `<target>.<language>` is used, else the first by name.
  """
  chosen: Dict[str, Dict[str, Any]] = {}
  for name in sorted(tasks):
    entry = tasks[name]
    target, lang = entry.get("target"), entry.get("language")
    metrics = {k: v for k, v in (entry.get("metrics") or {}).items() if v is not None}
    if target not in metrics_lib.TASK_SCORE_METRICS or not lang:
      continue
    if language_score(target, metrics) is None:
      continue
    key = f"{target}.{lang}"
    current = chosen.setdefault(target, {}).get(lang)
    if current is None or (name == key and current[0] != key):
      chosen[target][lang] = (name, metrics)
  return {t: {lang: m for lang, (_, m) in by_lang.items()} for t, by_lang in chosen.items()}


def aggregate(tasks: Mapping[str, Mapping[str, Any]]) -> Dict[str, Any]:
  """XTREME-R's aggregate of a step's task entries (JSON-ready: NaN as None)."""
  agg = metrics_lib.xtreme_r_aggregate(xtreme_scores(tasks))
  return {"tasks": agg["tasks"], "per_language": agg["per_language"],
          "overall": finite_or_none(agg["overall"]), "complete": agg["complete"],
          "targets_present": len(agg["tasks"])}


def read_summary(model_dir) -> Dict[str, Any]:
  path = model_path(model_dir) / SUMMARY_JSON
  if not path.exists():
    return {"model_dir": os.fspath(model_dir), "latest_step": None, "steps": {}}
  return json.loads(path.read_text(encoding="utf-8"))


def update_summary(model_dir, results: Sequence[TaskResult], step: int,
                   checkpoint: Optional[str] = None) -> Dict[str, Any]:
  """Merges `results` into summary.json's entry for `step`, rewrites summary.txt; returns it."""
  summary = read_summary(model_dir)
  summary["model_dir"] = os.fspath(model_dir)
  entry = summary["steps"].setdefault(str(int(step)), {"tasks": {}})
  entry["checkpoint"] = checkpoint or entry.get("checkpoint")
  entry["updated_at"] = _now()
  for r in results:
    entry["tasks"][r.task] = task_entry(r)
  entry["tasks"] = dict(sorted(entry["tasks"].items()))
  entry["xtreme_r"] = aggregate(entry["tasks"])
  summary["steps"] = dict(sorted(summary["steps"].items(), key=lambda kv: int(kv[0])))
  summary["latest_step"] = max(int(s) for s in summary["steps"])
  root = model_path(model_dir)
  fileio.atomic_write(root / SUMMARY_JSON, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
  fileio.atomic_write(root / SUMMARY_TXT, render_text(summary))
  return summary


# --------------------------------------------------------------------------------- text table
def _fmt(value) -> str:
  return "   n/a" if value is None else f"{value:6.2f}"


def render_step(step: str, entry: Mapping[str, Any]) -> List[str]:
  """The lines of one step's table."""
  agg = entry.get("xtreme_r") or aggregate(entry.get("tasks", {}))
  lines = [f"== step {step}" + (f"  ({entry['checkpoint']})" if entry.get("checkpoint") else "")
           + " =="]
  if agg["tasks"]:
    lines.append(f"{'target':<10} {'score':>6}  per language (task score)")
    for target, score in agg["tasks"].items():
      langs = "  ".join(f"{lang} {_fmt(v).strip()}"
                        for lang, v in sorted(agg["per_language"][target].items()))
      lines.append(f"{target:<10} {_fmt(score)}  {langs}")
    n = agg["targets_present"]
    note = ("all 10 XTREME-R targets" if agg["complete"] else
            f"{n} of 10 XTREME-R targets; the official overall score needs all 10")
    lines.append(f"{'overall':<10} {_fmt(agg['overall'])}  ({note})")
  else:
    lines.append("no XTREME-R target evaluated at this step")
  lines.append("")
  lines.append(f"{'task':<24} {'split':<10} {'n':>6}  metrics")
  for name, t in entry.get("tasks", {}).items():
    metrics = "  ".join(f"{k} {_fmt(v).strip()}" for k, v in sorted((t.get("metrics") or {}).items()))
    lines.append(f"{name:<24} {str(t.get('split')):<10} {t.get('num_examples', 0):>6}  {metrics}")
  return lines


def render_text(summary: Mapping[str, Any]) -> str:
  """summary.txt: one table per step, oldest first (scores in percent)."""
  lines = [f"XTREME-R summary of {summary.get('model_dir')}",
           "A target's score is the mean over its languages of the language's task score "
           "(QA: the mean of EM and F1); overall is the mean of the targets' scores.", ""]
  for step, entry in summary.get("steps", {}).items():
    lines += render_step(step, entry) + [""]
  return "\n".join(lines).rstrip("\n") + "\n"


def write_all(model_dir, results: Iterable[TaskResult], step: int,
              checkpoint: Optional[str] = None) -> Dict[str, Any]:
  """Predictions, metrics lines and the summary for one evaluation; returns the summary."""
  results = list(results)
  for r in results:
    write_predictions(model_dir, r, step)
  append_metrics(model_dir, results, step, checkpoint)
  return update_summary(model_dir, results, step, checkpoint)
