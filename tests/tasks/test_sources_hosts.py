"""File sources at pod scale: data dirs on a non-local filesystem (TensorFlow's ram:// stands in
for gs://), and each host reading its own part of the files: byte ranges of line-per-example
files, whole files in turn otherwise. The hosts' parts are disjoint, together equal the one-host
rows, each host reads about 1/N of the bytes, and the bad-row counts add up to the one-host
counts with the same file:line locations."""
import collections
import json
import uuid

import pytest
import seqio
import tensorflow as tf

from xfer_t5x.tasks import data_report, registry
from xfer_t5x.tasks.sources import base
from xfer_t5x.tasks.sources import classification as cls
from xfer_t5x.tasks.sources import files
from xfer_t5x.tasks.sources import squad

BAD = {37, 401, 402, 1500}  # rows (0-based) with an unknown label: 4 of 2000, 0.2%


def _mnli_tsv(n=2000):
  lines = ["pairID\tsentence1\tsentence2\tgold_label"]
  for i in range(n):
    label = "maybe" if i in BAD else cls.NLI_LABELS[i % 3]
    lines.append(f"p{i}\tA premise number {i}{' long' * (i % 7)}.\tHypothesis {i}.\t{label}")
  return "\n".join(lines) + "\n"


def _write(path, text):
  tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(text)


def _ram_root():
  return f"ram://xfer_t5x_test_{uuid.uuid4().hex}"


@pytest.mark.parametrize("content", [
    b"", b"one line without newline", b"a\n", b"\n\n\n", b"a\nbb\n\nccc\ndddd",
    b"".join(b"line %d %s\n" % (i, b"x" * (i * 7 % 23)) for i in range(200))])
@pytest.mark.parametrize("where", ["local", "ram"])
def test_byte_ranges_give_every_line_to_exactly_one_host(content, where, tmp_path):
  path = str(tmp_path / "f.txt") if where == "local" else _ram_root() + "/f.txt"
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(content)
  for n in range(1, 8):
    parts = [files.read_lines_in_range(path, a, b)
             for a, b in files.byte_ranges(len(content), n)]
    assert b"".join(parts) == content, n
    offset = 0
    for part in parts:  # whole lines only: each part starts where a line starts
      assert not part or offset == 0 or content[offset - 1:offset] == b"\n", (n, offset)
      offset += len(part)


def test_count_lines_before():
  path = _ram_root() + "/f.txt"
  _write(path, "a\nb\n\nc\n")
  assert [files.count_lines_before(path, k) for k in (0, 1, 2, 4, 5, 7)] == [0, 0, 1, 2, 3, 4]


def test_a_data_dir_on_another_filesystem(local_vocab):
  root = _ram_root()
  _write(f"{root}/MNLI/train.tsv", _mnli_tsv(50))
  _write(f"{root}/MNLI/dev_matched.tsv", _mnli_tsv(20))
  _write(f"{root}/custom/nli.jsonl", "\n".join(json.dumps(
      {"premise": f"P{i}.", "hypothesis": f"H{i}.", "label": "neutral"}) for i in range(7)))
  source = base.FileSource("ram_mnli", root, {
      split: [base.Part.of(("mnli/" + name, "MNLI/" + name), cls.read_glue_mnli, "GLUE MNLI TSV")]
      for split, name in (("train", "train.tsv"), ("validation", "dev_matched.tsv"))},
      cls.NLI_SCHEMA)
  assert source.files("train") == [f"{root}/MNLI/train.tsv"]  # the second pattern matched
  task = registry.add_task("ram_mnli", source, "xnli", ["accuracy"], vocabulary=local_vocab)
  exs = list(task.get_dataset({"inputs": 64, "targets": 8}, split="validation", shuffle=False))
  assert len(exs) == 20 - len(BAD & set(range(20)))
  custom = registry.add_task("ram_custom", {"train": f"{root}/custom/nli.jsonl"}, "xnli",
                             ["accuracy"], vocabulary=local_vocab)
  exs = list(custom.get_dataset({"inputs": 64, "targets": 8}, split="train", shuffle=False))
  assert [e["inputs_pretokenized"].numpy().decode() for e in exs][:2] == [
      "xnli premise: P0. hypothesis: H0.", "xnli premise: P1. hypothesis: H1."]
  for name in ("ram_mnli", "ram_custom"):
    seqio.TaskRegistry.remove(name)


