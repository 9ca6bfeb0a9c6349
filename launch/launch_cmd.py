"""`xfer-t5x launch`: the same gin-configured command on every host of a Cloud TPU slice.

  # fine-tune mT5-base on MNLI on a v5p-16 slice (2 hosts), from a laptop
  xfer-t5x launch --tpu mnli-base --zone us-east5-a --project my-proj --accelerator v5p-16 \\
    --spot --queued -- train --gin_file models/mt5_base.gin --gin_file runs/finetune.gin \\
    --gin_file partitioning/1d.gin --gin.MODEL_DIR=gs://my-bucket/mt5_base_mnli \\
    --gin.MIXTURE_OR_TASK_NAME=mnli --gin.TRAIN_STEPS=1020000 \\
    --gin.INITIAL_CHECKPOINT=gs://t5-data/pretrained_models/t5x/mt5_base/checkpoint_1000000

  # the same on GKE: a JobSet with one pod per host (--dry_run: print the manifest only)
  xfer-t5x launch --gke --name mnli-base --accelerator v5p-16 --image IMAGE -- train ...

Everything after `--` is the xfer-t5x command (train, eval, grid run, ...), exactly as it would be
typed on one host. Cloud TPU VMs: the slice is created (or reused, or queued with --queued), the
wheel of this checkout is installed on every worker with the `[tpu]` extra and the pinned
constraints, the user's own gin files and `--module` files are copied, and the command runs on all
workers at once; each worker's output is printed with a `[worker i]` prefix and saved under
--log_dir, and its exit status reported. A preempted slice is recreated and the command launched
again (--max_restarts), resuming from its last checkpoint. A multi-host slice needs a gs:// model
dir (every host reads and writes the same checkpoints); a local one is refused.
Exit status: 0 when every worker succeeded, 1 when one failed, 2 for bad input.
"""
import re
import sys

from xfer_t5x.launch import gcloud
from xfer_t5x.launch import gke
from xfer_t5x.launch import launcher
from xfer_t5x.launch import remote
from xfer_t5x.launch import slices

# Bindings that name where a run writes (train, eval, grid).
_OUTPUT_BINDINGS = ("MODEL_DIR", "EVAL_OUTPUT_DIR", "experiment.root_dir", "train.model_dir",
                    "evaluate.output_dir")


def add_arguments(parser):
  where = parser.add_argument_group("the slice")
  where.add_argument("--accelerator", required=True,
                     help="accelerator type: v5p-16, v4-128, v5e-256 (v5litepod-256), v6e-64")
  where.add_argument("--tpu", "--name", dest="name", default="",
                     help="the TPU VM (or JobSet) name; created if absent")
  where.add_argument("--zone", default="", help="Cloud TPU zone (TPU VMs)")
  where.add_argument("--project", default="", help="Google Cloud project (default: gcloud's)")
  where.add_argument("--queued", action="store_true",
                     help="obtain the slice through a queued resource (<name>-qr)")
  kind = where.add_mutually_exclusive_group()
  kind.add_argument("--spot", action="store_true", help="a spot (preemptible) slice")
  kind.add_argument("--reserved", action="store_true", help="from the project's reservation")
  where.add_argument("--runtime_version", default="",
                     help="TPU VM software version (default: the generation's JAX image)")
  job = parser.add_argument_group("the job")
  job.add_argument("--wheel", default="", help="install this wheel (default: build this checkout's)")
  job.add_argument("--constraints", default="", help="pin the install (default: constraints.txt)")
  job.add_argument("--skip_install", action="store_true",
                   help="the workers have xfer_t5x already: only copy files and run")
  job.add_argument("--python", default="", help="the workers' Python (default: the job's venv)")
  job.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="set in the command's environment on every worker (repeatable)")
  job.add_argument("--log_dir", default="", help="worker logs and the manifest "
                   "(default: launch_logs/<name>)")
  job.add_argument("--max_restarts", type=int, default=3,
                   help="relaunches after a preemption (default 3)")
  job.add_argument("--poll_seconds", type=float, default=30.0,
                   help="how often to look at a slice being created or queued")
  job.add_argument("--dry_run", action="store_true",
                   help="print every command (and the manifest) instead of running it")
  k8s = parser.add_argument_group("GKE")
  k8s.add_argument("--gke", action="store_true", help="run as a JobSet on a GKE cluster")
  k8s.add_argument("--image", default="", help="GKE: the container image holding xfer_t5x")
  k8s.add_argument("--kube_context", default="", help="GKE: kubectl's --context")
  parser.add_argument("command", nargs="*", help="after --: the xfer-t5x command to run")


