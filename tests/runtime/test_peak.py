"""The matmul peak `bench` states MFU against: repeats until both a count and a time are reached,
and reports best, median and spread of what it timed (a fake clock makes the timings known)."""
import itertools

import jax.numpy as jnp
import pytest

from xfer_t5x.runtime import peak


def test_repeats_until_count_and_time_and_reports_the_spread():
  ticks = itertools.count()
  durations = iter([0.1, 0.1, 0.2, 0.1, 0.1, 0.1, 0.1])
  now = [0.0]

  def clock():  # start and end of each timed call: the end adds that repeat's duration
    if next(ticks) % 2:
      now[0] += next(durations)
    return now[0]

  m = peak.matmul_peak(64, jnp.float32, min_repeats=3, min_seconds=0.55, warmup=1, clock=clock)
  assert m.seconds == pytest.approx([0.1, 0.1, 0.2, 0.1, 0.1])  # 3 repeats, then until 0.6 s
  flop = 2 * 64 ** 3
  assert m.best == pytest.approx(flop / 0.1) and m.median == pytest.approx(flop / 0.1)
  assert m.spread == pytest.approx((flop / 0.1 - flop / 0.2) / (flop / 0.1))
  assert m.dtype == "float32" and "64^3" in m.summary()


def test_bfloat16_is_measured_in_bfloat16():
  m = peak.matmul_peak(128, jnp.bfloat16, min_repeats=2, min_seconds=0.0, warmup=1)
  assert m.dtype == "bfloat16" and len(m.seconds) == 2 and m.best > 0
