"""Launching an `xfer-t5x` command on every worker of a Cloud TPU VM slice, and keeping it going.

  result = launcher.launch(options)

The steps, each a `gcloud` command (gcloud.py) that `--dry_run` prints instead of running:
1. the slice: reused when it is READY (or ACTIVE, for a queued resource); created when absent;
   waited for while it is being created or queued; recreated when it was preempted;
2. the software: the wheel built from this checkout (or `--wheel`), the pinned constraints and
   the user's own gin files and task modules copied to every worker, then installed in a venv
   with the `[tpu]` extra (remote.py);
3. the command: the same `xfer-t5x ...` on all workers at once, one `ssh --worker=i` each, every
   line printed with a `[worker i]` prefix and saved to `<log_dir>/worker_<i>.log`;
4. the outcome: each worker's exit status. When a worker failed because the slice was preempted
   (its state PREEMPTED, the queued resource SUSPENDED or gone), the slice is recreated and the
   command launched again, up to `max_restarts` times: `train` and `grid run` resume from their
   last checkpoints. Any other failure is reported per worker and ends the launch.
"""
import dataclasses
import os
import pathlib
import shlex
import subprocess
import sys
import threading
import time
from typing import List, Optional, Sequence, TextIO

from xfer_t5x.launch import gcloud
from xfer_t5x.launch import remote
from xfer_t5x.launch.slices import Slice

READY = {"READY", "ACTIVE"}
GONE = {"PREEMPTED", "TERMINATED", "SUSPENDED", "FAILED", "NOT_FOUND", "DELETING"}


class LaunchError(RuntimeError):
  """The slice could not be obtained, or the launch could not go on (message says why)."""


@dataclasses.dataclass
class Options:
  target: gcloud.Target
  slice: Slice
  args: List[str]                      # the xfer-t5x subcommand and its flags
  log_dir: str
  wheel: str = ""                      # "" = build one from this checkout
  constraints: str = ""                # "" = this checkout's constraints.txt
  env: Sequence[str] = ()
  python: str = ""                     # the workers' interpreter ("" = the job's venv)
  skip_install: bool = False
  max_restarts: int = 3
  poll_seconds: float = 30.0
  ready_timeout: float = 3 * 3600.0
  dry_run: bool = False


@dataclasses.dataclass
class Result:
  exit_codes: List[int]
  restarts: int = 0

  @property
  def ok(self) -> bool:
    return bool(self.exit_codes) and all(c == 0 for c in self.exit_codes)


def checkout_root() -> Optional[pathlib.Path]:
  """This checkout's folder (where setup.py is), or None for an installed package."""
  import xfer_t5x  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(xfer_t5x.__file__).resolve().parents[1]
  return root if (root / "setup.py").is_file() else None


class Shell:
  """Runs gcloud's argument lists, or with `dry_run` prints them (as `$ words`) and succeeds."""

  def __init__(self, dry_run: bool, out: Optional[TextIO] = None):
    self.dry_run, self.out = dry_run, out or sys.stdout

  def say(self, text: str) -> None:
    print(text, file=self.out, flush=True)

  def run(self, words: List[str], check: bool = True) -> subprocess.CompletedProcess:
    self.say("$ " + shlex.join(words))
    if self.dry_run:
      return subprocess.CompletedProcess(words, 0, "", "")
    proc = subprocess.run(words, capture_output=True, text=True)
    if check and proc.returncode != 0:
      raise LaunchError(f"`{shlex.join(words[:5])} ...` failed (exit {proc.returncode}): "
                        f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc


def slice_state(t: gcloud.Target) -> str:
  """READY / ACTIVE / CREATING / WAITING_FOR_RESOURCES / PREEMPTED / ... or NOT_FOUND."""
  words = gcloud.describe_queued_state(t) if t.queued else gcloud.describe_state(t)
  proc = subprocess.run(words, capture_output=True, text=True)
  if proc.returncode != 0:
    return "NOT_FOUND"
  return (proc.stdout.strip().splitlines() or ["UNKNOWN"])[-1].strip().upper()


def ensure_slice(shell: Shell, o: Options, recreate: bool = False) -> None:
  """The slice READY: reused, created or (`recreate`) deleted and created again; waits."""
  t = o.target
  if o.dry_run:
    shell.say(f"# create the slice unless {t.name} is already READY:")
    shell.run(gcloud.create(t, o.slice))
    return
  state = slice_state(t)
  if recreate or (state in GONE and state != "NOT_FOUND"):
    shell.say(f"{t.name} is {state}: deleting it to create it again")
    shell.run(gcloud.delete(t), check=False)
    state = "NOT_FOUND"
  if state == "NOT_FOUND":
    shell.run(gcloud.create(t, o.slice))
  deadline = time.time() + o.ready_timeout
  while True:
    state = slice_state(t)
    if state in READY:
      shell.say(f"{t.name}: {state} ({o.slice.accelerator_type}, {o.slice.hosts} host(s))")
      return
    if state in ("FAILED",):
      raise LaunchError(f"{t.name}: the slice request FAILED; see `gcloud compute tpus "
                        "queued-resources describe` for the reason")
    if time.time() > deadline:
      raise LaunchError(f"{t.name}: not ready after {o.ready_timeout:.0f}s (state {state})")
    shell.say(f"{t.name}: {state}; waiting")
    time.sleep(o.poll_seconds)


def build_wheel(shell: Shell, o: Options) -> str:
  """The wheel to install: `--wheel`, else one built from this checkout into the log dir."""
  if o.wheel:
    return o.wheel
  root = checkout_root()
  if root is None:
    raise LaunchError("no checkout to build a wheel from (an installed package): pass --wheel")
  dist = os.path.join(o.log_dir, "dist")
  shell.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist,
             str(root)])
  if o.dry_run:
    return os.path.join(dist, "xfer_t5x-<version>-py3-none-any.whl")
  wheels = sorted(pathlib.Path(dist).glob("xfer_t5x-*.whl"), key=lambda p: p.stat().st_mtime)
  if not wheels:
    raise LaunchError(f"pip wheel wrote no xfer_t5x wheel into {dist}")
  return str(wheels[-1])


