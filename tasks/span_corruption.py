"""Span corruption, mT5's (and T5's) pretraining objective, for the `mlm` baseline.

The algorithm as Raffel et al. (2020, section 3.1.4) publish it, written here from that
description. A sequence of `length` tokens gets round(length x noise_density) noise tokens
(at least 1, and at least one token left), in round(noise / mean_noise_span_length) spans (at
least 1). The noise tokens are split into that many non-empty spans uniformly at random (every
composition equally likely), the other tokens likewise, and the two interleave starting with a
non-noise span, so every noise span is preceded by kept text. The inputs keep the non-noise
tokens, each noise span replaced by one sentinel; the targets are each sentinel followed by the
span it replaced. Sentinel k (k = 0, 1, ...) is id `vocab_size - 1 - k`: the SentencePiece
vocabulary's extra ids counted from the end, `<extra_id_0>` first, as mT5 does.

`noise_mask`, `corrupt` and `reconstruct` work on NumPy arrays (the tests check the published
statistics and that inputs plus targets give back every token exactly once); `preprocessor`
applies them in a SeqIO pipeline, seeded by SeqIO's own per-example seeds (deterministic), and
`tokens_length_for` sizes the chunks so that the corrupted inputs fit the inputs length.
"""
from typing import Dict, Tuple

import numpy as np
import seqio
import tensorflow as tf

NOISE_DENSITY = 0.15
MEAN_NOISE_SPAN_LENGTH = 3.0


def _counts(length: int, noise_density: float, mean_span: float) -> Tuple[int, int]:
  """(noise tokens, noise spans) of a sequence of `length` tokens."""
  num_noise = int(round(length * noise_density))
  num_noise = min(max(num_noise, 1), length - 1)
  num_spans = max(int(round(num_noise / mean_span)), 1)
  num_spans = min(num_spans, length - num_noise)  # every span needs kept text before it
  return num_noise, num_spans


def _random_composition(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
  """`total` items split into `parts` non-empty runs, each composition equally likely: the
  parts - 1 cut points are a uniform sample of the total - 1 gaps."""
  cuts = np.sort(rng.choice(total - 1, size=parts - 1, replace=False) + 1) if parts > 1 else []
  return np.diff(np.concatenate([[0], cuts, [total]])).astype(np.int64)


def noise_mask(length: int, rng: np.random.Generator, noise_density: float = NOISE_DENSITY,
               mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH) -> np.ndarray:
  """Boolean [length]: True where a token is noise (to be predicted)."""
  if length < 2:
    return np.zeros(length, bool)
  num_noise, num_spans = _counts(length, noise_density, mean_noise_span_length)
  noise = _random_composition(num_noise, num_spans, rng)
  kept = _random_composition(length - num_noise, num_spans, rng)
  runs = np.stack([kept, noise], axis=1).reshape(-1)  # kept, noise, kept, noise, ...
  return np.repeat(np.tile([False, True], num_spans), runs)


def corrupt(tokens: np.ndarray, mask: np.ndarray, vocab_size: int) -> Tuple[np.ndarray, np.ndarray]:
  """(inputs, targets): each noise span replaced by a sentinel in the inputs, and the targets
  each sentinel followed by its span."""
  tokens, mask = np.asarray(tokens), np.asarray(mask, bool)
  starts = mask & ~np.concatenate([[False], mask[:-1]])  # first token of each noise span
  sentinel = vocab_size - np.cumsum(starts)  # span k (from 0) -> vocab_size - 1 - k
  inputs = np.where(starts, sentinel, tokens)[~mask | starts]
  # the targets: each span's noise tokens, its sentinel inserted just before its first token
  first = np.flatnonzero(starts[mask])
  targets = np.insert(tokens[mask], first, vocab_size - 1 - np.arange(len(first)))
  return inputs.astype(tokens.dtype), targets.astype(tokens.dtype)


def reconstruct(inputs: np.ndarray, targets: np.ndarray, vocab_size: int,
                num_sentinels: int = 100) -> np.ndarray:
  """The original tokens from `corrupt`'s inputs and targets (each sentinel of the inputs
  replaced by the span after that sentinel in the targets)."""
  lowest = vocab_size - num_sentinels
  spans: Dict[int, list] = {}
  current = None
  for t in np.asarray(targets).tolist():
    if t >= lowest:
      current = spans.setdefault(t, [])
    elif current is not None:
      current.append(t)
  out = []
  for t in np.asarray(inputs).tolist():
    out.extend(spans.pop(t) if t >= lowest else [t])
  if spans:
    raise ValueError(f"targets hold spans for sentinels the inputs lack: {sorted(spans)}")
  return np.asarray(out, dtype=np.asarray(inputs).dtype)


def tokens_length_for(inputs_length: int, noise_density: float = NOISE_DENSITY,
                      mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH
                      ) -> Tuple[int, int]:
  """(tokens per chunk, targets length): the longest chunk whose corrupted inputs plus EOS fit
  `inputs_length`, and the targets length (plus EOS) that chunk then needs."""
  def inputs_len(n):
    noise, spans = _counts(n, noise_density, mean_noise_span_length)
    return n - noise + spans + 1
  n = 2
  while inputs_len(n + 1) <= inputs_length:
    n += 1
  noise, spans = _counts(n, noise_density, mean_noise_span_length)
  return n, noise + spans + 1


@seqio.map_over_dataset(num_seeds=1)
def _corrupt_example(ex, seed, vocab_size, noise_density, mean_noise_span_length):
  def np_corrupt(tokens, seed_pair):
    rng = np.random.default_rng(np.asarray(seed_pair, np.uint32).tolist())
    mask = noise_mask(len(tokens), rng, noise_density, mean_noise_span_length)
    inputs, targets = corrupt(tokens, mask, vocab_size)
    return inputs.astype(np.int32), targets.astype(np.int32)
  inputs, targets = tf.numpy_function(np_corrupt, [ex["targets"], seed], [tf.int32, tf.int32])
  inputs.set_shape([None])
  targets.set_shape([None])
  return {**{k: v for k, v in ex.items() if k not in ("inputs", "targets")},
          "inputs": inputs, "targets": targets}


def preprocessor(dataset: tf.data.Dataset, sequence_length, output_features,
                 noise_density: float = NOISE_DENSITY,
                 mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH) -> tf.data.Dataset:
  """SeqIO preprocessor after tokenization of the text as `targets`: documents are joined and
  cut into chunks sized for `sequence_length["inputs"]`, then each chunk is corrupted."""
  chunk, _ = tokens_length_for(sequence_length["inputs"], noise_density, mean_noise_span_length)
  dataset = dataset.map(lambda ex: {"targets": tf.cast(ex["targets"], tf.int32)},
                        num_parallel_calls=tf.data.AUTOTUNE)
  dataset = _chunks(dataset, chunk)
  vocab_size = output_features["targets"].vocabulary.vocab_size
  return _corrupt_example(dataset, vocab_size=vocab_size, noise_density=noise_density,
                          mean_noise_span_length=mean_noise_span_length)


def _chunks(dataset: tf.data.Dataset, chunk: int) -> tf.data.Dataset:
  """Documents' tokens concatenated and cut into chunks of `chunk` tokens (the last shorter)."""
  tokens = dataset.flat_map(lambda ex: tf.data.Dataset.from_tensor_slices(ex["targets"]))
  return tokens.batch(chunk).map(lambda t: {"targets": t})
