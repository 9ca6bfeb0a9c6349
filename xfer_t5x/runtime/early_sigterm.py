"""A SIGTERM that arrives while `xfer-t5x train` is still importing and setting up, before the
train loop's own handler (`checkpoints.PreemptionFlag`) is installed, is remembered here, so the
run exits cleanly before its first step instead of dying with status 143.

Light on purpose (no JAX): the CLI installs it first thing for the train command.
"""
import signal
import threading

_RECEIVED = threading.Event()


def install() -> None:
  """Remembers SIGTERM from now on (main thread only; elsewhere a no-op)."""
  if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, lambda signum, frame: _RECEIVED.set())


def received() -> bool:
  return _RECEIVED.is_set()
