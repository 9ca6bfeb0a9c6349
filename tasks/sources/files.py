"""Data files through TensorFlow's filesystems: local paths, gs:// (and ram:// in tests) alike.

Byte ranges: `read_lines_in_range(path, start, end)` returns the whole lines whose first byte
lies in [start, end), so N hosts splitting a file's size into N ranges read disjoint lines that
together are the file, each about 1/N of its bytes (plus at most one line past its end).
"""
import fnmatch
import gzip
import io
import os
from typing import List, Tuple

import tensorflow as tf

_CHUNK = 1 << 20


def is_remote(path: str) -> bool:
  return "://" in str(path)


def expand(path: str) -> str:
  """`~` expanded and made absolute for a local path; a URL as it is."""
  path = str(path)
  return path if is_remote(path) else os.path.abspath(os.path.expanduser(path))


def join(folder: str, name: str) -> str:
  if os.path.isabs(name) or is_remote(name):
    return name
  return os.path.join(folder, name)


def exists(path: str) -> bool:
  return tf.io.gfile.exists(path)


def isdir(path: str) -> bool:
  return tf.io.gfile.isdir(path)


def isfile(path: str) -> bool:
  return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)


def size(path: str) -> int:
  return tf.io.gfile.stat(path).length


def glob(pattern: str) -> List[str]:
  """Sorted files matching `pattern` (`*`, `?`, `[...]`; `**` matches any depth)."""
  if "**" not in pattern:
    return sorted(p for p in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(p))
  root = pattern.split("**", 1)[0].rstrip("/") or "."
  found = []
  for folder, _, names in tf.io.gfile.walk(root):
    for name in names:
      path = os.path.join(folder, name)
      if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.replace("**/", "")):
        found.append(path)
  return sorted(found)


def read_bytes(path: str) -> bytes:
  """The whole file (a `.gz` file decompressed)."""
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  if path.endswith(".gz"):
    data = gzip.GzipFile(fileobj=io.BytesIO(data)).read()
  return data


def splittable(path: str) -> bool:
  """Whether byte ranges of the file can be read on their own (not compressed)."""
  return not path.endswith(".gz")


def byte_ranges(total: int, parts: int) -> List[Tuple[int, int]]:
  """`parts` contiguous ranges covering [0, total)."""
  edges = [total * i // parts for i in range(parts + 1)]
  return list(zip(edges[:-1], edges[1:]))


def read_lines_in_range(path: str, start: int, end: int) -> bytes:
  """The file's whole lines whose first byte lies in [start, end), newlines included.

  A line starts at byte 0 or after a newline. Reads from `start - 1` (to know whether a line
  starts at `start`) to the first newline at or after `end - 1`.
  """
  if start >= end:
    return b""
  with tf.io.gfile.GFile(path, "rb") as f:
    begin = max(start - 1, 0)
    f.seek(begin)
    data = bytearray(f.read(end - begin))
    if start > 0:
      cut = data.find(b"\n")
      if cut < 0 or begin + cut + 1 >= end:  # no line starts inside the range
        return b""
      del data[:cut + 1]
    # Finish the last line begun inside the range.
    while not data.endswith(b"\n"):
      more = f.read(_CHUNK)
      if not more:
        break
      cut = more.find(b"\n")
      if cut >= 0:
        data += more[:cut + 1]
        break
      data += more
  return bytes(data)


def count_lines_before(path: str, offset: int) -> int:
  """Newlines in the file's first `offset` bytes (read only to name a line in a message)."""
  n = 0
  with tf.io.gfile.GFile(path, "rb") as f:
    left = offset
    while left > 0:
      chunk = f.read(min(_CHUNK, left))
      if not chunk:
        break
      n += chunk.count(b"\n")
      left -= len(chunk)
  return n
