"""The host allocator for XLA:CPU runs: freed memory kept for reuse instead of handed back.

XLA:CPU allocates each execution's temporaries as one block (about 700 MB for `bench`'s train
step) and frees it when the step ends. glibc serves a block that large with a fresh mmap, from
the executor threads' arenas even when told not to, so every step page-faults its whole working
set in again: on the bench config 220,000 minor faults and 0.44 CPU-s of kernel time per step,
about 18% of its wall time (benchmarks/README.md). With one arena, no mmap and no trimming, the
block is reused from the heap and a step faults nothing.

`xfer-t5x` applies this before anything else when the run is on CPU (`configure`, called by
`cli.main`), so that `train`, `bench` and every other command run alike. Set
XFER_T5X_HOST_MALLOC=system to leave glibc's defaults, =reuse to force the setting on an
accelerator host too; the default `auto` applies it unless a TPU or GPU is attached or
JAX_PLATFORMS names another platform. The costs: the process keeps its peak heap until it
exits (freed memory is reused, not returned to the system), and threads that allocate a lot at
once wait on the one arena (tf.data's input pipeline delivered about 13% less here).
"""
import ctypes
import glob
import os
from typing import Dict

ENV = "XFER_T5X_HOST_MALLOC"
MODES = ("auto", "reuse", "system")
# glibc's mallopt parameters (malloc.h) and the values set.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_NEVER_TRIM = 2**31 - 1
SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM))
# The same as GLIBC_TUNABLES, for a child process that is not xfer_t5x (benchmark peers).
TUNABLES = ("glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:"
            f"glibc.malloc.trim_threshold={_NEVER_TRIM}")
_ACCELERATOR_NODES = ("/dev/accel*", "/dev/vfio/[0-9]*", "/dev/nvidia[0-9]*")


def _mode(env: Dict[str, str]) -> str:
  mode = env.get(ENV, "auto").strip().lower() or "auto"
  if mode not in MODES:
    raise ValueError(f"{ENV}={env.get(ENV)!r}: choose one of {', '.join(MODES)} (auto: reuse "
                     "freed memory when the run is on CPU)")
  return mode


def runs_on_cpu(env: Dict[str, str]) -> bool:
  """Whether JAX will pick the CPU: JAX_PLATFORMS says only cpu, or no TPU or GPU is attached."""
  platforms = [p.strip() for p in env.get("JAX_PLATFORMS", "").split(",") if p.strip()]
  if platforms:
    return platforms == ["cpu"]
  return not any(glob.glob(pattern) for pattern in _ACCELERATOR_NODES)


def applies(env: Dict[str, str]) -> bool:
  """Whether the mode (XFER_T5X_HOST_MALLOC in `env`) asks for the reuse setting."""
  mode = _mode(env)
  return mode == "reuse" or (mode == "auto" and runs_on_cpu(env))


def configure(env=None) -> bool:
  """Applies the reuse setting when the mode asks for it; True when it was applied. Call it
  before the first thread starts (new threads then share one arena)."""
  return applies(os.environ if env is None else env) and keep_freed_memory()


def keep_freed_memory() -> bool:
  """One malloc arena, no mmap, no trimming (glibc only; elsewhere a no-op returning False)."""
  try:
    mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
  except (OSError, AttributeError):
    return False
  mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
  return all(mallopt(param, value) == 1 for param, value in SETTINGS)
