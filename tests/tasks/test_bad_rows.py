"""Bad input (CONTRACTS.md): unlabeled rows filtered and counted, malformed rows skipped and
reported with file:line, more than 1% malformed is an error, an unreadable file fails at once."""
import json

import pytest
import seqio

from xfer_t5x.tasks import data_report, layouts
from xfer_t5x.tasks.sources import base
from xfer_t5x.tasks.sources import classification as cls
from xfer_t5x.tasks.sources import multiple_choice as mc
from xfer_t5x.tasks.sources import squad, tagging

XNLI_HEADER = ("language\tgold_label\tsentence1_binary_parse\tsentence2_binary_parse\t"
               "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tpromptID\tpairID")


def _xnli_row(i, label="entailment", premise="A man sleeps.", lang="de"):
  return f"{lang}\t{label}\t\t\t\t\t{premise}\tHe rests {i}.\t{i}\t{i}"


def _source(path, reader, schema, **kwargs):
  return base.FileSource("bad_task", str(path.parent), {
      "test": [base.Part.of(path.name, reader, "the test format", **kwargs)]}, schema)


def test_malformed_rows_counted_with_locations(tmp_path):
  rows = [_xnli_row(i) for i in range(200)]
  rows[10] = _xnli_row(10, label="maybe")        # unknown label
  rows[20] = _xnli_row(20, premise="")           # empty text
  rows[30] = "de\tentailment\t\t"                # missing fields
  rows[40] = _xnli_row(40, lang="en")            # another language: not a bad row
  path = tmp_path / "xnli.test.tsv"
  path.write_text("\n".join([XNLI_HEADER] + rows) + "\n", encoding="utf-8")
  data_report.reset_data_report()
  src = _source(path, cls.read_xnli_tsv, cls.NLI_SCHEMA, lang="de")
  with pytest.raises(data_report.TooManyBadRowsError, match=r"3 of 199 rows \(1.5%\)"):
    list(src.get_dataset("test", shuffle=False))
  # The same 3 bad rows among 499 German rows are 0.6%: skipped, counted, reported.
  rows += [_xnli_row(i) for i in range(200, 500)]
  path.write_text("\n".join([XNLI_HEADER] + rows) + "\n", encoding="utf-8")
  ds = src.get_dataset("test", shuffle=False)
  assert len(list(ds)) == 499 - 3
  (report,) = data_report.data_report("bad_task")
  assert (report["kept"], report["malformed"], report["unlabeled"]) == (496, 3, 0)
  assert report["locations"] == [
      f"{path}:12: unknown label 'maybe'", f"{path}:22: empty premise or hypothesis",
      f"{path}:32: 4 fields, header has 10"]
  assert len(report["sha256"]) == 64


def test_more_than_one_percent_malformed_is_an_error(tmp_path):
  path = tmp_path / "copa.jsonl"
  good = {"premise": "It rained.", "choice1": "a", "choice2": "b", "question": "effect",
          "label": 0}
  lines = [json.dumps(good)] * 50 + [json.dumps({**good, "premise": ""})]
  path.write_text("\n".join(lines), encoding="utf-8")
  counter = data_report.FileCounter(str(path), "t", "train", "COPA JSON lines")
  rows = list(mc.read_copa_jsonl(base.FileText(str(path), counter), counter))
  counter.kept(len(rows))
  with pytest.raises(data_report.TooManyBadRowsError) as e:
    counter.finish()
  assert f"{path}:51: empty or missing premise" in str(e.value)
  assert "1 of 51 rows (2.0%)" in str(e.value)


