"""The report renders from results databases and CSVs, small ones included; the two commands run."""
import os
import re

import numpy as np
import pandas as pd
import pytest

from xfer_t5x import cli
from xfer_t5x.analysis import report as R
from xfer_t5x.analysis import report_json
from xfer_t5x.analysis import stats as S
from xfer_t5x.analysis import simulate as sim
from xfer_t5x.results import ResultsDB, load_results

FAST = dict(kinds=("featural", "syntactic"), n_boot=100, n_perm=100)


def _write_db(results, path):
  with ResultsDB(path) as db:
    for _, run in results.groupby("run_id"):
      db.record_run(run)
  return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
  """A small grid: XNLI and XQuAD languages, two sizes, two seeds, one intermediate."""
  d = tmp_path_factory.mktemp("synthetic")
  results = sim.simulate_results(7, {"base": 6.0, "xxl": 1.0},
                                 sizes={"base": 582_000_000, "xxl": 12_900_000_000},
                                 tasks=("xnli", "xquad"), n_seeds=2)
  db = _write_db(results, d / "results.sqlite")
  with ResultsDB(db) as handle:
    handle.export_csv(d / "results.csv")
  return d


def _check_report(paths, out):
  md = open(paths["markdown"], encoding="utf-8").read()
  html = open(paths["html"], encoding="utf-8").read()
  for heading in ("## Definitions", "## Macrolanguages", "## Spearman correlation",
                  "## Size effect", "## Slope of gain on distance", "## Mixed-effects model",
                  "## Figures", "## Distances to English"):
    assert heading in md, heading
  assert "great-circle distance / half the earth's circumference" in md
  images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
  assert images and all(os.path.getsize(os.path.join(out, p)) > 1000 for p in images)
  assert html.count("<img") == len(images) and "<table>" in html
  for name in ("gains_by_language", "spearman", "slopes", "distances", "mixed_model"):
    assert os.path.exists(os.path.join(out, "tables", f"{name}.csv"))
  return md


@pytest.mark.parametrize("fmt", ["sqlite", "csv"])
def test_report_renders_from_sqlite_and_csv(synthetic, tmp_path, fmt):
  src = synthetic / f"results.{fmt}"
  out = tmp_path / "report"
  md = _check_report(R.build_report(src, out, **FAST), out)
  assert "| mnli | base | featural |" in md  # a filled correlation row
  assert "Read this first" in md and "only 15 target languages" in md  # said plainly
  assert "MixedLM (REML)" in md
  slopes = pd.read_csv(out / "tables" / "slopes.csv")
  assert set(slopes["size"]) == {"base", "xxl"} and slopes["slope"].notna().all()


def test_sqlite_and_csv_give_the_same_table(synthetic):
  a, b = load_results(synthetic / "results.sqlite"), load_results(synthetic / "results.csv")
  pd.testing.assert_frame_equal(a, b)


def test_demo_sized_results_say_too_small_instead_of_crashing(tmp_path):
  results = sim.simulate_results(1, {"tiny": 1.0, "mini": 0.5},
                                 sizes={"tiny": 120_000, "mini": 900_000}, tasks=("mlqa",),
                                 n_seeds=1, experiment="demo")
  results = results[results["language"].isin(["en", "de", "zh", "ar"])]
  src = results_path = tmp_path / "demo.csv"
  results.to_csv(results_path, index=False)
  out = tmp_path / "report"
  md = _check_report(R.build_report(src, out, **FAST), out)
  assert "tiny test models" in md
  assert "only 3 target language(s) with gains: too few" in md
  assert "one seed only" in md
  assert "Not estimated: too few languages (3; need 5)" in md
  assert "not fitted" in md  # the mixed model says why


def test_results_without_baseline_runs_still_render(tmp_path):
  results = sim.simulate_results(2, {"tiny": 1.0}, sizes={"tiny": 120_000}, tasks=("xnli",), n_seeds=1)
  results = results[results["intermediate"] != "none"]
  db = _write_db(results, tmp_path / "r.sqlite")
  out = tmp_path / "report"
  paths = R.build_report(db, out, kinds=("featural",), n_boot=10, n_perm=10,
                         notes=["Pilot <b>run</b> & co.", "Line one\nline two"])
  md = open(paths["markdown"]).read()
  assert "no intermediate='none' runs" in md and "No gains" in md
  # Notes come right under the title, in order; HTML-escaped in the HTML.
  title, first, second = md.split("\n\n")[:3]
  assert title.startswith("# ") and first == "> **Note.** Pilot <b>run</b> & co."
  assert second == "> **Note.** Line one\n> line two"
  html = open(paths["html"]).read()
  assert "<b>Note.</b> Pilot &lt;b&gt;run&lt;/b&gt; &amp; co.</p>" in html
  assert "Line one<br>line two" in html and "<b>run</b>" not in html
  assert html.index("Pilot") < html.index("<h2>")
  with pytest.raises(TypeError, match="sequence of strings"):
    R.build_report(db, out, notes="one string")


