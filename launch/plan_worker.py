"""One AOT compile in its own process: `python -m xfer_t5x.launch.plan_worker SPEC OUT`.

SPEC is a JSON file (shape, target, gin files and bindings); OUT receives the CompileReport as
JSON. Started by `launch.plan_search.compile_in_child` with the environment it needs (libtpu
quiet, or the number of fake CPU devices).
"""
import json
import pathlib
import sys


def main(spec_path: str, out_path: str) -> int:
  spec = json.loads(pathlib.Path(spec_path).read_text())
  from xfer_t5x.runtime import gin_utils  # pylint: disable=g-import-not-at-top
  from xfer_t5x.launch import plan  # pylint: disable=g-import-not-at-top
  import xfer_t5x.runtime.trainer  # pylint: disable=g-import-not-at-top,unused-import  (gin names)
  gin_utils.setup_gin(spec["gin_files"], spec["gin_bindings"], finalize=False)
  target = spec["target"]
  try:
    if target.get("topology"):
      devices = plan.tpu_devices(target["topology"], spec.get("chip_config"))
    else:
      devices = plan.cpu_devices(int(target["cpu_devices"]))
  except Exception as e:  # pylint: disable=broad-except  (libtpu refuses the topology)
    _write(out_path, {"setup_error": str(e).strip().splitlines()[-1][:500]})
    return 0
  report = plan.compile_run(plan.RunShape.from_json(spec["shape"]), devices,
                            with_decode=spec.get("with_decode", True))
  _write(out_path, report.to_json())
  return 0


def _write(path: str, doc) -> None:
  tmp = pathlib.Path(path + ".tmp")
  tmp.write_text(json.dumps(doc))
  tmp.replace(path)


if __name__ == "__main__":
  sys.exit(main(sys.argv[1], sys.argv[2]))
