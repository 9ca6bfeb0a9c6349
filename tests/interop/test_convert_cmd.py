"""`xfer-t5x convert`: T5X -> HF -> Orbax -> T5X through the real CLI, bit for bit; refusals."""
import gin
import numpy as np
import pytest

from xfer_t5x import cli
from xfer_t5x.interop import t5x
from xfer_t5x.model import scan


@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def _convert(*argv):
  return cli.main(["convert", *argv])


@pytest.mark.slow
def test_t5x_to_hf_to_orbax_to_t5x_is_exact(real_checkpoint, tmp_path, capsys):
  src, expected = real_checkpoint
  hf_dir, orbax_dir, t5x_dir = (str(tmp_path / n) for n in ("hf", "checkpoint_20", "t5x"))
  assert _convert("--from", "t5x", "--to", "hf", "--src", src, "--dst", hf_dir,
                  "--model_size", "tiny") == 0
  assert "converted 52 parameters (246,784 values" in capsys.readouterr().out
  assert _convert("--from", "hf", "--to", "orbax", "--src", hf_dir, "--dst", orbax_dir) == 0
  assert _convert("--from", "orbax", "--to", "t5x", "--src", orbax_dir, "--dst", t5x_dir,
                  "--step", "20") == 0
  from tests.interop.hf_helpers import tiny_config  # pylint: disable=g-import-not-at-top
  for path in (orbax_dir, t5x_dir):
    got = scan.flatten(t5x.load_t5x_checkpoint(path, tiny_config()))
    assert set(got) == set(expected)
    for k, v in expected.items():
      np.testing.assert_array_equal(got[k], v, err_msg=f"{path} {k}")


def test_gin_bindings_choose_the_written_layout(real_checkpoint, tmp_path):
  src, expected = real_checkpoint
  dst = str(tmp_path / "scanned" / "checkpoint_0")
  assert _convert("--from", "t5x", "--to", "orbax", "--src", src, "--dst", dst,
                  "--gin_file", "models/mt5_tiny.gin", "--gin.T5Config.scan_layers=True") == 0
  shapes = t5x.read_checkpoint_shapes(dst)
  assert shapes["decoder/layers/mlp/wo/kernel"] == (128, 2, 64)
  assert len(shapes) == len(scan.scan_params(expected))


def test_wrong_size_fails_naming_the_size_the_checkpoint_looks_like(real_checkpoint, tmp_path,
                                                                     capsys):
  src, _ = real_checkpoint
  rc = _convert("--from", "t5x", "--to", "hf", "--src", src, "--dst", str(tmp_path / "x"),
                "--model_size", "small")
  out = capsys.readouterr().out
  assert rc == 1
  assert "mt5_tiny" in out and "--model_size tiny" in out and "(512,)" in out
  assert not (tmp_path / "x").exists()  # nothing written
  assert _convert("--from", "t5x", "--to", "hf", "--src", src, "--dst", str(tmp_path / "y"),
                  "--model_size", "huge") == 1
  assert "choose one of" in capsys.readouterr().out


def test_existing_destination_is_not_overwritten(real_checkpoint, tmp_path, capsys):
  src, _ = real_checkpoint
  dst = tmp_path / "checkpoint_1"
  assert _convert("--from", "t5x", "--to", "orbax", "--src", src, "--dst", str(dst)) == 0
  assert _convert("--from", "t5x", "--to", "orbax", "--src", src, "--dst", str(dst)) == 1
  assert "exists" in capsys.readouterr().out