def test_analyze_command(synthetic, tmp_path, capsys):
  out = tmp_path / "cli_report"
  rc = cli.main(["analyze", "--results", str(synthetic / "results.csv"), "--out", str(out),
                 "--distance", "syntactic", "--bootstrap", "50", "--permutations", "50",
                 "--note", "first <note>", "--note", "second"])
  assert rc == 0
  assert (out / "report.md").exists() and (out / "figures" / "gain_vs_syntactic.png").exists()
  md = (out / "report.md").read_text()
  assert md.index("> **Note.** first <note>") < md.index("> **Note.** second") < md.index("## ")
  assert "first &lt;note&gt;" in (out / "report.html").read_text()
  assert "report.md" in capsys.readouterr().out
  bad = tmp_path / "bad.csv"
  bad.write_text("run_id,size\nr1,base\n")
  rc = cli.main(["analyze", "--results", str(bad), "--out", str(tmp_path / "x")])
  err = capsys.readouterr().err
  assert rc == 2 and "bad.csv: missing column(s)" in err and "'experiment'" in err


def test_distances_command(capsys):
  assert cli.main(["distances", "--format", "csv"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert lines[0].startswith("language,name,uriel,syntactic,phonological,inventory,featural,genetic,geographic,script,latin,family")
  assert len(lines) == 51
  assert cli.main(["distances", "--choices", "--definitions"]) == 0
  out = capsys.readouterr().out
  assert "# geographic: great-circle" in out and "ara" in out
  assert cli.main(["distances", "--languages", "de", "xx"]) == 2


def test_first_section_states_the_primary_answer_from_report_json(synthetic, tmp_path):
  out = tmp_path / "report"
  paths = R.build_report(synthetic / "results.csv", out, kinds=("syntactic", "featural"),
                         n_boot=50, n_perm=50)
  doc = report_json.load(out / "report.json")
  md = open(paths["markdown"], encoding="utf-8").read()
  # The first section after the title is the answer, with the first figure right under it.
  sections = md.split("\n## ")
  assert sections[1].startswith("Answer\n")
  answer = sections[1]
  prim = doc["primary"]
  assert prim["distance"] == "syntactic" and prim["alpha"] == 0.05
  assert prim["family_size"] == 2 * 2 + 2  # 2 distances x (2 sizes + 1 size pair) tests
  assert f"alpha = {prim['alpha']:g}" in answer and "syntactic distance" in answer
  assert "![" in answer and "gain_vs_syntactic.png" in answer
  assert len(prim["slopes"]) == 2
  for s in prim["slopes"]:  # each estimate and its interval, as report.json has them
    assert f"{s['slope']:+.2f} [{s['ci_low']:+.2f}, {s['ci_high']:+.2f}]" in answer
    assert f"({s['slope_per_sd']:+.2f} per SD)" in answer
  (d,) = prim["differences"]
  assert (d["smaller"], d["larger"]) == ("base", "xxl")
  assert f"{d['diff']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]" in answer
  # report.json holds every slope with both adjustments and the standardised slope
  slopes = pd.DataFrame(doc["slopes"])
  assert set(slopes["distance"]) == {"syntactic", "featural"}
  assert (slopes["p_family"] >= slopes["p_holm"] - 1e-12).all()
  assert np.allclose(slopes["slope_per_sd"], slopes["slope"] * slopes["distance_sd"])
  assert doc["provenance"]["results_sha256"] and doc["provenance"]["summary"]["n_runs"] > 0
  assert set(doc["distance_correlations"]) == {"syntactic", "featural"}
  html = open(paths["html"], encoding="utf-8").read()
  assert "`" not in html  # Markdown code marks become <code>, never literal backticks
  # Convergence messages sit under Diagnostics, at the end, not in the model sections.
  assert md.index("## Diagnostics") > md.index("## Mixed-effects model")
  assert "statsmodels:" not in md[:md.index("## Diagnostics")]


def test_holm_across_is_one_family():
  a = pd.DataFrame({"p": [0.01, 0.04]})
  b = pd.DataFrame({"p": [0.03, np.nan]})
  a2, b2 = S.holm_across([a, b])
  # three finite p-values: 0.01 * 3, then max(0.03 * 2, 0.03), then max(0.04 * 1, 0.06)
  assert a2["p_family"].tolist() == pytest.approx([0.03, 0.06])
  assert b2["p_family"].iloc[0] == pytest.approx(0.06) and np.isnan(b2["p_family"].iloc[1])
