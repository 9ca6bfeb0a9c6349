"""The results table: one row per (run, language, metric), in SQLite by default, exportable as CSV.

The grid writes it (`ResultsDB.record_run`), `xfer-t5x results` prints and exports it, and the
analysis reads it (`load_results`, from either the database or a CSV export). The columns and
their order are fixed by CONTRACTS.md ("Results"); `COLUMNS` and `DTYPES` are the one place they
are written down.

- `task_score` is true for the metrics that enter the XTREME-R average; a task's score per
  language is the mean of those (QA: EM and F1).
- `data_version` hashes the data files read (or names the TFDS dataset and version);
  `code_version` is the package version plus the git commit where there is one.
- `started_at` / `finished_at` are ISO 8601 timestamps (text).

Writing is one transaction per run: `record_run(rows)` first deletes whatever the run wrote
before, then inserts the new rows, so re-recording a run replaces it and never duplicates, and a
failed write leaves the earlier rows untouched.
"""
import contextlib
import csv
import math
import os
import sqlite3

import numpy as np
import pandas as pd

from xfer_t5x import fileio

COLUMNS = (
    "run_id", "experiment", "size", "n_params", "intermediate", "target_task", "stage",
    "language", "split", "seed", "metric", "value", "task_score", "checkpoint", "step",
    "gin_sha256", "data_version", "code_version", "started_at", "finished_at",
)
KEY = ("run_id", "language", "metric")

# column -> one of "str", "int", "float", "bool"
DTYPES = {c: "str" for c in COLUMNS}
DTYPES.update(n_params="int", seed="int", step="int", value="float", task_score="bool")
# text columns that must not be empty (the rest may be "", e.g. stage or checkpoint)
REQUIRED_TEXT = ("run_id", "experiment", "size", "intermediate", "target_task", "language",
                 "split", "metric")

_SQL_TYPES = {"str": "TEXT", "int": "INTEGER", "float": "REAL", "bool": "INTEGER"}
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


class ResultsError(ValueError):
  """Bad results input: the message names the file (or run), the column and the fix."""


def _missing(value):
  return value is None or value is pd.NA or value is pd.NaT or (
      isinstance(value, (float, np.floating)) and math.isnan(value))


def _coerce(value, column, where):
  """One cell to its column's Python type, or a ResultsError naming where and how to fix it."""
  kind = DTYPES[column]
  if kind == "str":
    if _missing(value):
      value = ""
    value = str(value)
    if column in REQUIRED_TEXT and not value:
      raise ResultsError(f"{where}: column {column!r} is empty; every row needs a {column}")
    return value
  if kind == "bool":
    if isinstance(value, (bool, np.bool_)):
      return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
      return bool(value)
    s = str(value).strip().lower()
    if s in _TRUE:
      return True
    if s in _FALSE:
      return False
    raise ResultsError(f"{where}: column {column!r} has {value!r}; write true or false (or 1/0)")
  if kind == "int":
    try:
      f = float(value)
      if isinstance(value, bool) or not f.is_integer():
        raise ValueError
      return int(f)
    except (TypeError, ValueError):
      raise ResultsError(f"{where}: column {column!r} has {value!r}; it must be a whole number") from None
  try:  # float: empty means a missing value (NaN)
    if _missing(value) or (isinstance(value, str) and not value.strip()):
      return float("nan")
    return float(value)
  except (TypeError, ValueError):
    raise ResultsError(f"{where}: column {column!r} has {value!r}; it must be a number "
                       "(leave it empty for a missing value)") from None


def normalize_row(row, where="row"):
  """A dict with exactly COLUMNS, each cell of its column's type; clear errors otherwise."""
  missing = [c for c in COLUMNS if c not in row]
  if missing:
    raise ResultsError(f"{where}: missing column(s) {missing}; a results row has the columns "
                       f"{list(COLUMNS)}")
  extra = [c for c in row if c not in DTYPES]
  if extra:
    raise ResultsError(f"{where}: unknown column(s) {extra}; the results table has only "
                       f"{list(COLUMNS)}")
  out = {c: _coerce(row[c], c, where) for c in COLUMNS}
  if out["n_params"] <= 0:
    raise ResultsError(f"{where}: column 'n_params' is {out['n_params']}; give the model's "
                       "parameter count (the analysis uses log10(n_params))")
  return out


