"""The multi-slice mesh: 'replica' across slices (DCN), 'data' and 'model' inside each slice.

Two-slice TPU topologies come from libtpu's compile-only descriptions
(`get_topology_desc(..., num_slices=2)`), in a subprocess with libtpu's quiet environment; the
CPU case runs here.
"""
import json
import os
import subprocess
import sys

import jax
import pytest

from xfer_t5x.runtime import partitioning
from xfer_t5x.runtime.partitioning import make_mesh

SCRIPT = r"""
import json, sys
from jax.experimental import topologies
from xfer_t5x.runtime.partitioning import make_mesh
topology, slices, replica, model = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
devices = topologies.get_topology_desc(platform="tpu", topology_name=topology,
                                       num_slices=slices).devices
# Interleave the slices (as jax.devices() may list them): a plain reshape would then mix slices
# along every axis.
by_slice = [[d for d in devices if d.slice_index == s] for s in range(slices)]
devices = [d for group in zip(*by_slice) for d in group]
try:
  mesh = make_mesh(data=-1, model=model, replica=replica, devices=devices)
except ValueError as e:
  print(json.dumps({"error": str(e)}))
  sys.exit(0)
print(json.dumps({"axes": list(mesh.axis_names), "shape": list(mesh.devices.shape),
                  "slice": [[[d.slice_index for d in row] for row in plane]
                            for plane in mesh.devices],
                  "ids": sorted(d.id for d in mesh.devices.flat), "n": len(devices)}))
"""


def _topology_mesh(topology, slices, replica, model):
  from xfer_t5x.launch import plan_search  # pylint: disable=g-import-not-at-top
  if not plan_search.libtpu_available():
    pytest.skip("libtpu is not installed: pip install -c constraints.txt -e '.[tpu]' "
                "(make env installs it)")
  env = dict(os.environ, **plan_search.LIBTPU_QUIET, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", SCRIPT, topology, str(slices), str(replica),
                         str(model)], capture_output=True, text=True, env=env, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_replica_axis_runs_across_slices_of_a_two_slice_topology():
  got = _topology_mesh("v5e:2x2", 2, 2, 2)
  assert got["axes"] == ["replica", "data", "model"] and got["shape"] == [2, 2, 2]
  assert len(got["ids"]) == got["n"] == 8 and len(set(got["ids"])) == 8
  # Every device at replica r sits on slice r: 'data' and 'model' never leave a slice, so only
  # the replica axis crosses DCN.
  for r, plane in enumerate(got["slice"]):
    assert {s for row in plane for s in row} == {r}


@pytest.mark.slow
def test_replica_count_must_match_the_slices():
  got = _topology_mesh("v5e:2x2", 2, 4, 1)
  assert "form 2 slices but replica=4" in got["error"]


def test_devices_without_slices_keep_a_plain_replica_axis():
  devices = jax.devices()[:1]
  mesh = make_mesh(data=1, model=1, replica=1, devices=devices)
  assert mesh.axis_names == ("data", "model")
  fake = [type("D", (), {"id": i})() for i in range(8)]
  arr = partitioning._multi_slice_devices(2, 2, 2, fake)  # pylint: disable=protected-access
  assert arr.shape == (2, 2, 2) and [d.id for d in arr.flat] == list(range(8))
