"""Multi-host start-up through JAX's own runtime (`jax.distributed`).

On a TPU VM every host of the slice runs the same command and `jax.distributed.initialize()`
finds the cluster itself (GCE metadata, or the GKE/queued-resource environment); it is called on
every TPU host, whatever the environment variables say. On CPU and GPU clusters (and the tests,
where local processes stand in for a pod) the coordinator address, process count and id come
from gin or the environment variables XFER_T5X_COORDINATOR, XFER_T5X_NUM_PROCESSES,
XFER_T5X_PROCESS_ID. A second call is harmless. The processes are logged once, at start.
"""
import logging
import os
from typing import Optional

import gin
import jax

_initialized = False


def tpu_chips_on_this_host() -> int:
  """TPU chips attached to this machine (PCI), as JAX's own Cloud TPU start-up counts them; 0
  where there are none or JAX_PLATFORMS rules the TPU out."""
  platforms = os.environ.get("JAX_PLATFORMS", "") or (jax.config.jax_platforms or "")
  if platforms and "tpu" not in platforms.split(","):
    return 0
  try:
    from jax._src import hardware_utils  # pylint: disable=g-import-not-at-top
    return int(hardware_utils.num_available_tpu_chips_and_device_id()[0])
  except Exception:  # pylint: disable=broad-except  (a JAX without the helper: no TPU known)
    return 0


def _log_processes():
  devices = jax.local_devices()
  logging.info("process %d of %d, %d local devices (%s)", jax.process_index(),
               jax.process_count(), len(devices), devices[0].device_kind if devices else "none")


@gin.configurable
def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, local_device_count: Optional[int] = None):
  """Joins the job's processes; a single process stays alone. Safe to call twice."""
  global _initialized
  if _initialized:
    return
  if jax.distributed.is_initialized():  # someone (a notebook, a launcher) did it already
    _initialized = True
    return
  coordinator_address = coordinator_address or os.environ.get("XFER_T5X_COORDINATOR")
  if num_processes is None and os.environ.get("XFER_T5X_NUM_PROCESSES"):
    num_processes = int(os.environ["XFER_T5X_NUM_PROCESSES"])
  if process_id is None and os.environ.get("XFER_T5X_PROCESS_ID"):
    process_id = int(os.environ["XFER_T5X_PROCESS_ID"])
  if coordinator_address:
    if num_processes is None or process_id is None:
      raise ValueError("distributed.initialize: a coordinator address needs num_processes and "
                       "process_id (gin or XFER_T5X_NUM_PROCESSES / XFER_T5X_PROCESS_ID)")
    if local_device_count:
      jax.config.update("jax_num_cpu_devices", local_device_count)
    if jax.config.jax_platforms and "cpu" in jax.config.jax_platforms:
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  elif tpu_chips_on_this_host() or os.environ.get("MEGASCALE_COORDINATOR_ADDRESS"):
    try:
      jax.distributed.initialize()
    except ValueError as e:
      # A lone TPU VM outside any cluster environment: JAX finds no coordinator. One process.
      logging.info("jax.distributed not started (%s): running as a single process", e)
  _initialized = True
  _log_processes()


def any_process(flag: bool) -> bool:
  """True on every process if `flag` is True on any (every process must call it)."""
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  return bool(np.any(multihost_utils.process_allgather(np.int32(bool(flag)))))


def sync(name: str) -> None:
  """Waits until every process reaches this point (a no-op with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)
