"""The peak FLOP/s that MFU is stated against.

TPUs: the public per-chip bf16 figures of `xfer_t5x.runtime.chips`, per JAX device (a megacore
v4 or v5p device is a whole chip; a v4 device of a non-megacore topology is half of one). CPU (and
anything unknown): the best of a few dense float32 matmuls measured here, so MFU on a laptop
means something.
"""
import functools
import time

import jax
import jax.numpy as jnp

from xfer_t5x.runtime import chips


def measured_matmul_peak(n: int = 1024, repeats: int = 5, dtype=jnp.float32) -> float:
  """Best FLOP/s of an n x n x n matmul on the first device."""
  a = jnp.ones((n, n), dtype)
  f = jax.jit(lambda x, y: x @ y)
  f(a, a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    f(a, a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * n ** 3 / best


def torch_matmul_peak(n: int = 1024, repeats: int = 5):
  """Best FLOP/s of the same float32 matmul in PyTorch (None without torch), for comparison."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  a = torch.ones((n, n), dtype=torch.float32)
  a @ a
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    a @ a
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