def _counting(monkeypatch):
  """Bytes each read returns, by host, through the file helpers the source calls."""
  seen = collections.Counter()
  host = [None]
  for name in ("read_bytes", "read_lines_in_range"):
    original = getattr(files, name)

    def wrapped(*args, _original=original):
      out = _original(*args)
      seen[host[0]] += len(out)
      return out
    monkeypatch.setattr(files, name, wrapped)
  return seen, host


@pytest.mark.parametrize("num_hosts", [2, 3])
def test_hosts_read_disjoint_ranges_that_make_the_one_host_rows(num_hosts, monkeypatch):
  root = _ram_root()
  text = _mnli_tsv()
  _write(f"{root}/mnli/train.tsv", text)
  source = base.FileSource("hosts_mnli", root, {"train": [
      base.Part.of("mnli/train.tsv", cls.read_glue_mnli, "GLUE MNLI TSV")]}, cls.NLI_SCHEMA)
  seen, host = _counting(monkeypatch)

  data_report.reset_data_report()
  host[0] = "one"
  one = source.read_rows("train")
  (whole,) = data_report.data_report("hosts_mnli")
  assert whole["malformed"] == len(BAD) and whole["kept"] == 2000 - len(BAD)

  data_report.reset_data_report()
  parts = []
  for i in range(num_hosts):
    host[0] = i
    parts.append(source.read_rows("train", i, num_hosts))
  ids = [[r["id"] for r in p] for p in parts]
  assert sorted(sum(ids, [])) == sorted(r["id"] for r in one)     # together: the one-host rows
  assert len(set(sum(ids, []))) == len(one)                        # disjoint
  assert sorted(sum(parts, []), key=lambda r: r["id"]) == sorted(one, key=lambda r: r["id"])
  size = len(text.encode())
  assert seen["one"] == size
  header = len(text.split("\n", 1)[0]) + 1
  for i in range(num_hosts):  # about 1/N each: its range, the header, and at most one line more
    assert abs(seen[i] - size / num_hosts) < header + 200, (i, seen[i], size / num_hosts)

  reports = data_report.data_report("hosts_mnli")
  assert len(reports) == num_hosts and all(r["byte_range"] for r in reports)
  for key in ("rows", "kept", "malformed", "unlabeled"):
    assert sum(r[key] for r in reports) == whole[key], key
  # The same file:line locations as the one-host read (the header is line 1).
  assert sorted(sum((r["locations"] for r in reports), [])) == sorted(whole["locations"])
  assert f"train.tsv:{min(BAD) + 2}: unknown label 'maybe'" in " ".join(whole["locations"])


def test_seqio_shard_info_reaches_the_ranges():
  root = _ram_root()
  _write(f"{root}/mnli/train.tsv", _mnli_tsv(300))
  source = base.FileSource("shard_mnli", root, {"train": [
      base.Part.of("mnli/train.tsv", cls.read_glue_mnli, "GLUE MNLI TSV")]}, cls.NLI_SCHEMA)
  counts = [sum(1 for _ in source.get_dataset("train", shuffle=True, seed=1,
                                              shard_info=seqio.ShardInfo(i, 2)))
            for i in range(2)]
  assert sum(counts) == 300 - len(BAD & set(range(300)))
  assert all(c > 100 for c in counts)


def test_host_plan_whole_files_and_shared_ones():
  lines = base.Part.of("*.tsv", cls.read_glue_mnli)
  doc = base.Part.of("*.json", squad.read_squad_json)
  size = lambda path: 1000
  found = [(lines, "a.tsv"), (lines, "b.tsv.gz")] + [(doc, f"{i}.json") for i in range(4)]
  plans = [base.host_plan(found, i, 2, size) for i in range(2)]
  for i, plan in enumerate(plans):
    by = {p.path: p for p in plan}
    assert by["a.tsv"].byte_range == ((0, 500), (500, 1000))[i]
    assert "b.tsv.gz" not in by or not by["b.tsv.gz"].byte_range  # compressed: never ranged
    assert not any(p.shared for p in plan)
  whole = [sorted(p.path for p in plan if p.byte_range is None) for plan in plans]
  assert sorted(whole[0] + whole[1]) == sorted(["b.tsv.gz", "0.json", "1.json", "2.json",
                                                "3.json"])
  assert not set(whole[0]) & set(whole[1])
  # Fewer whole files than hosts: every host reads them and keeps its rows by position.
  plan = base.host_plan([(doc, "0.json"), (lines, "a.tsv")], 1, 3, size)
  assert [(p.path, p.shared, p.byte_range) for p in plan] == [
      ("a.tsv", False, (333, 666)), ("0.json", True, None)]
  assert base.host_plan(found, 0, 1, size) == [base.Piece(p, f) for p, f in found]
