"""SeqIO preprocessors that turn source rows into `inputs` / `targets` text by a template.

`format_examples` fills a template (templates.py) for every row, after adding the derived fields
of the row's family; the row's own fields stay in the example (postprocessors and metrics read
`answers`, `tokens`, `tags`, `gold`, ... from it). `rank_classification` expands a
multiple-choice row into one example per choice (see rank_classification.py).
"""
import functools
import string

import numpy as np
import tensorflow as tf

from xfer_t5x.tasks import postprocessors
from xfer_t5x.tasks import templates as templates_lib

def _ner_spans(tokens, tags):
  dec = lambda a: [x.decode("utf-8") for x in a]
  return np.array(postprocessors.spans_from_ner_tags(dec(tokens), dec(tags)), dtype=object)


def _derive(ex, family):
  ex = dict(ex)
  if family == "qa":
    answers = ex["answers"]
    ex["answer"] = tf.cond(tf.size(answers) > 0, lambda: answers[0],
                           lambda: tf.constant(templates_lib.UNANSWERABLE))
  elif family == "multiple_choice":
    choices = ex["choices"]
    n = tf.size(choices)
    letters = tf.constant([f"({c})" for c in templates_lib.OPTION_LETTERS])[:n]
    ex["options"] = tf.strings.reduce_join(
        tf.strings.join([letters, choices], separator=" "), separator=" ")
    ex["answer"] = tf.gather(choices, ex["label"])
  elif family in ("tagging", "ner"):
    ex["words"] = tf.strings.reduce_join(ex["tokens"], separator=" ")
    ex["tag_seq"] = tf.strings.reduce_join(ex["tags"], separator=" ")
    if family == "ner":
      spans = tf.numpy_function(_ner_spans, [ex["tokens"], ex["tags"]], tf.string, stateful=False)
      ex["spans"] = tf.reshape(spans, [])
  return ex


def _fill(pattern, ex):
  pieces = []
  for literal, field, _, _ in string.Formatter().parse(pattern):
    if literal:
      pieces.append(tf.constant(literal))
    if field:
      pieces.append(ex[field])
  if not pieces:
    return tf.constant("")
  return tf.strings.join(pieces) if len(pieces) > 1 else pieces[0]


def _format_one(ex, template, family):
  full = _derive(ex, family)
  out = dict(ex)
  out["inputs"] = _fill(template.inputs, full)
  out["targets"] = _fill(template.targets, full)
  return out


def format_examples(dataset: tf.data.Dataset, template_name: str) -> tf.data.Dataset:
  """Adds `inputs` and `targets` text from the named template (templates.TEMPLATES)."""
  template = templates_lib.TEMPLATES[template_name]
  fn = functools.partial(_format_one, template=template, family=template.family)
  return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def rank_classification(dataset: tf.data.Dataset, template_name: str) -> tf.data.Dataset:
  """One example per answer choice: same inputs, the choice as targets.

  Each expanded example carries `idx` = [row number, choice number] and `is_correct`; the
  scores of one row's examples are compared by `rank_classification.rank_accuracy`.
  """
  template = templates_lib.TEMPLATES[template_name]

  def expand(i, ex):
    full = _derive(ex, "multiple_choice")
    inputs = _fill(template.inputs, full)
    choices = ex["choices"]
    n = tf.size(choices)
    choice_ids = tf.range(n, dtype=tf.int32)
    return tf.data.Dataset.from_tensor_slices({
        "inputs": tf.fill([n], inputs),
        "targets": choices,
        "idx": tf.stack([tf.fill([n], tf.cast(i, tf.int32)), choice_ids], axis=1),
        "is_correct": tf.equal(choice_ids, ex["label"]),
        "id": tf.fill([n], ex["id"]),
    })

  return dataset.enumerate().flat_map(expand)
