"""The same `xfer-t5x` command on GKE: a JobSet with one pod per TPU host, as MaxText's xpk runs.

  docs = gke.manifest("mnli-base", slice_, args, image="us-docker.pkg.dev/p/r/xfer_t5x:1")
  text = gke.to_yaml(docs)             # what `xfer-t5x launch --gke` applies with kubectl

One replicated job of `hosts` pods (parallelism = completions = hosts), placed by GKE's TPU node
selectors (accelerator and topology, `gke-spot` for spot slices) with `google.com/tpu` set to the
chips of one host, host networking as TPU pods need, and the JobSet's `failurePolicy.maxRestarts`
recreating every pod when one fails (a preempted node): `train` and `grid run` then resume from
their last checkpoints. The container runs `python -m xfer_t5x ARGS` with no shell in between, so
the arguments reach it as data. The image must hold the package (`pip install 'xfer_t5x[tpu]'`);
the user's own gin files and task modules travel in a ConfigMap mounted as the working folder.
"""
import os
from typing import Dict, List, Mapping, Sequence

import yaml

from xfer_t5x.launch.slices import Slice

JOB_DIR = "/xfer_t5x_job"


def manifest(name: str, s: Slice, args: Sequence[str], image: str, env: Sequence[str] = (),
             spot: bool = False, max_restarts: int = 3,
             files: Mapping[str, str] = None) -> List[Dict]:
  """The JobSet (and the ConfigMap of the user's files, first, when there are any).

  Args:
    name: the JobSet's name (a DNS label: lower case, digits, '-').
    s: the slice each replica runs on.
    args: the xfer-t5x subcommand and flags, with local files named as in the job folder.
    image: the container image that holds xfer_t5x.
    env: NAME=VALUE words set in the container.
    spot: place the pods on spot TPU nodes.
    max_restarts: times the whole JobSet is restarted after a pod fails.
    files: local path -> name in the job folder (remote.local_files' copies).
  """
  files = dict(files or {})
  docs = []
  container = {
      "name": "xfer-t5x",
      "image": image,
      "command": ["python", "-m", "xfer_t5x", *args],
      "workingDir": JOB_DIR,
      "securityContext": {"privileged": True},
      "ports": [{"containerPort": 8471}, {"containerPort": 8080}],
      "resources": {"requests": {"google.com/tpu": s.chips_per_host},
                    "limits": {"google.com/tpu": s.chips_per_host}},
  }
  if env:
    container["env"] = [dict(zip(("name", "value"), e.split("=", 1))) for e in env]
  pod = {
      "restartPolicy": "Never",
      "hostNetwork": True,
      "dnsPolicy": "ClusterFirstWithHostNet",
      "nodeSelector": {"cloud.google.com/gke-tpu-accelerator": s.gke_accelerator,
                       "cloud.google.com/gke-tpu-topology": s.topology},
      "containers": [container],
  }
  if spot:
    pod["nodeSelector"]["cloud.google.com/gke-spot"] = "true"
  if files:
    config_map = f"{name}-files"
    docs.append({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": config_map},
        "data": {dest: _read(local) for local, dest in files.items()},
    })
    pod["volumes"] = [{"name": "job-files", "configMap": {"name": config_map}}]
    container["volumeMounts"] = [{"name": "job-files", "mountPath": JOB_DIR}]
  else:
    container["volumeMounts"] = [{"name": "job-dir", "mountPath": JOB_DIR}]
    pod["volumes"] = [{"name": "job-dir", "emptyDir": {}}]
  docs.append({
      "apiVersion": "jobset.x-k8s.io/v1alpha2",
      "kind": "JobSet",
      "metadata": {"name": name, "annotations": {
          "alpha.jobset.sigs.k8s.io/exclusive-topology": "cloud.google.com/gke-nodepool"}},
      "spec": {
          "failurePolicy": {"maxRestarts": int(max_restarts)},
          "replicatedJobs": [{
              "name": "slice",
              "replicas": 1,
              "template": {"spec": {
                  "parallelism": s.hosts, "completions": s.hosts, "backoffLimit": 0,
                  "template": {"spec": pod}}},
          }],
      },
  })
  return docs


def _read(path: str) -> str:
  with open(path, encoding="utf-8") as f:
    return f.read()


def to_yaml(docs: List[Dict]) -> str:
  return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=100)


def write(docs: List[Dict], path: str) -> str:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write(to_yaml(docs))
  return path


def apply_command(path: str, context: str = "") -> List[str]:
  return ["kubectl", *([f"--context={context}"] if context else []), "apply", "-f", path]

