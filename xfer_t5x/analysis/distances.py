"""Language distances from URIEL, read straight from the .npz files inside lang2vec 1.1.2.

lang2vec 1.1.2 ships the URIEL knowledge base but no distance function, so the distances are
computed here, each with the definition below (`DEFINITIONS`, also printed in the report):

- syntactic, phonological, inventory: cosine distance, 1 - a.b / (|a| |b|), between the
  kNN-imputed URIEL vectors (`feature_predictions.npz`, features `S_*` (103), `P_*` (28),
  `INV_*` (158)).
- featural: the same cosine distance between the concatenation of those three imputed vectors.
- genetic: 1 - |shared Glottolog family nodes| / max(|nodes of a|, |nodes of b|), over the `F_*`
  membership features of `family_features.npz` (1.0 when nothing is shared; Basque has no node).
- geographic: great-circle distance / half the earth's circumference (0 = same place, 1 =
  antipodes). URIEL's `GC_<lat>_<lon>` features hold each language's great-circle distance to
  299 fixed points as that same fraction; we recover the language's point on the sphere from
  them by least squares (cos(pi d_i) = x_i . p) and take arccos(p_a . p_b) / pi.

Macrolanguages. For the eight languages that URIEL holds both as a macrolanguage and as an
individual language (`languages.MACROLANGUAGES`), the code is chosen per distance type by
coverage: the code with more *observed* (not imputed) features of that type in `features.npz`
(syntactic: `S_*`, phonological: `P_*`, inventory: `INV_*`, featural: all three), or more family
nodes (genetic), or geographic features (geographic); a tie goes to the macrolanguage code, the
one lang2vec's own two-letter table uses. `mode="alternative"` takes the other code of every pair,
so the report can show how much the results move with the other choice.
"""
import functools
import importlib.metadata
import os
import sys

import numpy as np
import pandas as pd

from xfer_t5x.analysis import languages as L

DISTANCE_TYPES = ("syntactic", "phonological", "inventory", "featural", "genetic", "geographic")
MACRO_MODES = ("coverage", "alternative", "macro", "individual")

DEFINITIONS = {
    "syntactic": "cosine distance between URIEL's kNN-imputed syntax vectors (S_*, 103 features)",
    "phonological": "cosine distance between URIEL's kNN-imputed phonology vectors (P_*, 28 features)",
    "inventory": "cosine distance between URIEL's kNN-imputed phoneme-inventory vectors (INV_*, 158 features)",
    "featural": "cosine distance between the concatenated kNN-imputed syntax, phonology and inventory vectors (289 features)",
    "genetic": "1 - shared Glottolog family nodes / the larger of the two languages' node counts (URIEL F_* features)",
    "geographic": "great-circle distance / half the earth's circumference, between the points recovered from URIEL's GC_* features",
}

_PREFIXES = {
    "syntactic": ("S_",),
    "phonological": ("P_",),
    "inventory": ("INV_",),
    "featural": ("S_", "P_", "INV_"),
}
_COVERAGE_UNITS = {
    "syntactic": "observed S_ features", "phonological": "observed P_ features",
    "inventory": "observed INV_ features", "featural": "observed S_+P_+INV_ features",
    "genetic": "Glottolog family nodes", "geographic": "GC_ features present",
}


def uriel_data_dir():
  """The `data/` folder of the installed lang2vec package (found without importing it).

  Found through the installed distribution's metadata, then sys.path: lang2vec also installs a
  `lang2vec.py` script into bin/, which shadows the package when bin/ is on sys.path.
  """
  candidates = []
  try:
    candidates.append(str(importlib.metadata.distribution("lang2vec").locate_file("lang2vec/data")))
  except importlib.metadata.PackageNotFoundError:
    pass
  candidates += [os.path.join(p, "lang2vec", "data") for p in sys.path if p]
  for d in candidates:
    if os.path.isfile(os.path.join(d, "feature_predictions.npz")):
      return d
  raise RuntimeError("lang2vec's URIEL data (lang2vec/data/feature_predictions.npz) was not found: "
                     "`pip install lang2vec==1.1.2` (the vectors ship inside its wheel)")


