"""Multi-host start-up through JAX's own runtime (`jax.distributed`).

On a TPU slice every host runs the same command and `jax.distributed.initialize()` needs no
arguments. On CPU (tests, several local processes standing in for a pod) the coordinator
address, process count and id come from gin or the environment variables
XFER_T5X_COORDINATOR, XFER_T5X_NUM_PROCESSES, XFER_T5X_PROCESS_ID.
"""
import logging
import os
from typing import Optional

import gin
import jax

_initialized = False


@gin.configurable
def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, local_device_count: Optional[int] = None):
  """Joins the job's processes; a no-op for a single process. Safe to call twice."""
  global _initialized
  if _initialized:
    return
  coordinator_address = coordinator_address or os.environ.get("XFER_T5X_COORDINATOR")
  if num_processes is None and os.environ.get("XFER_T5X_NUM_PROCESSES"):
    num_processes = int(os.environ["XFER_T5X_NUM_PROCESSES"])
  if process_id is None and os.environ.get("XFER_T5X_PROCESS_ID"):
    process_id = int(os.environ["XFER_T5X_PROCESS_ID"])
  on_tpu_pod = bool(os.environ.get("TPU_WORKER_HOSTNAMES") or os.environ.get("MEGASCALE_COORDINATOR_ADDRESS"))
  if coordinator_address:
    if num_processes is None or process_id is None:
      raise ValueError("distributed.initialize: a coordinator address needs num_processes and "
                       "process_id (gin or XFER_T5X_NUM_PROCESSES / XFER_T5X_PROCESS_ID)")
    if local_device_count:
      jax.config.update("jax_num_cpu_devices", local_device_count)
    kwargs = {}
    if jax.config.jax_platforms and "cpu" in jax.config.jax_platforms:
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)
    logging.info("joined %d processes as process %d", num_processes, process_id)
  elif on_tpu_pod:
    jax.distributed.initialize()
  _initialized = True
