"""A registered SeqIO task whose source counts the examples it yields (input-resume tests).

Example i has inputs [10+i] * (1 + i % 5) and targets [10+i, 3], so a batch's decoder targets
name its examples. `READ[0]` counts the examples the source has yielded in this process.
"""
import numpy as np
import seqio
import tensorflow as tf

NAME = "xfer_t5x_test_counting_task"
UNSERIALISABLE = "xfer_t5x_test_counting_task_unserialisable"
LENGTHS = {"inputs": 16, "targets": 12}
N_EXAMPLES = 5000
READ = [0]


def _count(x):
  READ[0] += 1
  return x


def _examples(serialisable: bool) -> tf.data.Dataset:
  ids = tf.data.Dataset.range(N_EXAMPLES).map(lambda i: tf.cast(i + 10, tf.int32))
  ids = ids.map(lambda i: tf.py_function(_count, [i], tf.int32))  # the counter
  ds = ids.map(lambda i: {"inputs": tf.fill([1 + (i - 10) % 5], i), "targets": tf.stack([i, 3])})
  options = tf.data.Options()
  if serialisable:
    # The counter is the only stateful op and holds no state of the stream: tf.data may ignore
    # it when checkpointing the iterator. Left at the default, the pipeline cannot be saved.
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
  return ds.with_options(options)


def register() -> None:
  vocab = seqio.PassThroughVocabulary(size=8000, eos_id=1)
  features = {"inputs": seqio.Feature(vocab, add_eos=True, dtype=tf.int32),
              "targets": seqio.Feature(vocab, add_eos=True, dtype=tf.int32)}
  for name, serialisable in ((NAME, True), (UNSERIALISABLE, False)):
    seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name,
        source=seqio.FunctionDataSource(
            lambda split, shuffle_files, seed=None, s=serialisable: _examples(s),
            splits=["train"]),
        output_features=features,
        preprocessors=[seqio.preprocessors.append_eos_after_trim])


def example_ids(batch) -> list:
  """The examples in a packed batch, in order (first target token of each segment)."""
  tgt, seg = batch["decoder_target_tokens"], batch["decoder_segment_ids"]
  ids = []
  for row in range(tgt.shape[0]):
    for s in np.unique(seg[row][seg[row] > 0]):
      ids.append(int(tgt[row][seg[row] == s][0]))
  return ids