class UrielVectors:
  """The URIEL rows for the codes this project uses, read once from lang2vec's .npz files."""

  def __init__(self, data_dir=None, codes=None):
    self.data_dir = data_dir or uriel_data_dir()
    if codes is None:
      codes = {c for l in L.ALL_LANGUAGES for c in L.uriel_codes(l)}
    codes = sorted(codes)

    def rows(fname):
      z = np.load(os.path.join(self.data_dir, fname))
      index = {c: i for i, c in enumerate(z["langs"])}
      missing = [c for c in codes if c not in index]
      if missing:
        raise KeyError(f"{fname} in {self.data_dir} has no rows for URIEL codes {missing}")
      sel = [index[c] for c in codes]
      return z["feats"].astype(str), z["data"][sel]

    self.codes = {c: i for i, c in enumerate(codes)}
    self.feats, pred = rows("feature_predictions.npz")
    self.predicted = pred[:, :, 0].astype(np.float64)
    obs_feats, obs = rows("features.npz")
    if not np.array_equal(obs_feats, self.feats):
      raise ValueError("features.npz and feature_predictions.npz list different features")
    self.observed = (obs != -1).any(axis=2)  # [codes, feats]: any source has a value
    fam_feats, fam = rows("family_features.npz")
    self.family_feats = fam_feats
    self.family = fam[:, :, 0] > 0
    geo_feats, geo = rows("geocoord_features.npz")
    self.geo = geo[:, :, 0].astype(np.float64)
    self.geo_points = _unit_vectors(np.array([[float(v) for v in f[3:].split("_")] for f in geo_feats]))

  def _row(self, code):
    if code not in self.codes:
      raise KeyError(f"URIEL code {code!r} was not loaded (loaded: {sorted(self.codes)})")
    return self.codes[code]

  def feature_mask(self, kind):
    return np.array([f.startswith(_PREFIXES[kind]) for f in self.feats])

  def knn_vector(self, code, kind):
    """The kNN-imputed vector of `code` for syntactic/phonological/inventory/featural."""
    return self.predicted[self._row(code), self.feature_mask(kind)]

  def family_nodes(self, code):
    """The set of Glottolog family node names (URIEL F_* features) that contain `code`."""
    return set(self.family_feats[self.family[self._row(code)]])

  def geo_fractions(self, code):
    """URIEL's GC_* features: great-circle distances to 299 fixed points / half circumference."""
    return self.geo[self._row(code)]

  def location(self, code):
    """The language's point on the unit sphere (x, y, z), recovered from its GC_* features."""
    d = self.geo_fractions(code)
    if (d < 0).any():
      raise ValueError(f"URIEL has no geographic features for {code!r}")
    p, *_ = np.linalg.lstsq(self.geo_points, np.cos(np.pi * d), rcond=None)
    p = p / np.linalg.norm(p)
    resid = np.abs(np.arccos(np.clip(self.geo_points @ p, -1, 1)) / np.pi - d).max()
    if resid > 0.01:
      raise ValueError(f"URIEL's GC_* features for {code!r} do not fit one point (residual {resid:.3f})")
    return p

  def coverage(self, code, kind):
    """How much URIEL knows about `code` for a distance type (see the module docstring)."""
    if kind in _PREFIXES:
      return int(self.observed[self._row(code), self.feature_mask(kind)].sum())
    if kind == "genetic":
      return len(self.family_nodes(code))
    if kind == "geographic":
      return int((self.geo_fractions(code) >= 0).sum())
    raise ValueError(f"unknown distance type {kind!r}; expected one of {DISTANCE_TYPES}")


def _unit_vectors(latlon_deg):
  lat, lon = np.radians(latlon_deg[:, 0]), np.radians(latlon_deg[:, 1])
  return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)


@functools.lru_cache(maxsize=1)
def uriel():
  """The process-wide `UrielVectors` for the 50 XTREME-R languages (loaded on first use)."""
  return UrielVectors()


def cosine_distance(a, b):
  """1 - a.b / (|a| |b|); NaN when either vector is all zeros."""
  na, nb = np.linalg.norm(a), np.linalg.norm(b)
  if na == 0 or nb == 0:
    return float("nan")
  return float(1.0 - np.dot(a, b) / (na * nb))


def genetic_distance(nodes_a, nodes_b):
  """1 - |shared nodes| / max(|a|, |b|); 1.0 when nothing is shared, NaN when both are empty."""
  larger = max(len(nodes_a), len(nodes_b))
  if larger == 0:
    return float("nan")
  return 1.0 - len(set(nodes_a) & set(nodes_b)) / larger


