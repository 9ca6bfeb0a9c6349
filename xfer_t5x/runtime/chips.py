"""TPU chips: HBM, HBM bandwidth and peak per chip, accelerator-type names, per-device figures.

One place for the public per-chip figures that `plan` compares compiled memory against and that
MFU is stated against on TPUs. Sources: Google Cloud's TPU system-architecture pages
(cloud.google.com/tpu/docs/v3, /v4, /v5e, /v5p, /v6e), "Chip specifications" tables, as of 2026.

A JAX device is one chip on v5e and v6e (one TensorCore each) and on v4 and v5p in their default
megacore mode (two TensorCores as one device; `device.num_cores == 2`). Topology descriptions
built without `chip_config_name="megacore"` give v4 one device per TensorCore; then a device has
half the chip's HBM and peak. `per_device` reads `num_cores` and divides accordingly.
"""
import dataclasses
import math
import re
from typing import List, Optional, Tuple

GIB = 1024 ** 3


@dataclasses.dataclass(frozen=True)
class Chip:
  name: str  # "v4", "v5e", "v5p", "v6e"
  hbm_bytes: int
  bf16_peak: float  # FLOP/s per chip
  hbm_bandwidth: float  # bytes/s per chip
  cores_per_chip: int  # TensorCores
  dims: int  # torus dimensions of a slice's topology name (3: v4/v5p, 2: v5e/v6e)
  names_count: str  # what the number in an accelerator type counts: "cores" or "chips"
  source: str


CHIPS = {
    "v3": Chip("v3", 32 * GIB, 123e12, 900e9, 2, 2, "cores", "cloud.google.com/tpu/docs/v3"),
    "v4": Chip("v4", 32 * GIB, 275e12, 1228e9, 2, 3, "cores", "cloud.google.com/tpu/docs/v4"),
    "v5e": Chip("v5e", 16 * GIB, 197e12, 819e9, 1, 2, "chips", "cloud.google.com/tpu/docs/v5e"),
    "v5p": Chip("v5p", 95 * GIB, 459e12, 2765e9, 2, 3, "cores", "cloud.google.com/tpu/docs/v5p"),
    "v6e": Chip("v6e", 32 * GIB, 918e12, 1640e9, 1, 2, "chips", "cloud.google.com/tpu/docs/v6e"),
}

# device_kind as JAX reports it (lower-cased) -> chip. v5p reports "TPU v5" (no "p"), v5e
# "TPU v5 lite", v6e "TPU v6 lite": match the most specific first.
_KINDS = (("v6 lite", "v6e"), ("v6e", "v6e"), ("v5 lite", "v5e"), ("v5e", "v5e"),
          ("v5p", "v5p"), ("v5", "v5p"), ("v4", "v4"), ("v3", "v3"))


def chip_for_kind(device_kind: str) -> Optional[Chip]:
  """The chip a JAX `device_kind` string names, or None (CPU, GPU, unknown TPUs)."""
  kind = device_kind.lower()
  for key, name in _KINDS:
    if key in kind:
      return CHIPS[name]
  return None


def _cores(device, chip: Chip) -> int:
  """TensorCores one JAX device of `chip` drives (all of them unless it says fewer)."""
  cores = int(getattr(device, "num_cores", chip.cores_per_chip) or chip.cores_per_chip)
  return min(cores, chip.cores_per_chip)


def per_device(device) -> Optional[Tuple[int, float, float]]:
  """(HBM bytes, bf16 peak FLOP/s, HBM bytes/s) of one JAX TPU device, or None for non-TPU
  devices."""
  chip = chip_for_kind(getattr(device, "device_kind", ""))
  if chip is None or getattr(device, "platform", "tpu") != "tpu":
    return None
  share = _cores(device, chip) / chip.cores_per_chip
  return int(chip.hbm_bytes * share), chip.bf16_peak * share, chip.hbm_bandwidth * share


def devices_per_chip(device) -> float:
  """How many JAX devices make one chip (2 for a v4 topology without megacore, else 1)."""
  chip = chip_for_kind(getattr(device, "device_kind", ""))
  if chip is None:
    return 1.0
  return chip.cores_per_chip / _cores(device, chip)


def _grow(dims: List[int], chips: int) -> List[int]:
  """Standard slice shapes: double the smallest dimension (the last on a tie) until the product
  is `chips` (2x2x1 -> 2x2x2 -> 2x2x4 -> 2x4x4 -> 4x4x4; 1x1 -> 1x2 -> 2x2 -> 2x4 -> 4x4)."""
  while math.prod(dims) < chips:
    i = max(i for i, d in enumerate(dims) if d == min(dims))
    dims[i] *= 2
  return dims


def parse_accelerator(name: str) -> Tuple[Chip, str, int]:
  """(chip, topology name for `get_topology_desc`, number of chips) of an accelerator type
  ("v5p-64", "v5litepod-256", "v6e-64") or a topology name ("v5p:2x4x4", "v4:4x4x4").

  Accelerator types count TensorCores for v4 and v5p (v5p-64 = 32 chips) and chips for v5e and
  v6e (v5e-256 = 256 chips)."""
  s = name.strip().lower().replace("v5litepod", "v5e").replace("v5lite", "v5e")
  m = re.fullmatch(r"(v3|v4|v5e|v5p|v6e)[:\-]((\d+x)+\d+)", s)
  if m:
    chip = CHIPS[m.group(1)]
    shape = [int(x) for x in m.group(2).split("x")]
    if len(shape) != chip.dims:
      raise ValueError(f"topology {name!r}: {chip.name} slices have {chip.dims} dimensions "
                       f"(e.g. {chip.name}:{'x'.join(['2'] * chip.dims)})")
    return chip, f"{chip.name}:{m.group(2)}", math.prod(shape)
  m = re.fullmatch(r"(v3|v4|v5e|v5p|v6e)-(\d+)", s)
  if not m:
    raise ValueError(f"accelerator {name!r}: expected an accelerator type such as v5p-64, "
                     "v4-128, v5e-256, v6e-64, or a topology such as v5p:2x4x4")
  chip, n = CHIPS[m.group(1)], int(m.group(2))
  chips = n // chip.cores_per_chip if chip.names_count == "cores" else n
  if chips < 1 or chips & (chips - 1):
    raise ValueError(f"accelerator {name!r}: {chips} chips is not a power of two; give the "
                     "topology itself, e.g. v5p:2x4x6")
  start = [2, 2, 1] if chip.dims == 3 else [1, 1]
  if chips < math.prod(start):
    start = [1] * chip.dims
  dims = _grow(start, chips)
  return chip, f"{chip.name}:{'x'.join(map(str, dims))}", chips


def accelerator_name(chip: Chip, chips: int) -> str:
  """The accelerator type of a slice of `chips` chips ("v5p-64" for 32 v5p chips)."""
  n = chips * chip.cores_per_chip if chip.names_count == "cores" else chips
  return f"{chip.name}-{n}"
