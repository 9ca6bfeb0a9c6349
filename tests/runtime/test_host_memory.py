"""The host allocator setting of XLA:CPU runs (runtime/host_memory.py): when it applies, and that
it does what it is for, a freed large block reused without faulting its pages in again."""
import os
import subprocess
import sys
import textwrap

import pytest

from xfer_t5x.runtime import host_memory

# A child process: from a second thread (as XLA:CPU's executor threads do) malloc, touch and free
# a 256 MiB block, then count the minor page faults of doing it again (a fresh mmap faults in
# all 65,536 of its 4 KiB pages).
_CHILD = textwrap.dedent("""
    import ctypes, resource, threading
    from xfer_t5x.runtime import host_memory
    applied = host_memory.configure()
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    n, faults = 256 * 2**20, []
    def touch():
      block = libc.malloc(n)
      ctypes.memset(block, 1, n)
      libc.free(block)
    def work():
      touch()
      before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
      touch()
      faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    thread = threading.Thread(target=work); thread.start(); thread.join()
    print(applied, faults[0])
""")


def _transparent_huge_pages_always():
  try:
    with open("/sys/kernel/mm/transparent_hugepage/enabled", encoding="ascii") as f:
      return "[always]" in f.read()
  except OSError:
    return False


def _faults(mode):
  env = dict(os.environ, XFER_T5X_HOST_MALLOC=mode, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True,
                       check=True, timeout=120).stdout.split()
  return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_reuse_keeps_a_freed_block_and_system_faults_it_in_again():
  applied, reuse_faults = _faults("reuse")
  not_applied, system_faults = _faults("system")
  assert applied and not not_applied
  if not _transparent_huge_pages_always():  # with 2 MiB pages a fresh mapping faults little
    assert system_faults > 30000, system_faults  # glibc's default: a fresh mapping every time
  assert reuse_faults < 1000, reuse_faults


def test_auto_applies_on_cpu_only():
  assert host_memory.runs_on_cpu({"JAX_PLATFORMS": "cpu"})
  assert not host_memory.runs_on_cpu({"JAX_PLATFORMS": "tpu"})
  assert not host_memory.runs_on_cpu({"JAX_PLATFORMS": "cuda,cpu"})
  assert not host_memory.configure({"XFER_T5X_HOST_MALLOC": "auto", "JAX_PLATFORMS": "tpu"})
  assert not host_memory.configure({"XFER_T5X_HOST_MALLOC": "system", "JAX_PLATFORMS": "cpu"})


def test_a_misspelled_mode_is_a_clear_error(tmp_path):
  env = dict(os.environ, XFER_T5X_HOST_MALLOC="tcmalloc")
  proc = subprocess.run([sys.executable, "-m", "xfer_t5x", "tasks", "--help"], env=env,
                        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
  assert proc.returncode == 2
  assert "XFER_T5X_HOST_MALLOC='tcmalloc'" in proc.stderr and "auto, reuse, system" in proc.stderr
