"""URIEL distances: hand-computed from the shipped .npz files, macrolanguage choices, the table."""
import os

import numpy as np
import pytest
from scipy import optimize
from scipy.spatial import distance as spd

from xfer_t5x.analysis import distances as D
from xfer_t5x.analysis import languages as L


@pytest.fixture(scope="module")
def npz():
  d = D.uriel_data_dir()
  out = {}
  for name in ("feature_predictions", "features", "family_features", "geocoord_features"):
    with np.load(os.path.join(d, f"{name}.npz")) as z:
      out[name] = {k: z[k] for k in z.files}  # decompress once, not on every access
  return out


def _row(z, code):
  return int(np.flatnonzero(z["langs"] == code)[0])


def _knn(npz, code, prefixes):
  z = npz["feature_predictions"]
  mask = np.array([any(f.startswith(p) for p in prefixes) for f in z["feats"]])
  return z["data"][_row(z, code), mask, 0].astype(np.float64)


def _nodes(npz, code):
  z = npz["family_features"]
  return {f for f, v in zip(z["feats"], z["data"][_row(z, code), :, 0]) if v > 0}


def _latlon(npz, code):
  """Nonlinear least squares on haversine distances (independent of the module's linear solve)."""
  z = npz["geocoord_features"]
  pts = np.radians([[float(v) for v in f[3:].split("_")] for f in z["feats"]])
  target = z["data"][_row(z, code), :, 0].astype(np.float64)

  def frac(lat, lon):
    h = (np.sin((pts[:, 0] - lat) / 2) ** 2
         + np.cos(lat) * np.cos(pts[:, 0]) * np.sin((pts[:, 1] - lon) / 2) ** 2)
    return 2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))) / np.pi

  grid = [(la, lo) for la in np.radians(np.arange(-88, 89, 4.0)) for lo in np.radians(np.arange(-180, 180, 4.0))]
  start = min(grid, key=lambda g: np.sum((frac(*g) - target) ** 2))
  res = optimize.minimize(lambda v: np.sum((frac(*v) - target) ** 2), start, method="Nelder-Mead",
                          options=dict(xatol=1e-7, fatol=1e-12, maxiter=4000))
  return res.x


def _haversine_frac(a, b):
  (la1, lo1), (la2, lo2) = a, b
  h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
  return 2 * np.arcsin(np.sqrt(h)) / np.pi


@pytest.mark.parametrize("a,b,kind,prefixes", [
    ("eng", "deu", "featural", ("S_", "P_", "INV_")),
    ("eng", "jpn", "syntactic", ("S_",)),
    ("eng", "fra", "phonological", ("P_",)),
    ("eng", "hin", "inventory", ("INV_",)),
])
def test_cosine_distances_match_hand_computation(npz, a, b, kind, prefixes):
  two = {v: k for k, v in L.URIEL_CODE.items()}
  want = spd.cosine(_knn(npz, a, prefixes), _knn(npz, b, prefixes))
  assert D.distance(two[a], two[b], kind) == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_genetic_distance_by_hand(npz):
  eng, deu = _nodes(npz, "eng"), _nodes(npz, "deu")
  assert len(eng) == 9 and len(deu) == 6 and len(eng & deu) == 4
  assert D.distance("en", "de", "genetic") == pytest.approx(1 - 4 / 9)
  assert D.distance("en", "ja", "genetic") == 1.0  # nothing shared
  assert D.distance("en", "eu", "genetic") == 1.0  # Basque: no URIEL family node at all
  # Persian: genetic takes pes (7 nodes; fas has 6); English shares Indo-European only
  assert len(_nodes(npz, "pes")) == 7
  assert D.distance("en", "fa", "genetic") == pytest.approx(1 - 1 / 9)


def test_geographic_distance_matches_haversine(npz):
  en, ja, de = _latlon(npz, "eng"), _latlon(npz, "jpn"), _latlon(npz, "deu")
  assert 50 < np.degrees(en[0]) < 56 and -6 < np.degrees(en[1]) < 2  # English is in England
  assert D.distance("en", "ja", "geographic") == pytest.approx(_haversine_frac(en, ja), abs=2e-3)
  assert D.distance("en", "de", "geographic") == pytest.approx(_haversine_frac(en, de), abs=2e-3)


def test_macrolanguage_choice_by_coverage_and_alternative(npz):
  z = npz["features"]
  mask = np.array([f.startswith("S_") for f in z["feats"]])
  observed = lambda c: int(((z["data"][_row(z, c)][mask] != -1).any(axis=1)).sum())  # noqa: E731
  assert (observed("ara"), observed("arb")) == (98, 66)
  assert D.choose_code("ar", "syntactic") == "ara"
  assert D.choose_code("ar", "syntactic", mode="alternative") == "arb"
  assert D.choose_code("qu", "genetic") == "quz"  # que has no family node
  assert D.choose_code("sw", "syntactic") == "swa"  # tie (85 vs 85) -> macrolanguage code
  want = spd.cosine(_knn(npz, "eng", ("S_",)), _knn(npz, "arb", ("S_",)))
  assert D.distance("en", "ar", "syntactic", mode="alternative") == pytest.approx(want)
  assert D.distance("en", "ar", "syntactic", mode="alternative") != pytest.approx(
      D.distance("en", "ar", "syntactic"))
  choices = D.macrolanguage_choices()
  assert len(choices) == 8 * len(D.DISTANCE_TYPES)
  assert (choices["coverage_chosen"] >= choices["coverage_other"]).all()
  flipped = D.macrolanguage_choices("alternative")
  assert (flipped["chosen"].to_numpy() == choices["other"].to_numpy()).all()


def test_german_closer_than_japanese_on_every_distance():
  for kind in D.DISTANCE_TYPES:
    assert D.distance("en", "de", kind) < D.distance("en", "ja", kind), kind


def test_table_of_all_50_languages():
  t = D.distance_table()
  assert len(t) == 50 and set(t.index) == set(L.ALL_LANGUAGES)
  vals = t[list(D.DISTANCE_TYPES)].to_numpy(np.float64)
  assert np.isfinite(vals).all() and (vals >= -1e-12).all() and (vals <= 1 + 1e-12).all()
  assert np.allclose(t.loc["en", list(D.DISTANCE_TYPES)].to_numpy(np.float64), 0, atol=1e-6)
  assert (t["genetic"] == 1.0).sum() == 27  # RESEARCH.md: 27 of the 49 targets tie at 1.0
  assert t.loc["ja", "latin"] == False and t.loc["tr", "latin"] == True  # noqa: E712
  assert t.loc["ht", "family"] == "Indo-European" and t.loc["eu", "family"] == "Basque"


def test_family_table_agrees_with_uriel(npz):
  z = npz["family_features"]
  for lang in L.ALL_LANGUAGES:
    code = D.choose_code(lang, "genetic")
    nodes = [f for f, v in zip(z["feats"], z["data"][_row(z, code), :, 0]) if v > 0]
    if nodes:  # URIEL lists the top family first
      assert nodes[0] == "F_" + L.FAMILY[lang], lang


def test_unknown_language_and_kind_are_clear_errors():
  with pytest.raises(ValueError, match="unknown language code 'xx'"):
    D.distance("en", "xx", "featural")
  with pytest.raises(ValueError, match="unknown distance type 'lexical'"):
    D.distance("en", "de", "lexical")
  with pytest.raises(ValueError, match="unknown macrolanguage mode"):
    D.choose_code("ar", "featural", mode="best")
