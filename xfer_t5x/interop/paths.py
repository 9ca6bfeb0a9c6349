"""Files on a local disk or on GCS (`gs://...`, through tf.io.gfile, imported only then)."""
import os

from xfer_t5x import fileio


def is_gcs(path) -> bool:
  return str(path).startswith("gs://")


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def exists(path) -> bool:
  return _gfile().exists(path) if is_gcs(path) else os.path.exists(path)


def isdir(path) -> bool:
  return _gfile().isdir(path) if is_gcs(path) else os.path.isdir(path)


def listdir(path):
  return [p.rstrip("/") for p in _gfile().listdir(path)] if is_gcs(path) else os.listdir(path)


def read_bytes(path) -> bytes:
  if is_gcs(path):
    with _gfile().GFile(path, "rb") as f:
      return f.read()
  with open(path, "rb") as f:
    return f.read()


def write_bytes(path, data: bytes) -> None:
  """Writes `data` to `path` (atomically on a local disk: a temporary file, then a rename)."""
  if is_gcs(path):
    with _gfile().GFile(path, "wb") as f:
      f.write(data)
    return
  fileio.atomic_write(path, data)
