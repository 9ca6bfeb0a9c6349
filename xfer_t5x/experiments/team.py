"""The grid on several processes (the hosts of a TPU slice): every phase run by all of them
together, the bookkeeping by process 0 alone.

`grid run` started on every host (the same command, as `xfer-t5x launch` starts it) joins the
processes through `jax.distributed`. Process 0 is the leader: it holds the grid's lock, reads and
writes the state DB and the results database, and decides what runs next; the others follow. The
leader tells the followers each decision (`{"run": phase_id}` or `{"stop": ...}`) through one
small broadcast (a collective, so it doubles as the point where they wait), and every process
then runs that phase itself (training and evaluation are multi-process already: one model dir,
process 0 writing the files). After each phase the processes tell each other whether it failed
anywhere, so the leader records a failure on any host and all of them go on with the same next
phase. A follower never opens the state or results databases.
"""
import json
import logging
from typing import Optional, Sequence

import numpy as np

from xfer_t5x.experiments import phases as phases_lib
from xfer_t5x.experiments.experiment import Phase, Plan
from xfer_t5x.runtime import distributed

_MESSAGE_BYTES = 4096


def processes() -> int:
  import jax  # pylint: disable=g-import-not-at-top
  return jax.process_count()


def is_leader() -> bool:
  import jax  # pylint: disable=g-import-not-at-top
  return jax.process_index() == 0


def _broadcast(message: Optional[dict]) -> dict:
  """The leader's message on every process (the others pass None); a collective."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  buf = np.zeros(_MESSAGE_BYTES, np.uint8)
  if message is not None:
    data = json.dumps(message).encode()
    if len(data) > _MESSAGE_BYTES:
      raise ValueError(f"grid message of {len(data)} bytes is over {_MESSAGE_BYTES}")
    buf[:len(data)] = np.frombuffer(data, np.uint8)
  out = np.asarray(multihost_utils.broadcast_one_to_all(buf))
  return json.loads(bytes(out[out != 0]).decode())


def run_together(phase: Phase, search_paths: Sequence[str] = ()) -> phases_lib.Outcome:
  """Runs `phase` here; with several processes, raises on every one if it failed on any."""
  error = None
  outcome = None
  try:
    outcome = phases_lib.run_phase(phase, search_paths)
  except Exception as e:  # pylint: disable=broad-except
    error = e
  failed_anywhere = distributed.any_process(error is not None) if processes() > 1 else False
  if error is not None:
    raise error
  if failed_anywhere:
    raise phases_lib.PhaseError(f"phase {phase.phase_id} failed on another process (its log "
                                "says why)")
  return outcome


class Leader:
  """Process 0's side: tells the followers what to run (a no-op with one process)."""

  def __init__(self):
    self.multi = processes() > 1

  def run(self, phase: Phase, search_paths: Sequence[str] = ()) -> phases_lib.Outcome:
    if self.multi:
      _broadcast({"run": phase.phase_id})
    return run_together(phase, search_paths)

  def stop(self, why: str = "done") -> None:
    if self.multi:
      _broadcast({"stop": why})
      self.multi = False


def follow(plan: Plan, search_paths: Sequence[str] = (), log=print) -> int:
  """A follower's whole `grid run`: runs what the leader says until it says stop; returns the
  number of phases run."""
  import jax  # pylint: disable=g-import-not-at-top
  ran = 0
  while True:
    message = _broadcast(None)
    if "stop" in message:
      log(f"process {jax.process_index()}: the grid's leader (process 0) stopped "
          f"({message['stop']}) after {ran} phases run together")
      return ran
    phase = plan.phase(message["run"])
    try:
      run_together(phase, search_paths)
    except Exception as e:  # pylint: disable=broad-except  (the leader records it)
      logging.error("phase %s failed here or on another process: %s", phase.phase_id, e)
    ran += 1
