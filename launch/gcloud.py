"""The `gcloud compute tpus` commands the launcher runs, as argument lists (never shell strings).

Each function returns the words of one command; `launcher.py` runs them (or prints them with
`--dry_run`). The one string that reaches a shell is a TPU VM's `--command`, built by
`remote.py` with every word quoted.
"""
import dataclasses
from typing import List, Optional

from xfer_t5x.launch.slices import Slice


@dataclasses.dataclass(frozen=True)
class Target:
  """Where the slice lives and how it is obtained."""
  name: str                         # the TPU VM (node) name
  zone: str
  project: str = ""
  queued: bool = False              # through a queued resource (named `name`-qr)
  provisioning: str = ""            # "", "spot" or "reserved"

  @property
  def queued_name(self) -> str:
    return f"{self.name}-qr"

  def where(self) -> List[str]:
    out = [f"--zone={self.zone}"]
    if self.project:
      out.append(f"--project={self.project}")
    return out


GCLOUD = "gcloud"
TPU_VM = [GCLOUD, "compute", "tpus", "tpu-vm"]
QUEUED = [GCLOUD, "compute", "tpus", "queued-resources"]


def describe_state(t: Target) -> List[str]:
  """Prints the node's state (READY, CREATING, PREEMPTED, ...); fails if there is no node."""
  return TPU_VM + ["describe", t.name, *t.where(), "--format=value(state)"]


def describe_queued_state(t: Target) -> List[str]:
  """Prints the queued resource's state (WAITING_FOR_RESOURCES, ACTIVE, SUSPENDED, FAILED, ...)."""
  return QUEUED + ["describe", t.queued_name, *t.where(), "--format=value(state.state)"]


def _provisioning(t: Target) -> List[str]:
  return {"spot": ["--spot"], "reserved": ["--reserved"], "": []}[t.provisioning]


def create(t: Target, s: Slice) -> List[str]:
  if t.queued:
    return QUEUED + ["create", t.queued_name, f"--node-id={t.name}", *t.where(),
                     f"--accelerator-type={s.accelerator_type}",
                     f"--runtime-version={s.runtime_version}", *_provisioning(t)]
  return TPU_VM + ["create", t.name, *t.where(), f"--accelerator-type={s.accelerator_type}",
                   f"--version={s.runtime_version}", *_provisioning(t)]


def delete(t: Target) -> List[str]:
  if t.queued:
    return QUEUED + ["delete", t.queued_name, *t.where(), "--force", "--quiet"]
  return TPU_VM + ["delete", t.name, *t.where(), "--quiet"]


def scp(t: Target, local: List[str], remote_dir: str) -> List[str]:
  """Copies local files into `remote_dir` on every worker."""
  return TPU_VM + ["scp", *local, f"{t.name}:{remote_dir}/", "--worker=all", *t.where()]


def ssh(t: Target, command: str, worker: Optional[int] = None) -> List[str]:
  """Runs `command` (one shell string, built by remote.py) on one worker, or on all."""
  return TPU_VM + ["ssh", t.name, *t.where(),
                   f"--worker={'all' if worker is None else worker}", f"--command={command}"]