class LaunchUsageError(ValueError):
  """Bad launch flags (the message says which and how to fix them)."""


def _binding_value(args, name):
  for a in args:
    m = re.fullmatch(rf"--gin\.{re.escape(name)}=(.*)", a, flags=re.S)
    if m:
      return m.group(1).strip().strip("'\"")
  return None


def check_output_dirs(args, s: slices.Slice) -> None:
  """A multi-host slice needs the run's output on a shared store (gs://): refuse a local one."""
  if not s.multi_host:
    return
  for name in _OUTPUT_BINDINGS:
    value = _binding_value(args, name)
    if value and "://" not in value:
      raise LaunchUsageError(
          f"--gin.{name}={value} is a local path, but {s.accelerator_type} has {s.hosts} hosts: "
          "each would write its own copy and none would see the others' checkpoints. Give a "
          f"gs:// path (e.g. --gin.{name}=gs://my-bucket/...), as T5X multi-host runs do.")


def options(args) -> launcher.Options:
  command = list(args.command)
  if not command:
    raise LaunchUsageError("give the xfer-t5x command after --, e.g. -- train --gin_file ...")
  if command[0] in ("launch",):
    raise LaunchUsageError("the command after -- cannot be `launch` itself")
  if not args.name:
    raise LaunchUsageError("--tpu NAME (the slice's, or with --gke the JobSet's, name)")
  if not args.gke and not args.zone:
    raise LaunchUsageError("--zone (the Cloud TPU zone, e.g. us-east5-a)")
  if args.gke and not args.image:
    raise LaunchUsageError("--gke needs --image (a container image with xfer_t5x installed)")
  for e in args.env:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", e, flags=re.S):
      raise LaunchUsageError(f"--env {e!r}: write NAME=VALUE")
  try:
    s = slices.parse(args.accelerator, args.runtime_version)
  except ValueError as e:
    raise LaunchUsageError(f"--accelerator: {e}") from None
  check_output_dirs(command, s)
  target = gcloud.Target(name=args.name, zone=args.zone, project=args.project,
                         queued=args.queued,
                         provisioning="spot" if args.spot else "reserved" if args.reserved else "")
  return launcher.Options(
      target=target, slice=s, args=command, log_dir=args.log_dir or f"launch_logs/{args.name}",
      wheel=args.wheel, constraints=args.constraints, env=list(args.env), python=args.python,
      skip_install=args.skip_install, max_restarts=args.max_restarts,
      poll_seconds=args.poll_seconds, dry_run=args.dry_run)


def _run_gke(args, o: launcher.Options) -> int:
  files = remote.local_files(o.args)
  docs = gke.manifest(o.target.name, o.slice, files.args, args.image, env=o.env,
                      spot=args.spot, max_restarts=o.max_restarts, files=files.copies)
  path = gke.write(docs, f"{o.log_dir}/jobset.yaml")
  shell = launcher.Shell(o.dry_run)
  if o.dry_run:
    print(gke.to_yaml(docs), end="")
  shell.say(f"# manifest written to {path}")
  shell.run(gke.apply_command(path, args.kube_context))
  if not o.dry_run:
    shell.say(f"JobSet {o.target.name}: {o.slice.hosts} pod(s) on {o.slice.accelerator_type}; "
              f"follow with `kubectl logs -f -l jobset.sigs.k8s.io/jobset-name={o.target.name}`")
  return 0


def run(args) -> int:
  try:
    o = options(args)
  except (LaunchUsageError, remote.LaunchInputError) as e:
    print(f"xfer-t5x launch: {e}", file=sys.stderr)
    return 2
  try:
    if args.gke:
      return _run_gke(args, o)
    result = launcher.launch(o)
  except launcher.LaunchError as e:
    print(f"xfer-t5x launch: {e}", file=sys.stderr)
    return 1
  return 0 if result.ok else 1
