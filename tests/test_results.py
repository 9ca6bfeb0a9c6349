"""The results table: SQLite store, idempotent per-run writes, CSV export, validated loading."""
import sqlite3

import numpy as np
import pandas as pd
import pytest

from xfer_t5x import results as R


def _row(run_id="r1", language="de", metric="accuracy", value=71.5, **kw):
  row = dict(run_id=run_id, experiment="exp", size="base", n_params=582_000_000,
             intermediate="mnli", target_task="xnli", stage="evaluate", language=language,
             split="test", seed=0, metric=metric, value=value, task_score=True,
             checkpoint="/ckpt/checkpoint_100", step=100, gin_sha256="ab" * 32,
             data_version="sha256:1234", code_version="0.1.0+abc", started_at="2026-01-01T00:00:00",
             finished_at="2026-01-01T01:00:00")
  row.update(kw)
  return row


def _run(run_id="r1", langs=("de", "fr", "ja"), offset=0.0, **kw):
  return [_row(run_id, l, m, 50.0 + i + offset + (0.5 if m == "f1" else 0), task_score=(m != "loss"), **kw)
          for i, l in enumerate(langs) for m in ("em", "f1", "loss")]


def test_columns_are_the_contract_order():
  assert R.COLUMNS == (
      "run_id", "experiment", "size", "n_params", "intermediate", "target_task", "stage",
      "language", "split", "seed", "metric", "value", "task_score", "checkpoint", "step",
      "gin_sha256", "data_version", "code_version", "started_at", "finished_at")
  assert set(R.DTYPES) == set(R.COLUMNS)


def test_creates_database_with_wal(tmp_path):
  path = tmp_path / "sub" / "results.sqlite"
  with R.ResultsDB(path) as db:
    assert db.rows() == []
  conn = sqlite3.connect(path)
  assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
  cols = [r[1] for r in conn.execute("PRAGMA table_info(results)")]
  assert tuple(cols) == R.COLUMNS


def test_record_run_is_idempotent_and_replaces(tmp_path):
  path = tmp_path / "results.sqlite"
  with R.ResultsDB(path) as db:
    assert db.record_run(_run("r1")) == 9
    assert db.record_run(_run("r1")) == 9  # same run again: no duplicates
    db.record_run(_run("r2", langs=("de",)))
    assert len(db.rows()) == 12
    # re-recording replaces: new values, and a language the run no longer has disappears
    db.record_run(_run("r1", langs=("de", "fr"), offset=10.0))
    rows = db.rows(run_id="r1")
    assert len(rows) == 6
    assert {r["language"] for r in rows} == {"de", "fr"}
    assert [r["value"] for r in rows if r["language"] == "de" and r["metric"] == "em"] == [60.0]
  with R.ResultsDB(path) as db:  # persisted
    assert len(db.rows()) == 9
    assert db.run_ids() == ["r1", "r2"]
    keys = [(r["run_id"], r["language"], r["metric"]) for r in db.rows()]
    assert len(keys) == len(set(keys))


def test_failed_record_keeps_earlier_rows(tmp_path):
  with R.ResultsDB(tmp_path / "r.sqlite") as db:
    db.record_run(_run("r1"))
    bad = _run("r1", offset=5.0)
    bad[4]["n_params"] = "many"
    with pytest.raises(R.ResultsError, match="n_params"):
      db.record_run(bad)
    dup = _run("r1") + [_row("r1", "de", "em")]
    with pytest.raises(R.ResultsError, match="two rows for language 'de', metric 'em'"):
      db.record_run(dup)
    with pytest.raises(R.ResultsError, match="several runs"):
      db.record_run(_run("r1") + _run("r9"))
    rows = db.rows(run_id="r1")
    assert len(rows) == 9 and rows[0]["value"] == 50.0


