"""The peak FLOP/s that MFU is stated against.

Accelerators: public per-chip bf16 figures (RESEARCH.md). CPU (and anything unknown): the best
of a few dense float32 matmuls measured here, so MFU on a laptop means something.
"""
import functools
import time

import jax
import jax.numpy as jnp

# device_kind substring -> peak FLOP/s per JAX device
TPU_PEAKS = {
    "v4": 275e12 / 2,  # a v4 chip is 2 devices (one per TensorCore) when not in megacore mode
    "v5 lite": 197e12, "v5e": 197e12, "v5p": 459e12, "v6": 918e12, "v3": 123e12 / 2,
}


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
  """Peak FLOP/s of one device: table for TPUs, measured otherwise."""
  dev = jax.devices()[0]
  kind = getattr(dev, "device_kind", "").lower()
  if dev.platform == "tpu":
    if "v4" in kind and "megacore" in kind:
      return 275e12
    for key, value in TPU_PEAKS.items():
      if key in kind:
        return value
  return measured_matmul_peak() / max(1, jax.local_device_count() if dev.platform == "cpu" else 1)