def payload(shell: Shell, o: Options, files: remote.Files) -> List[str]:
  """The local files every worker gets: the wheel (built once per launch) and the constraints
  unless --skip_install, then the user's own files."""
  copies = list(files.copies)
  if o.skip_install:
    return copies
  root = checkout_root()
  constraints = o.constraints or (str(root / "constraints.txt") if root else "")
  if not constraints:
    raise LaunchError("no constraints.txt to pin the install with: pass --constraints")
  return [build_wheel(shell, o), constraints] + copies


def install(shell: Shell, o: Options, copies: List[str]) -> None:
  """Copies `payload`'s files to every worker and installs the wheel (its first file)."""
  t = o.target
  shell.run(gcloud.ssh(t, remote.mkdir_command()))
  if copies:
    shell.run(gcloud.scp(t, copies, remote.JOB_DIR.replace("$HOME/", "")))  # home-relative
  if not o.skip_install:
    shell.run(gcloud.ssh(t, remote.install_command(os.path.basename(copies[0]))))


def _stream(proc: subprocess.Popen, prefix: str, log: TextIO, out: TextIO, lock: threading.Lock):
  for line in proc.stdout:
    log.write(line)
    log.flush()
    with lock:
      out.write(f"{prefix}{line}" if line.endswith("\n") else f"{prefix}{line}\n")
      out.flush()


def run_on_workers(shell: Shell, o: Options, command: str, attempt: int) -> List[int]:
  """The command on every worker at once; each worker's exit status."""
  t = o.target
  if o.dry_run:
    for w in range(o.slice.hosts):
      shell.run(gcloud.ssh(t, command, worker=w))
    return [0] * o.slice.hosts
  os.makedirs(o.log_dir, exist_ok=True)
  procs, threads, logs, lock = [], [], [], threading.Lock()
  for w in range(o.slice.hosts):
    words = gcloud.ssh(t, command, worker=w)
    if w == 0:
      shell.say("$ " + shlex.join(words) + f"  (and --worker=1..{o.slice.hosts - 1})"
                if o.slice.hosts > 1 else "$ " + shlex.join(words))
    suffix = f".attempt{attempt}" if attempt else ""
    log = open(os.path.join(o.log_dir, f"worker_{w}{suffix}.log"), "w", encoding="utf-8")
    proc = subprocess.Popen(words, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1)
    th = threading.Thread(target=_stream, args=(proc, f"[worker {w}] ", log, shell.out, lock),
                          daemon=True)
    th.start()
    procs.append(proc)
    threads.append(th)
    logs.append(log)
  codes = [p.wait() for p in procs]
  for th, log in zip(threads, logs):
    th.join()
    log.close()
  return codes


def report(shell: Shell, o: Options, codes: List[int]) -> None:
  shell.say("exit status per worker: " + ", ".join(
      f"worker {w}: {c}" + ("" if c == 0 else " FAILED") for w, c in enumerate(codes)) +
            f" (logs in {o.log_dir}/worker_<i>.log)")


def launch(o: Options, out: Optional[TextIO] = None) -> Result:
  """Runs the launch (see the module docstring); returns each worker's exit status."""
  shell = Shell(o.dry_run, out)
  files = remote.local_files(o.args)
  command = remote.run_command(files.args, o.env, o.python)
  copies = payload(shell, o, files)
  ensure_slice(shell, o)
  install(shell, o, copies)
  restarts = 0
  while True:
    codes = run_on_workers(shell, o, command, restarts)
    if o.dry_run or all(c == 0 for c in codes):
      if not o.dry_run:
        report(shell, o, codes)
      return Result(codes, restarts)
    state = "UNKNOWN" if o.dry_run else slice_state(o.target)
    if state not in GONE:
      report(shell, o, codes)
      return Result(codes, restarts)
    if restarts >= o.max_restarts:
      report(shell, o, codes)
      shell.say(f"{o.target.name} was {state} again; no restarts left (--max_restarts "
                f"{o.max_restarts})")
      return Result(codes, restarts)
    restarts += 1
    shell.say(f"{o.target.name} was {state} during the run: recreating it and launching again "
              f"(restart {restarts} of {o.max_restarts}); the run resumes from its last "
              "checkpoint")
    ensure_slice(shell, o, recreate=True)
    install(shell, o, copies)