class ResultsDB:
  """The results table in SQLite (created if missing, WAL journal, one transaction per run)."""

  TABLE = "results"

  def __init__(self, path, timeout=60.0):
    self.path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(self.path))
    os.makedirs(parent, exist_ok=True)
    self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
    try:
      self._conn.execute("PRAGMA journal_mode=WAL")
      self._conn.execute("PRAGMA synchronous=NORMAL")
      cols = ", ".join(f"{c} {_SQL_TYPES[DTYPES[c]]} NOT NULL" if c != "value" else "value REAL"
                       for c in COLUMNS)
      self._conn.execute(f"CREATE TABLE IF NOT EXISTS {self.TABLE} ({cols}, "
                         f"PRIMARY KEY ({', '.join(KEY)}))")
      have = [r[1] for r in self._conn.execute(f"PRAGMA table_info({self.TABLE})")]
    except sqlite3.DatabaseError as e:
      self._conn.close()
      raise ResultsError(
          f"{self.path}: not a readable SQLite results database ({e}). Move it aside (nothing "
          "is lost: a grid's state holds every finished run's rows) and run the grid again, "
          "which records them into a new one; or point --db / experiment.results_db to "
          "another file") from None
    if tuple(have) != COLUMNS:
      raise ResultsError(f"{self.path}: table {self.TABLE!r} has columns {have}, not the results "
                         f"columns {list(COLUMNS)}; point to a results database or a new path")

  def close(self):
    self._conn.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  @contextlib.contextmanager
  def _transaction(self):
    self._conn.execute("BEGIN IMMEDIATE")
    try:
      yield
    except BaseException:
      self._conn.execute("ROLLBACK")
      raise
    self._conn.execute("COMMIT")

  def record_run(self, rows):
    """Writes one run's rows (dicts or a DataFrame) in one transaction, replacing earlier ones.

    All rows must share one run_id, and (language, metric) must not repeat. Returns the number
    of rows written. On any error nothing changes.
    """
    if isinstance(rows, pd.DataFrame):
      rows = rows.to_dict("records")
    rows = [normalize_row(r, f"{self.path}: row {i} of the run") for i, r in enumerate(rows)]
    if not rows:
      raise ResultsError(f"{self.path}: record_run got no rows; a run records at least one metric")
    run_ids = sorted({r["run_id"] for r in rows})
    if len(run_ids) != 1:
      raise ResultsError(f"{self.path}: record_run got rows of several runs {run_ids}; call it "
                         "once per run")
    seen = set()
    for r in rows:
      k = (r["language"], r["metric"])
      if k in seen:
        raise ResultsError(f"{self.path}: run {run_ids[0]!r} has two rows for language "
                           f"{k[0]!r}, metric {k[1]!r}; each (run, language, metric) is one row")
      seen.add(k)
    values = [tuple(_to_sql(r[c]) for c in COLUMNS) for r in rows]
    with self._transaction():
      self._conn.execute(f"DELETE FROM {self.TABLE} WHERE run_id = ?", (run_ids[0],))
      self._conn.executemany(
          f"INSERT INTO {self.TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
          values)
    return len(values)

  def delete_run(self, run_id):
    """Deletes a run's rows; returns how many there were."""
    with self._transaction():
      cur = self._conn.execute(f"DELETE FROM {self.TABLE} WHERE run_id = ?", (run_id,))
    return cur.rowcount

  def run_ids(self):
    """The run_ids that have rows, sorted."""
    return [r[0] for r in self._conn.execute(f"SELECT DISTINCT run_id FROM {self.TABLE} ORDER BY run_id")]

  def _select(self, filters):
    where, args = [], []
    for col, want in filters.items():
      if col not in DTYPES:
        raise ResultsError(f"unknown filter {col!r}; filter on any of {list(COLUMNS)}")
      if isinstance(want, (list, tuple, set, frozenset)):
        want = list(want)
        if not want:
          return None
        where.append(f"{col} IN ({', '.join('?' * len(want))})")
        args.extend(_to_sql(w) for w in want)
      else:
        where.append(f"{col} = ?")
        args.append(_to_sql(want))
    sql = f"SELECT {', '.join(COLUMNS)} FROM {self.TABLE}"
    if where:
      sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY " + ", ".join(KEY)
    return self._conn.execute(sql, args).fetchall()

  def rows(self, **filters):
    """Rows as dicts, filtered by column equality (a list/tuple/set value means 'any of')."""
    fetched = self._select(filters) or []
    return [_from_sql(dict(zip(COLUMNS, r))) for r in fetched]

  def to_frame(self, **filters):
    """The (filtered) table as a DataFrame with COLUMNS and validated dtypes."""
    return _typed_frame(pd.DataFrame(self.rows(**filters), columns=list(COLUMNS)))

  def export_csv(self, path, **filters):
    """Writes the (filtered) table as CSV with COLUMNS as header (atomically); returns row count."""
    rows = self.rows(**filters)
    return write_csv(rows, path)