def great_circle_fraction(p, q):
  """Great-circle distance between unit vectors p and q / half the earth's circumference."""
  return float(np.arccos(np.clip(np.dot(p, q), -1.0, 1.0)) / np.pi)


def choose_code(lang, kind, mode="coverage", vectors=None):
  """The URIEL code that stands for `lang` in distance type `kind` under `mode` (MACRO_MODES)."""
  if mode not in MACRO_MODES:
    raise ValueError(f"unknown macrolanguage mode {mode!r}; expected one of {MACRO_MODES}")
  codes = L.uriel_codes(lang)
  if len(codes) == 1:
    return codes[0]
  macro, individual = codes
  if mode == "macro":
    return macro
  if mode == "individual":
    return individual
  u = vectors or uriel()
  by_coverage = individual if u.coverage(individual, kind) > u.coverage(macro, kind) else macro
  if mode == "coverage":
    return by_coverage
  return individual if by_coverage == macro else macro


def macrolanguage_choices(mode="coverage", vectors=None):
  """One row per (macrolanguage, distance type): the code chosen, the other, and their coverage."""
  u = vectors or uriel()
  out = []
  for lang, (macro, individual) in L.MACROLANGUAGES.items():
    for kind in DISTANCE_TYPES:
      chosen = choose_code(lang, kind, mode, u)
      other = individual if chosen == macro else macro
      cm, ci = u.coverage(macro, kind), u.coverage(individual, kind)
      if mode in ("macro", "individual"):
        rule = f"forced ({mode})"
      elif cm == ci:
        rule = "tie -> macrolanguage code" + (" (alternative: the other)" if mode == "alternative" else "")
      else:
        rule = "more " + _COVERAGE_UNITS[kind] + (" (alternative: the other)" if mode == "alternative" else "")
      out.append(dict(language=lang, distance=kind, chosen=chosen, other=other,
                      coverage_chosen=u.coverage(chosen, kind), coverage_other=u.coverage(other, kind),
                      rule=rule))
  return pd.DataFrame(out)


def distance(a, b, kind, mode="coverage", vectors=None):
  """Distance of type `kind` between two-letter codes `a` and `b` (definitions: DEFINITIONS)."""
  if kind not in DISTANCE_TYPES:
    raise ValueError(f"unknown distance type {kind!r}; expected one of {DISTANCE_TYPES}")
  u = vectors or uriel()
  return code_distance(choose_code(a, kind, mode, u), choose_code(b, kind, mode, u), kind, u)


def uriel_code_distances(code, kinds=DISTANCE_TYPES, reference=L.REFERENCE):
  """Distances from `reference` (an XTREME-R code) to any language URIEL has, by its ISO 639-3
  code (for languages outside the 50 XTREME-R ones). KeyError: URIEL has no such code."""
  ref = {k: choose_code(reference, k) for k in kinds}
  u = UrielVectors(codes=set(ref.values()) | {code})
  return {k: code_distance(ref[k], code, k, u) for k in kinds}


def code_distance(ca, cb, kind, u):
  """Distance of type `kind` between URIEL codes `ca` and `cb` of loaded vectors `u`."""
  if kind in _PREFIXES:
    return cosine_distance(u.knn_vector(ca, kind), u.knn_vector(cb, kind))
  if kind == "genetic":
    return genetic_distance(u.family_nodes(ca), u.family_nodes(cb))
  return great_circle_fraction(u.location(ca), u.location(cb))


def distance_table(langs=None, reference=L.REFERENCE, mode="coverage", kinds=DISTANCE_TYPES,
                   vectors=None):
  """Distances from `reference` to each language, with name, script, Latin flag and family.

  Returns a DataFrame indexed by two-letter code (all 50 XTREME-R languages by default).
  """
  u = vectors or uriel()
  langs = list(L.ALL_LANGUAGES if langs is None else langs)
  rows = []
  for lang in langs:
    L.check_language(lang)
    row = dict(language=lang, name=L.NAME[lang])
    codes = L.uriel_codes(lang)
    row["uriel"] = "/".join(codes)
    for kind in kinds:
      row[kind] = distance(reference, lang, kind, mode, u)
    row.update(script=L.SCRIPT[lang], latin=L.is_latin(lang), family=L.FAMILY[lang])
    rows.append(row)
  return pd.DataFrame(rows).set_index("language")
