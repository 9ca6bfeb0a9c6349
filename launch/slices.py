"""A Cloud TPU slice as the launcher needs it: gcloud's accelerator type, hosts, chips per host,
the TPU VM runtime version and GKE's node selectors.

  slice_ = slices.parse("v5p-16")   # 8 chips on 2 hosts, topology 2x2x2

Chip counts and topologies come from `runtime/chips.py` (one place for the per-chip facts). A
TPU VM host drives 4 chips, except the single-host v5e and v6e slices of up to 8 chips
(v5litepod-8, v6e-8), as Google Cloud's system-architecture pages list them.
"""
import dataclasses

from xfer_t5x.runtime import chips as chips_lib

# The TPU VM software versions Google Cloud documents for JAX on each generation.
RUNTIME_VERSIONS = {"v4": "tpu-ubuntu2204-base", "v5e": "v2-alpha-tpuv5-lite",
                    "v5p": "v2-alpha-tpuv5", "v6e": "v2-alpha-tpuv6e"}
# gcloud's accelerator-type prefix and GKE's `cloud.google.com/gke-tpu-accelerator` label.
_GCLOUD_PREFIX = {"v4": "v4", "v5e": "v5litepod", "v5p": "v5p", "v6e": "v6e"}
_GKE_ACCELERATOR = {"v4": "tpu-v4-podslice", "v5e": "tpu-v5-lite-podslice",
                    "v5p": "tpu-v5p-slice", "v6e": "tpu-v6e-slice"}


@dataclasses.dataclass(frozen=True)
class Slice:
  generation: str        # v4, v5e, v5p, v6e
  accelerator_type: str  # as gcloud takes it: v5p-16, v5litepod-256, v6e-64, v4-128
  topology: str          # the torus shape: 2x2x2, 16x16
  chips: int
  hosts: int
  runtime_version: str

  @property
  def chips_per_host(self) -> int:
    return self.chips // self.hosts

  @property
  def multi_host(self) -> bool:
    return self.hosts > 1

  @property
  def gke_accelerator(self) -> str:
    return _GKE_ACCELERATOR[self.generation]


def parse(name: str, runtime_version: str = "") -> Slice:
  """A slice from an accelerator type (v5p-16, v4-128, v5e-256 or v5litepod-256, v6e-64) or a
  topology name (v5p:2x2x2); ValueError naming the forms otherwise."""
  chip, topology_name, chips = chips_lib.parse_accelerator(name)
  if chip.name not in RUNTIME_VERSIONS:
    raise ValueError(f"accelerator {name!r}: the launcher knows TPU VMs of "
                     f"{', '.join(sorted(RUNTIME_VERSIONS))}")
  single_host_max = 8 if chip.name in ("v5e", "v6e") else 4
  hosts = 1 if chips <= single_host_max else chips // 4
  count = chips * chip.cores_per_chip if chip.names_count == "cores" else chips
  return Slice(generation=chip.name,
               accelerator_type=f"{_GCLOUD_PREFIX[chip.name]}-{count}",
               topology=topology_name.split(":", 1)[1], chips=chips, hosts=hosts,
               runtime_version=runtime_version or RUNTIME_VERSIONS[chip.name])
