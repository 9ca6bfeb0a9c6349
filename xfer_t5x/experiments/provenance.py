"""Where a result came from: code version, config hash, data version (CONTRACTS.md "Results").

- `code_version()`: the package version plus the git commit of the checkout it runs from, where
  there is one (`0.1.0+git.<sha>`, with `.dirty` when tracked files differ from that commit).
- A phase's config hash is the sha256 of its parsed gin config (`gin.config_str()` after its
  files and bindings are parsed: every binding, the model dir and checkpoints included), so the
  same phase resumed after a crash has the same hash.
- A phase's data version is `tasks.data_report.data_version()` over the files the phase read.
- A run chains its phases: its `gin_sha256` and `data_version` are the sha256 of the lines
  `<phase id>\t<phase's hash>` of its phases in order (intermediate, stages, evaluate).
"""
import functools
import hashlib
import os
import subprocess
from typing import Iterable, Tuple

import xfer_t5x


def sha256_text(text: str) -> str:
  return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain_hash(pairs: Iterable[Tuple[str, str]]) -> str:
  """sha256 over `<phase id>\\t<hash>` lines, in order."""
  return sha256_text("".join(f"{pid}\t{h or ''}\n" for pid, h in pairs))


def _git(args, cwd):
  return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20,
                        check=True).stdout.strip()


@functools.lru_cache(maxsize=1)
def code_version() -> str:
  """`<package version>` or `<package version>+git.<commit>[.dirty]`."""
  version = xfer_t5x.__version__
  here = os.path.dirname(os.path.abspath(xfer_t5x.__file__))
  try:
    # Only a checkout that tracks this package counts (not a venv inside some other repo).
    _git(["ls-files", "--error-unmatch", "__init__.py"], here)
    commit = _git(["rev-parse", "HEAD"], here)
    dirty = bool(_git(["status", "--porcelain", "--untracked-files=no"], here))
  except (OSError, subprocess.SubprocessError):
    return version
  return f"{version}+git.{commit}{'.dirty' if dirty else ''}"