def _to_sql(v):
  if isinstance(v, (bool, np.bool_)):
    return int(v)
  if isinstance(v, float) and math.isnan(v):
    return None
  if isinstance(v, np.generic):
    return v.item()
  return v


def _from_sql(row):
  row["task_score"] = bool(row["task_score"])
  if row["value"] is None:
    row["value"] = float("nan")
  return row


def write_csv(rows, path):
  """Writes rows (dicts with COLUMNS) as a results CSV, replacing `path` atomically."""
  with fileio.atomic_open(path, "w") as f:
    w = csv.writer(f)
    w.writerow(COLUMNS)
    for r in rows:
      w.writerow(["true" if r[c] is True else "false" if r[c] is False else
                  ("" if isinstance(r[c], float) and math.isnan(r[c]) else r[c]) for c in COLUMNS])
  return len(rows)


def _typed_frame(df):
  out = pd.DataFrame(index=df.index)
  for c in COLUMNS:
    kind = DTYPES[c]
    if kind == "str":
      out[c] = df[c].astype(str)
    elif kind == "int":
      out[c] = df[c].astype(np.int64)
    elif kind == "float":
      out[c] = df[c].astype(np.float64)
    else:
      out[c] = df[c].astype(bool)
  return out.reset_index(drop=True)


def _read_csv(path):
  try:
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
  except pd.errors.EmptyDataError:
    raise ResultsError(f"{path}: the file is empty; a results CSV starts with the header "
                       f"{','.join(COLUMNS)} (export one with `xfer-t5x results --csv PATH`)") from None
  except (pd.errors.ParserError, UnicodeDecodeError) as e:
    raise ResultsError(f"{path}: cannot be read as CSV ({e}); expected UTF-8 CSV with the header "
                       f"{','.join(COLUMNS)}") from None
  missing = [c for c in COLUMNS if c not in df.columns]
  if missing:
    raise ResultsError(f"{path}: missing column(s) {missing}; a results CSV has the header "
                       f"{','.join(COLUMNS)} (export one with `xfer-t5x results --csv PATH`, or "
                       "add the column)")
  records = df[list(COLUMNS)].to_dict("records")
  # line numbers: the header is line 1
  rows = [normalize_row(r, f"{path}: line {i + 2}") for i, r in enumerate(records)]
  return pd.DataFrame(rows, columns=list(COLUMNS))


def _read_sqlite(path):
  """Reads the results table without writing to the file (read-only connection)."""
  try:
    conn = sqlite3.connect(f"file:{os.path.abspath(path)}?mode=ro", uri=True)
    try:
      have = [r[1] for r in conn.execute(f"PRAGMA table_info({ResultsDB.TABLE})")]
      if not have:
        raise ResultsError(f"{path}: no table {ResultsDB.TABLE!r}; is this the grid's results "
                           "database? (`xfer-t5x grid status` names it)")
      if tuple(have) != COLUMNS:
        raise ResultsError(f"{path}: table {ResultsDB.TABLE!r} has columns {have}, not the results "
                           f"columns {list(COLUMNS)}")
      fetched = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM {ResultsDB.TABLE} "
                             f"ORDER BY {', '.join(KEY)}").fetchall()
    finally:
      conn.close()
  except sqlite3.DatabaseError as e:
    raise ResultsError(f"{path}: not a readable SQLite results database ({e})") from None
  rows = [_from_sql(dict(zip(COLUMNS, r))) for r in fetched]
  return _typed_frame(pd.DataFrame(rows, columns=list(COLUMNS)))


def load_results(path):
  """The results table from a SQLite database (.sqlite/.sqlite3/.db) or a CSV, as a DataFrame.

  Columns are COLUMNS in order with validated dtypes (text as str, n_params/seed/step int64,
  value float64, task_score bool). Bad input raises ResultsError naming file, column and fix.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise ResultsError(f"{path}: no such file; pass the grid's results database (.sqlite) or a "
                       "CSV exported by `xfer-t5x results`")
  lower = path.lower()
  if lower.endswith(SQLITE_SUFFIXES):
    return _read_sqlite(path)
  if lower.endswith(".csv"):
    return _typed_frame(_read_csv(path))
  raise ResultsError(f"{path}: unknown results format; use a .sqlite/.sqlite3/.db database or a "
                     ".csv export")
