"""Every gin file in the repo parses, run files compose with the models, and a wheel carries them."""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import gin
import pytest

from xfer_t5x.runtime import gin_utils

REPO = pathlib.Path(__file__).resolve().parents[1]
GIN_ROOT = REPO / "gin"
ALL_GIN = sorted(p.relative_to(GIN_ROOT).as_posix() for p in GIN_ROOT.rglob("*.gin"))
RUN_FILES = [p for p in ALL_GIN if p.startswith("runs/")]
PARTITIONING_FILES = [p for p in ALL_GIN if p.startswith("partitioning/")]
MACRO_DEF = re.compile(r"^([A-Z][A-Z0-9_]*)\s*=\s*(.*)$")
REQUIRED_DEF = re.compile(r"^([A-Z][A-Z0-9_]*)\s*=\s*%gin\.REQUIRED\s*$", re.M)


@pytest.fixture(autouse=True)
def _clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def test_gin_files_exist():
  for size in ("tiny", "mini", "small", "base", "large", "xl", "xxl"):
    assert f"models/mt5_{size}.gin" in ALL_GIN
  assert not list(GIN_ROOT.rglob("__init__.py")), "gin/ must not be a Python package"


@pytest.mark.parametrize("rel", ALL_GIN)
def test_gin_file_parses(rel):
  # Each file imports the modules of the configurables it binds (T5X's convention), so unknown
  # names are errors here. `include`s resolve against gin/, as the CLI's search path does.
  if str(GIN_ROOT) not in gin.config._LOCATION_PREFIXES:  # pylint: disable=protected-access
    gin.add_config_file_search_path(str(GIN_ROOT))
  gin.parse_config_files_and_bindings(
      [str(GIN_ROOT / rel)], [], finalize_config=False, skip_unknown=False)


@pytest.mark.parametrize("rel", ALL_GIN)
def test_one_level_of_macros(rel):
  """A macro is defined by a value, never by another macro (the files stay flat)."""
  for n, line in enumerate((GIN_ROOT / rel).read_text().splitlines(), 1):
    m = MACRO_DEF.match(line)
    if m and "%" in m.group(2) and m.group(2).strip() != "%gin.REQUIRED":
      pytest.fail(f"gin/{rel}:{n}: macro {m.group(1)} is defined by another macro: {line!r}")


@pytest.mark.parametrize("rel", RUN_FILES)
def test_run_file_lists_required_bindings_at_the_top(rel):
  text = (GIN_ROOT / rel).read_text()
  header = []
  for line in text.splitlines():
    if not line.startswith("#"):
      break
    header.append(line)
  header = "\n".join(header)
  for name in REQUIRED_DEF.findall(text):
    assert re.search(rf"\b{name}\b", header), (
        f"gin/{rel}: required binding {name} is not listed in the comment at the top of the file")


def test_every_kind_of_gin_file_exists():
  names = set(ALL_GIN)
  for required in ("runs/train.gin", "runs/finetune.gin", "runs/eval.gin", "runs/infer.gin",
                   "models/mt5_tiny.gin", "models/mt5_xxl.gin", "partitioning/1d.gin",
                   "partitioning/2d.gin", "experiments/demo.gin"):
    assert required in names, required


@pytest.mark.parametrize("partitioning", PARTITIONING_FILES + [None])
@pytest.mark.parametrize("run", RUN_FILES)
def test_run_files_compose_with_model_and_partitioning(run, partitioning):
  files = ["models/mt5_tiny.gin", run] + ([partitioning] if partitioning else [])
  required = set()
  for f in files:
    required.update(REQUIRED_DEF.findall((GIN_ROOT / f).read_text()))
  bindings = [f"{name} = 'bound-by-test'" for name in sorted(required)]
  # finalize runs gin's checks: every macro has a value and every @reference resolves.
  gin_utils.setup_gin(files, bindings, finalize=True)


def _build_wheel(tmp_path):
  """Builds the wheel from a clean copy of the sources (no stale build/ folder)."""
  src = tmp_path / "src"
  src.mkdir()
  for name in ("setup.py", "xfer_t5x", "tasks", "launch", "gin"):
    if (REPO / name).is_dir():
      shutil.copytree(REPO / name, src / name,
                      ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    elif (REPO / name).exists():
      shutil.copy2(REPO / name, src / name)
  for extra in ("README.md", "MANIFEST.in", "constraints.txt"):
    if (REPO / extra).exists():
      shutil.copy2(REPO / extra, src / extra)
  out = tmp_path / "wheel"
  subprocess.run(
      [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
       "-w", str(out), str(src)], check=True, cwd=tmp_path)
  (wheel,) = out.glob("xfer_t5x-*.whl")
  return wheel


@pytest.mark.slow
def test_wheel_carries_gin_files_and_works_from_any_directory(tmp_path):
  wheel = _build_wheel(tmp_path)
  names = set(zipfile.ZipFile(wheel).namelist())
  for rel in ALL_GIN:
    assert f"xfer_t5x/gin_files/{rel}" in names
  assert not any(n.startswith("gin/") for n in names), "a top-level gin/ would shadow gin-config"
  # Install into a folder of its own and use it from an unrelated directory.
  site = tmp_path / "site"
  subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                  str(site), str(wheel)], check=True)
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  env = dict(os.environ, PYTHONPATH=str(site))
  probe = (
      "import xfer_t5x, sys\n"
      "from xfer_t5x.runtime import gin_utils, print_config_cmd\n"
      f"assert xfer_t5x.__file__.startswith({str(site)!r}), xfer_t5x.__file__\n"
      "print(gin_utils.gin_dir())\n"
      "sys.exit(print_config_cmd.main(['--gin_file', 'models/mt5_tiny.gin',"
      " '--gin.T5Config.dropout_rate=0.0']))\n")
  res = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env,
                       capture_output=True, text=True)
  assert res.returncode == 0, res.stderr[-3000:]
  first, rest = res.stdout.split("\n", 1)
  assert first == str(site / "xfer_t5x" / "gin_files")
  assert "T5Config.emb_dim = 64" in rest and "T5Config.dropout_rate = 0.0" in rest
