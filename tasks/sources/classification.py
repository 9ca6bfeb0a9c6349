"""Readers for sentence and sentence-pair classification releases.

GLUE TSV (MNLI, QQP, SST-2), the XNLI 1.0 TSV (`xnli.dev.tsv`, `xnli.test.tsv`: every language in
one file, a `language` column), ANLI R1-R3 JSON lines and SNLI 1.0 JSON lines.

Schemas: NLI rows are {id, premise, hypothesis, label} with label one of NLI_LABELS; QQP rows
{id, question1, question2, label} with duplicate / not_duplicate; SST-2 rows {id, sentence,
label} with positive / negative.
"""
from xfer_t5x.tasks.sources import common
from xfer_t5x.tasks.sources.base import STRING, line_records
from xfer_t5x.tasks.templates import NLI_LABELS, QQP_LABELS, SST2_LABELS  # noqa: F401

NLI_SCHEMA = {"id": STRING, "premise": STRING, "hypothesis": STRING, "label": STRING}
QQP_SCHEMA = {"id": STRING, "question1": STRING, "question2": STRING, "label": STRING}
SST2_SCHEMA = {"id": STRING, "sentence": STRING, "label": STRING}

_ANLI_LABELS = {"e": "entailment", "n": "neutral", "c": "contradiction"}


def _nli_row(counter, line_no, rid, premise, hypothesis, label, labeled):
  """Validates one NLI row; returns the dict or None (after counting why)."""
  if label in ("", "-", None, -1, "-1"):
    if labeled and label not in ("-", -1, "-1"):
      counter.malformed(line_no, "missing label")
    else:
      counter.unlabeled(line_no, "no gold label")
    return None
  if label not in NLI_LABELS:
    counter.malformed(line_no, f"unknown label {label!r}")
    return None
  if not premise or not hypothesis:
    counter.malformed(line_no, "empty premise or hypothesis")
    return None
  return {"id": str(rid), "premise": premise, "hypothesis": hypothesis, "label": label}


@line_records(1)
def read_glue_mnli(f, counter, labeled=True):
  """GLUE MNLI `train.tsv` / `dev_matched.tsv` (sentence1, sentence2, gold_label, pairID).

  With labeled=False (the test files, published without gold_label) every row is counted as
  unlabeled and nothing is kept.
  """
  required = ["sentence1", "sentence2"] + (["gold_label"] if labeled else [])
  for line_no, row in common.tsv_rows(f, counter, required, optional=["pairID", "gold_label"]):
    label = row.get("gold_label", "") if labeled else ""
    out = _nli_row(counter, line_no, row.get("pairID", line_no), row["sentence1"].strip(),
                   row["sentence2"].strip(), label.strip(), labeled)
    if out:
      yield out


@line_records(1)
def read_xnli_tsv(f, counter, lang):
  """XNLI 1.0 `xnli.{dev,test}.tsv`: keeps the rows whose `language` column is `lang`."""
  for line_no, row in common.tsv_rows(
      f, counter, ["language", "gold_label", "sentence1", "sentence2"], optional=["pairID"]):
    if row["language"] != lang:
      continue
    out = _nli_row(counter, line_no, row.get("pairID", line_no), row["sentence1"].strip(),
                   row["sentence2"].strip(), row["gold_label"].strip(), True)
    if out:
      yield out


@line_records()
def read_anli_jsonl(f, counter):
  """ANLI v1.0 `R{1,2,3}/{train,dev,test}.jsonl` (uid, context, hypothesis, label e/n/c)."""
  for line_no, obj in common.jsonl_rows(f, counter):
    label = obj.get("label")
    if label not in _ANLI_LABELS:
      counter.malformed(line_no, f"unknown label {label!r}" if label else "missing label")
      continue
    out = _nli_row(counter, line_no, obj.get("uid", line_no), common.text_of(obj, "context"),
                   common.text_of(obj, "hypothesis"), _ANLI_LABELS[label], True)
    if out:
      yield out


@line_records()
def read_snli_jsonl(f, counter):
  """SNLI 1.0 `snli_1.0_{train,dev,test}.jsonl` (sentence1, sentence2, gold_label).

  SNLI documents `-` as "no gold label" (annotators disagreed): filtered and counted unlabeled.
  """
  for line_no, obj in common.jsonl_rows(f, counter):
    label = obj.get("gold_label", obj.get("label"))
    if label is None:
      counter.malformed(line_no, "missing gold_label")
      continue
    if isinstance(label, int) and 0 <= label < 3:  # the Hugging Face export: 0/1/2, -1 unlabeled
      label = NLI_LABELS[label]
    out = _nli_row(counter, line_no, obj.get("pairID", line_no), common.text_of(obj, "sentence1"),
                   common.text_of(obj, "sentence2"), label, False)
    if out:
      yield out


@line_records(1)
def read_glue_qqp(f, counter):
  """GLUE QQP `train.tsv` / `dev.tsv` (id, question1, question2, is_duplicate)."""
  for line_no, row in common.tsv_rows(f, counter, ["question1", "question2", "is_duplicate"],
                                      optional=["id"]):
    label = row["is_duplicate"].strip()
    if label not in ("0", "1"):
      counter.malformed(line_no, f"unknown is_duplicate {label!r}")
      continue
    q1, q2 = row["question1"].strip(), row["question2"].strip()
    if not q1 or not q2:
      counter.malformed(line_no, "empty question")
      continue
    yield {"id": row.get("id", str(line_no)), "question1": q1, "question2": q2,
           "label": QQP_LABELS[int(label)]}


def read_glue_sst2(f, counter):
  """GLUE SST-2 `train.tsv` / `dev.tsv` (sentence, label 0/1; some copies name it `text`)."""
  header_probe = next(iter(f.lines()), (1, ""))[1].split("\t")
  column = "sentence" if "sentence" in header_probe else "text"
  for line_no, row in common.tsv_rows(f, counter, [column, "label"]):
    label = row["label"].strip()
    if label not in ("0", "1"):
      counter.malformed(line_no, f"unknown label {label!r}" if label else "missing label")
      continue
    sentence = row[column].strip()
    if not sentence:
      counter.malformed(line_no, "empty sentence")
      continue
    yield {"id": str(line_no), "sentence": sentence, "label": SST2_LABELS[int(label)]}
