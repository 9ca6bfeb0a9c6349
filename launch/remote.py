"""What runs on each TPU VM worker: the install, and the `xfer-t5x` command itself.

Every word that comes from the user (flag values, file names) is quoted with `shlex.quote`, one
word at a time, so no value can end the command or start another: `--gin.MODEL_DIR='gs://b/x;
rm -rf ~'` reaches the remote `xfer-t5x` as that one argument. Only this module's own constant
text (`cd`, `&&`, `$HOME`) is shell syntax.

On the workers everything lives in `$HOME/xfer_t5x_job` (the wheel, constraints.txt, the user's
own gin files and task modules) and a venv `$HOME/xfer_t5x_venv`; the command runs from the job
folder, so a copied gin file is found by its bare name and a copied `--module` is importable.
"""
import dataclasses
import os
import shlex
from typing import Dict, List, Sequence, Tuple

JOB_DIR = "$HOME/xfer_t5x_job"
VENV = "$HOME/xfer_t5x_venv"


def install_command(wheel_name: str) -> str:
  """Creates the venv (once) and installs the wheel with the `[tpu]` extra, pinned."""
  wheel = shlex.quote(f"./{wheel_name}[tpu]")
  return (f'cd "{JOB_DIR}" && (test -x "{VENV}/bin/python" || python3 -m venv "{VENV}") && '
          f'"{VENV}/bin/pip" install --quiet -c constraints.txt {wheel}')


def run_command(args: Sequence[str], env: Sequence[str] = (), python: str = "") -> str:
  """`xfer-t5x ARGS` in the job folder, with `env` (NAME=VALUE words) set; `python`: another
  interpreter on the workers (default: the job's venv)."""
  interpreter = shlex.quote(python) if python else f'"{VENV}/bin/python"'
  words = [shlex.quote(w) for w in env]
  prefix = f"env {' '.join(words)} " if words else ""
  return (f'cd "{JOB_DIR}" && exec {prefix}{interpreter} -m xfer_t5x '
          + " ".join(shlex.quote(a) for a in args))


def mkdir_command() -> str:
  return f'mkdir -p "{JOB_DIR}"'


@dataclasses.dataclass
class Files:
  """The user's local files a command names, to copy, and the command rewritten to name them
  as the workers will see them."""
  args: List[str]
  copies: Dict[str, str]  # local path -> name in the job folder


class LaunchInputError(ValueError):
  """A file the command names that cannot be shipped (two files with one name)."""


def _value(args: List[str], i: int, flag: str) -> Tuple[str, int, bool]:
  """(value, index of the next word, given as --flag=value) of a flag at args[i]."""
  a = args[i]
  if a.startswith(flag + "="):
    return a[len(flag) + 1:], i + 1, True
  return (args[i + 1] if i + 1 < len(args) else ""), i + 2, False


def local_files(args: Sequence[str], cwd: str = ".") -> Files:
  """Finds `--gin_file` paths and `--module` names that exist here as files, so they travel
  with the job; packaged gin files (models/mt5_base.gin) and installed modules stay as named."""
  args = list(args)
  out, copies, i = [], {}, 0

  def ship(local: str) -> str:
    name = os.path.basename(local)
    other = next((p for p, n in copies.items() if n == name and p != local), None)
    if other:
      raise LaunchInputError(f"{local} and {other} would both be {name} on the workers; "
                             "rename one")
    copies[local] = name
    return name

  while i < len(args):
    a = args[i]
    for flag in ("--gin_file", "--module"):
      if a == flag or a.startswith(flag + "="):
        value, nxt, joined = _value(args, i, flag)
        if flag == "--gin_file":
          path = os.path.abspath(os.path.join(cwd, value))
          new = ship(path) if os.path.isfile(path) else value
        else:
          new = value
          for m in (m.strip() for m in value.split(",")):
            path = os.path.abspath(os.path.join(cwd, m + ".py"))  # a package must be installed
            if m and "." not in m and os.path.isfile(path):
              ship(path)
        out += [f"{flag}={new}"] if joined else [flag, new]
        i = nxt
        break
    else:
      out.append(a)
      i += 1
  return Files(out, copies)
