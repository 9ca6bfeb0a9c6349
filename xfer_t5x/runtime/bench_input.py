"""The input pipeline's throughput at a bench config's batch and lengths: what the trainer reads.

SeqIO's packed encoder-decoder batches of a real task (MNLI from the demo data, in GLUE's TSV,
with a local SentencePiece vocabulary, since the mT5 one is not here) through the trainer's own
`DataIterator` (shuffle, repeat, pack, batch, prefetch), timed after a warm-up: batches,
sequences and non-padding tokens per second; and SentencePiece's tokenisation cost per example,
the inputs and targets of the same rows encoded alone. `bench --peers` runs it in its own process
and states it against the config's step (the pipeline must deliver several times what a step
consumes).

  python -m xfer_t5x.runtime.bench_input bench      # prints one "PEER {json}" line
"""
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Dict

TASK = "mnli"
TIMED_BATCHES = 50


def measure(config_name: str, batches: int = TIMED_BATCHES) -> Dict:
  from xfer_t5x.runtime import data as data_lib  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime.bench import NAMED_CONFIGS  # pylint: disable=g-import-not-at-top
  from xfer_t5x.tasks import demo_data, study, vocab  # pylint: disable=g-import-not-at-top
  import seqio  # pylint: disable=g-import-not-at-top
  _, b, li, lt = NAMED_CONFIGS[config_name]
  with tempfile.TemporaryDirectory() as tmp:
    root = demo_data.write_demo_data(os.path.join(tmp, "data"), n_train=2000, n_eval=8)
    voc = vocab.build_local_vocabulary(demo_data.demo_texts(root), os.path.join(tmp, "spm.model"))
    study.register_tasks(voc, root)
    it = data_lib.DataIterator.from_task(TASK, {"inputs": li, "targets": lt}, "train", b,
                                         shuffle=True, seed=0, pack=True, shard_id=0,
                                         num_shards=1)
    it.open()
    for _ in range(5):  # warm-up: files read, the shuffle buffer filled
      next(it)
    seqs = tokens = 0
    t0 = time.perf_counter()
    for _ in range(batches):
      batch = next(it)
      seg = batch.get("encoder_segment_ids")
      seqs += int(seg.max(axis=1).sum()) if seg is not None else b
      tokens += int((batch["encoder_input_tokens"] > 0).sum()
                    + (batch["decoder_target_tokens"] > 0).sum())
    wall = time.perf_counter() - t0
    # Tokenisation alone: the task's own rendered texts (its template), encoded one example
    # at a time.
    rows = list(seqio.get_mixture_or_task(TASK).get_dataset(None, split="train", shuffle=False)
                .take(500).as_numpy_iterator())
    pairs = [(r["inputs_pretokenized"].decode(), r["targets_pretokenized"].decode())
             for r in rows]
    voc.encode(pairs[0][0])  # load the model
    per_example = []
    for inputs, targets in pairs:
      t = time.perf_counter()
      voc.encode(inputs)
      voc.encode(targets)
      per_example.append(time.perf_counter() - t)
  return {"batches_per_second": batches / wall, "sequences_per_second": seqs / wall,
          "tokens_per_second": tokens / wall, "batch": b, "lengths": [li, lt],
          "sequences_per_batch": seqs / batches, "task": TASK, "vocabulary": "local, 1000 pieces",
          "tokenize_us_per_example": 1e6 * statistics.median(per_example)}


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  print("PEER " + json.dumps(measure(sys.argv[1])))
