"""The peak FLOP/s that MFU is stated against.

TPUs: the public per-chip bf16 figures of `xfer_t5x.runtime.chips`, per JAX device (a megacore
v4 or v5p device is a whole chip; a v4 device of a non-megacore topology is half of one). CPU (and
anything unknown): the best of a few dense float32 matmuls measured here, so MFU on a laptop
means something.
"""
import dataclasses
import functools
import statistics
import time
from typing import Callable, List

import jax
import jax.numpy as jnp

from xfer_t5x.runtime import chips


@dataclasses.dataclass(frozen=True)
class PeakMeasurement:
  """Repeated timings of one n x n x n matmul of random matrices on one device."""
  dtype: str
  n: int
  seconds: List[float]  # every timed repeat, after the warm-up

  @property
  def flops(self) -> List[float]:
    return [2 * self.n ** 3 / t for t in self.seconds]

  @property
  def best(self) -> float:
    return max(self.flops)

  @property
  def median(self) -> float:
    return statistics.median(self.flops)

  @property
  def spread(self) -> float:
    """(best - worst) / median: how much the figure moved within this measurement."""
    f = self.flops
    return (max(f) - min(f)) / statistics.median(f)

  def summary(self) -> str:
    return (f"{self.dtype} {self.n}^3: best {self.best / 1e9:.1f}, median "
            f"{self.median / 1e9:.1f} GFLOP/s over {len(self.seconds)} repeats, spread "
            f"{100 * self.spread:.0f}%")


def matmul_peak(n: int = 2048, dtype=jnp.float32, min_repeats: int = 10,
                min_seconds: float = 1.0, warmup: int = 3,
                clock: Callable[[], float] = time.perf_counter) -> PeakMeasurement:
  """Times an n x n x n matmul of random (not constant) matrices until both `min_repeats`
  repeats and `min_seconds` of timing are done, after `warmup` untimed runs."""
  ka, kb = jax.random.split(jax.random.PRNGKey(0))
  a = jax.random.normal(ka, (n, n), jnp.float32).astype(dtype)
  b = jax.random.normal(kb, (n, n), jnp.float32).astype(dtype)
  f = jax.jit(lambda x, y: x @ y)
  for _ in range(warmup):
    f(a, b).block_until_ready()
  seconds: List[float] = []
  while len(seconds) < min_repeats or sum(seconds) < min_seconds:
    t = clock()
    f(a, b).block_until_ready()
    seconds.append(clock() - t)
  return PeakMeasurement(jnp.dtype(dtype).name, n, seconds)


def measured_matmul_peak(n: int = 1024, repeats: int = 5, dtype=jnp.float32) -> float:
  """Best FLOP/s of a quick n x n x n matmul of random matrices on the first device (what
  training's logged MFU uses; `bench` measures longer and larger with `matmul_peak`)."""
  return matmul_peak(n, dtype, min_repeats=repeats, min_seconds=0.0, warmup=1).best


def torch_matmul_peak(n: int = 2048, repeats: int = 10):
  """Best FLOP/s of the same float32 matmul in PyTorch (None without torch), for comparison."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  gen = torch.Generator().manual_seed(0)
  a = torch.randn((n, n), generator=gen, dtype=torch.float32)
  b = torch.randn((n, n), generator=gen, dtype=torch.float32)
  a @ b
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - t)
  return 2 * n ** 3 / best


@functools.lru_cache(maxsize=None)
def device_peak_flops() -> float:
  """Peak FLOP/s of one device: the chip table for TPUs, measured otherwise."""
  dev = jax.devices()[0]
  figures = chips.per_device(dev) if dev.platform == "tpu" else None
  if figures:
    return figures[1]
  return measured_matmul_peak() / max(1, jax.local_device_count() if dev.platform == "cpu" else 1)
