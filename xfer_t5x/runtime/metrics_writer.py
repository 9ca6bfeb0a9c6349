"""Training metrics to the console (a progress line) and to TensorBoard (model_dir/train)."""
import logging
import sys
import time
from typing import Dict, Optional

import jax
import numpy as np


class MetricsWriter:
  """Writes scalars from process 0 only; every process may call it."""

  def __init__(self, log_dir: Optional[str], total_steps: int, stream=None):
    self.total_steps = total_steps
    self.stream = stream or sys.stdout
    self._tb = None
    self._is_primary = jax.process_index() == 0
    self._start = time.time()
    if log_dir and self._is_primary:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      self._tb = tf.summary.create_file_writer(log_dir)

  def write(self, step: int, scalars: Dict[str, float]):
    if not self._is_primary:
      return
    if self._tb is not None:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      with self._tb.as_default(step=step):
        for k, v in scalars.items():
          tf.summary.scalar(k, float(v))
      self._tb.flush()
    self.stream.write(self.format_line(step, scalars) + "\n")
    self.stream.flush()

  def format_line(self, step, s):
    frac = step / max(self.total_steps, 1)
    bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
    elapsed = time.time() - self._start
    parts = [f"step {step}/{self.total_steps} [{bar}]"]
    for key, fmt in (("loss", "{:.4f}"), ("accuracy", "{:.3f}"), ("z_loss", "{:.2e}"),
                     ("learning_rate", "{:.2e}"), ("grad_norm", "{:.3f}"),
                     ("seqs_per_second", "{:.1f}"), ("tokens_per_second", "{:.0f}"),
                     ("mfu", "{:.2%}")):
      if key in s and np.isfinite(s[key]):
        parts.append(f"{key.replace('_per_second', '/s')} {fmt.format(s[key])}")
    parts.append(f"elapsed {elapsed:.0f}s")
    return "  ".join(parts)

  def close(self):
    if self._tb is not None:
      self._tb.close()


def log(msg, *args):
  """Process-0 log line on the console."""
  if jax.process_index() == 0:
    logging.info(msg, *args)
    print(msg % args if args else msg, flush=True)


def log_every_process(msg, *args):
  """A console line from every process, prefixed with its index (what each host did)."""
  text = msg % args if args else msg
  if jax.process_count() > 1:
    text = f"process {jax.process_index()}: {text}"
  logging.info(text)
  print(text, flush=True)
