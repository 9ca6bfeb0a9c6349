"""`report.json`: every estimate, interval and p-value of the analysis report, machine-readable,
with the provenance of its inputs (the results file's hash, the runs' code and data versions),
so that other tools and papers can cite the numbers the report shows.
"""
import hashlib
import json
import math
import os

import numpy as np

SCHEMA = "xfer_t5x.analysis.report/1"


def clean(v):
  """JSON-safe: NaN and infinities become null, numpy scalars Python ones."""
  if isinstance(v, dict):
    return {str(k): clean(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [clean(x) for x in v]
  if isinstance(v, (np.bool_, bool)):
    return bool(v)
  if isinstance(v, (np.integer,)):
    return int(v)
  if isinstance(v, (np.floating, float)):
    return None if not math.isfinite(float(v)) else float(v)
  return v


def _records(df):
  if df is None or df.empty:
    return []
  return clean(df.reset_index(drop=df.index.name is None).to_dict(orient="records"))


def _sha256(path):
  if not path or not os.path.isfile(path):
    return None
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _provenance(a, source):
  """Where the numbers come from: the results file (path and SHA-256), what it held (summary,
  with the runs' code and data versions), and the analysis settings."""
  return {"results": os.fspath(source), "results_sha256": _sha256(os.fspath(source)),
          "summary": clean(dict(a.summary)), "n_matched_gains": int(len(a.gains.per_seed)),
          "macrolanguage_mode": a.mode, "include_english": bool(a.include_english),
          "n_boot": a.n_boot, "n_perm": a.n_perm}


def _mixed(fits):
  return [clean({"intermediate": m.intermediate, "distance": m.distance, "method": m.method,
                  "formula": m.formula, "coefficients": _records(m.coefficients),
                  "variance_components": m.variance_components, "notes": m.notes,
                  "diagnostics": m.diagnostics}) for m in fits]


def document(a, source):
  return {
      "schema": SCHEMA,
      "provenance": _provenance(a, source),
      "primary": clean(a.answer),
      "distances": list(a.kinds),
      "distance_correlations": clean(
          {k: row for k, row in a.distance_correlations.to_dict(orient="index").items()}
          if not a.distance_correlations.empty else {}),
      "slopes": _records(a.slopes),
      "slope_differences": _records(a.slope_differences),
      "spearman": _records(a.spearman),
      "size_effects": _records(a.size_effects),
      "mixed_model": _mixed(a.mixed),
      "mixed_model_baseline_adjusted": _mixed(a.mixed_baseline),
      "notes": list(a.notes),
  }


def write(a, path, source):
  with open(path, "w", encoding="utf-8") as f:
    json.dump(document(a, source), f, indent=1, allow_nan=False)
    f.write("\n")
  return path


def load(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)