def test_documented_unlabeled_rows_are_filtered_not_errors(tmp_path):
  path = tmp_path / "snli_1.0_train.jsonl"
  rows = [{"sentence1": "A b.", "sentence2": "C d.", "gold_label": "-"}] * 30 + [
      {"sentence1": "A b.", "sentence2": "C d.", "gold_label": "neutral"}] * 10
  path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
  data_report.reset_data_report()
  src = _source(path, cls.read_snli_jsonl, cls.NLI_SCHEMA)
  assert len(list(src.get_dataset("test", shuffle=False))) == 10
  (report,) = data_report.data_report("bad_task")
  assert (report["unlabeled"], report["malformed"], report["kept"]) == (30, 0, 10)
  assert report["reasons"] == {"unlabeled: no gold label": 30}


@pytest.mark.parametrize("content,reader,kwargs,line,why", [
    ("this is not json\n{}\n", mc.read_copa_jsonl, {}, 1, "not JSON"),
    ("premise\tlabel\nx\t1\n", cls.read_glue_mnli, {}, 1, "header lacks column"),
    ('{"data": [{"paragraphs": [}]}', squad.read_squad_json, {}, 1, "not JSON"),
    ("just one column\n", tagging.read_token_tag_tsv, {}, 1, "token<TAB>tag"),
])
def test_unreadable_file_fails_at_once_with_path_and_line(tmp_path, content, reader, kwargs,
                                                         line, why):
  path = tmp_path / "broken.txt"
  path.write_text(content, encoding="utf-8")
  counter = data_report.FileCounter(str(path), "t", "s", "its format")
  with pytest.raises(data_report.FormatError, match=why) as e:
    list(reader(base.FileText(str(path), counter), counter, **kwargs))
  assert str(e.value).startswith(f"{path}:{line}: cannot read this file as its format")


def test_not_utf8_names_the_line(tmp_path):
  path = tmp_path / "dev.tsv"
  path.write_bytes(b"sentence\tlabel\nok\t1\n\xff\xfe bad\t0\n")
  counter = data_report.FileCounter(str(path), "t", "s", "GLUE SST-2 TSV")
  with pytest.raises(data_report.FormatError, match=rf"{path}:3: .*GLUE SST-2 TSV.*not UTF-8"):
    list(cls.read_glue_sst2(base.FileText(str(path), counter), counter))


def test_tagging_mismatch_and_unknown_tags_are_malformed(tmp_path):
  good = "Anna\tB-PER\nsleeps\tO\n"
  blocks = [good] * 200 + ["Anna\tB-XYZ\nsleeps\tO\n", "Anna\nsleeps\tO\n"]
  path = tmp_path / "dev-de.tsv"
  path.write_text("\n".join(blocks), encoding="utf-8")
  data_report.reset_data_report()
  src = _source(path, tagging.read_token_tag_tsv, tagging.TAG_SCHEMA, tag_set=tagging.NER_TAGS)
  assert len(list(src.get_dataset("test", shuffle=False))) == 200
  (report,) = data_report.data_report("bad_task")
  assert report["malformed"] == 2
  assert "unknown tag 'B-XYZ'" in report["locations"][0]
  assert "token without a tag" in report["locations"][1]


def test_missing_data_names_folder_and_patterns(tmp_path):
  cfg = layouts.DataConfig(str(tmp_path))
  src = layouts.file_source(cfg, "xnli.de", [("xnli", "de", {})])
  with pytest.raises(data_report.MissingDataError) as e:
    src.get_dataset("test")
  assert str(tmp_path / "xnli") in str(e.value) and "xnli.test.tsv" in str(e.value)


def test_ccg_without_a_path_fails_with_the_reason(local_vocab):
  from xfer_t5x.tasks import registry, study
  study.register_tasks(local_vocab, "/nonexistent/data", languages={"xnli": ["en"]})
  assert "ccg" not in registry.mixture_info("intermediate_all")["tasks"]
  assert len(registry.mixture_info("intermediate_all")["tasks"]) == 8
  with pytest.raises(data_report.MissingDataError, match="CCGbank.*ccg_path"):
    seqio.get_mixture_or_task("ccg").get_dataset({"inputs": 8, "targets": 8}, split="train")