def test_rows_filters_and_delete(tmp_path):
  with R.ResultsDB(tmp_path / "r.sqlite") as db:
    db.record_run(_run("r1"))
    db.record_run(_run("r2", seed=1))
    assert len(db.rows(seed=1)) == 9
    assert len(db.rows(language=["de", "ja"], metric="em")) == 4
    assert len(db.rows(task_score=False)) == 6
    row = db.rows(run_id="r2", language="fr", metric="f1")[0]
    assert row["task_score"] is True and row["seed"] == 1 and row["n_params"] == 582_000_000
    with pytest.raises(R.ResultsError, match="unknown filter 'lang'"):
      db.rows(lang="de")
    assert db.delete_run("r1") == 9
    assert db.delete_run("r1") == 0
    assert db.run_ids() == ["r2"]


def test_export_csv_and_load_both_formats(tmp_path):
  db_path, csv_path = tmp_path / "r.sqlite", tmp_path / "out" / "r.csv"
  with R.ResultsDB(db_path) as db:
    db.record_run(_run("r1"))
    db.record_run(_run("r2", langs=("sw",)))
    nan_row = [_row("r3", "de", "accuracy", value=float("nan"))]
    db.record_run(nan_row)
    assert db.export_csv(csv_path) == 13
  from_db, from_csv = R.load_results(db_path), R.load_results(csv_path)
  assert list(from_db.columns) == list(R.COLUMNS)
  pd.testing.assert_frame_equal(from_db, from_csv)
  assert from_db["n_params"].dtype == np.int64 and from_db["seed"].dtype == np.int64
  assert from_db["value"].dtype == np.float64 and from_db["task_score"].dtype == bool
  assert pd.api.types.is_string_dtype(from_db["language"])
  assert from_db["value"].isna().sum() == 1


def test_bad_csv_errors_name_file_column_and_fix(tmp_path):
  good = pd.DataFrame([_row()])
  p = tmp_path / "missing.csv"
  good.drop(columns=["seed"]).to_csv(p, index=False)
  with pytest.raises(R.ResultsError) as e:
    R.load_results(p)
  assert "missing.csv" in str(e.value) and "'seed'" in str(e.value) and "header" in str(e.value)
  p = tmp_path / "badint.csv"
  bad = pd.concat([good, pd.DataFrame([_row(language="fr", step="ten")])])
  bad.to_csv(p, index=False)
  with pytest.raises(R.ResultsError) as e:
    R.load_results(p)
  assert "badint.csv: line 3" in str(e.value) and "'step'" in str(e.value) and "whole number" in str(e.value)
  p = tmp_path / "badbool.csv"
  pd.DataFrame([_row(task_score="maybe")]).to_csv(p, index=False)
  with pytest.raises(R.ResultsError, match="'task_score'.*true or false"):
    R.load_results(p)
  p = tmp_path / "empty.csv"
  p.write_text("")
  with pytest.raises(R.ResultsError, match="empty.csv: the file is empty"):
    R.load_results(p)
  p = tmp_path / "nolang.csv"
  pd.DataFrame([_row(language="")]).to_csv(p, index=False)
  with pytest.raises(R.ResultsError, match="'language' is empty"):
    R.load_results(p)
  with pytest.raises(R.ResultsError, match="unknown results format"):
    R.load_results(_touch(tmp_path / "r.parquet"))
  with pytest.raises(R.ResultsError, match="no such file"):
    R.load_results(tmp_path / "nope.sqlite")


def test_load_rejects_foreign_sqlite(tmp_path):
  p = tmp_path / "other.db"
  conn = sqlite3.connect(p)
  conn.execute("CREATE TABLE things (a INTEGER)")
  conn.commit()
  conn.close()
  with pytest.raises(R.ResultsError, match="no table 'results'"):
    R.load_results(p)
  # and reading did not add a results table to someone else's database
  assert [r[0] for r in sqlite3.connect(p).execute("SELECT name FROM sqlite_master")] == ["things"]


def _touch(p):
  p.write_text("x")
  return p
