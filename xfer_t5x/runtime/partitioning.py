"""The device mesh, T5X's logical axis rules, and the shardings derived from them.

A mesh is built from explicit axis sizes (gin: `make_mesh.data`, `make_mesh.model`, and
`make_mesh.replica` for multi-slice data parallelism over DCN). Axis types stay Auto, which Flax
logical constraints need. Logical axis names are T5X's: batch, vocab, embed, mlp, heads, kv,
joined_kv, relpos_buckets, length, layers.
"""
import contextlib
from typing import Optional, Sequence

import flax.linen as nn
import gin
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA, MODEL, REPLICA = "data", "model", "replica"


@gin.configurable
def make_mesh(data: int = -1, model: int = 1, replica: int = 1, devices=None) -> Mesh:
  """A ('data', 'model') mesh, or ('replica', 'data', 'model') when replica > 1.

  `data=-1` takes every device not used by the other axes. Sizes must multiply to the number of
  devices: the error says what to change.
  """
  devices = list(jax.devices() if devices is None else devices)
  n = len(devices)
  if data == -1:
    if n % (model * replica):
      raise ValueError(f"make_mesh: {n} devices are not divisible by model={model} x "
                       f"replica={replica}; bind make_mesh.model to a divisor of {n}")
    data = n // (model * replica)
  if data * model * replica != n:
    raise ValueError(f"make_mesh: data={data} x model={model} x replica={replica} = "
                     f"{data * model * replica}, but there are {n} devices; bind make_mesh.data "
                     f"and make_mesh.model so that their product is {n}")
  if replica > 1:
    arr = _multi_slice_devices(replica, data, model, devices)
    return Mesh(arr, (REPLICA, DATA, MODEL))
  shape = (data, model)
  try:
    arr = mesh_utils.create_device_mesh(shape, devices=devices, allow_split_physical_axes=True)
  except (ValueError, NotImplementedError, AssertionError):
    arr = np.asarray(devices).reshape(shape)
  return Mesh(arr, (DATA, MODEL))


def _multi_slice_devices(replica: int, data: int, model: int, devices) -> np.ndarray:
  """The (replica, data, model) device array of a multi-slice job: 'replica' across slices
  (data parallelism over DCN), 'data' and 'model' inside each slice on its ICI torus, as
  `mesh_utils.create_hybrid_device_mesh` lays them out. Devices without slice indices (CPU, one
  slice) fall back to a plain reshape: the replica axis is then only a name."""
  slices = sorted({getattr(d, "slice_index", None) for d in devices}, key=str)
  if slices == [None] or len(slices) == 1:
    return np.asarray(devices).reshape((replica, data, model))
  if len(slices) != replica:
    raise ValueError(f"make_mesh: the devices form {len(slices)} slices but replica={replica}; "
                     f"bind make_mesh.replica (NUM_SLICES in partitioning/multislice.gin) to "
                     f"{len(slices)}")
  return mesh_utils.create_hybrid_device_mesh(
      (1, data, model), (replica, 1, 1), devices=devices, allow_split_physical_axes=True)


@gin.configurable
def standard_logical_axis_rules(parameter_partitioning_dims: int = 1,
                                activation_partitioning_dims: int = 1,
                                additional_rules: Sequence = (),
                                multi_slice: Optional[bool] = None):
  """T5X's standard rules as data: 1-D (model axis only) or 2-D (embed also over 'data')
  parameter partitioning; activations' batch over 'data' (and 'replica' across slices)."""
  if parameter_partitioning_dims not in (1, 2) or activation_partitioning_dims not in (1, 2):
    raise ValueError("standard_logical_axis_rules: partitioning dims must be 1 or 2, got "
                     f"parameter={parameter_partitioning_dims}, "
                     f"activation={activation_partitioning_dims}")
  batch = (REPLICA, DATA) if multi_slice else DATA
  rules = [
      ("batch", batch),
      ("vocab", MODEL),
      ("mlp", MODEL),
      ("heads", MODEL),
      ("kv", None),
      ("joined_kv", MODEL),
  ]
  if parameter_partitioning_dims == 2 or activation_partitioning_dims == 2:
    rules.append(("embed", DATA))  # used only where 'data' is still free (params, not batch)
  else:
    rules.append(("embed", None))
  rules += [("relpos_buckets", None), ("length", None), ("layers", None), ("stack", None)]
  return tuple(additional_rules) + tuple(rules)


class Partitioner:
  """Mesh + rules: turns logical axis names into NamedShardings and scopes computations."""

  def __init__(self, mesh: Mesh, rules=None):
    self.mesh = mesh
    multi = REPLICA in mesh.axis_names
    self.rules = tuple(rules) if rules is not None else standard_logical_axis_rules(
        multi_slice=multi)

  @contextlib.contextmanager
  def activate(self):
    """The mesh and axis rules in force, for tracing jitted functions that use logical
    constraints."""
    with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
      yield

  def mesh_axes(self, logical_spec: P) -> P:
    return nn.logical_to_mesh_axes(tuple(logical_spec), self.rules)

  def sharding(self, logical_spec: P, shape=None) -> NamedSharding:
    """The NamedSharding of one array. Given its shape, a dimension that the mesh axes do not
    divide evenly is replicated instead (e.g. 4 heads on an 8-way model axis)."""
    spec = self.mesh_axes(logical_spec)
    if shape is not None:
      fixed = []
      for i, axes in enumerate(tuple(spec) + (None,) * (len(shape) - len(spec))):
        names = (axes,) if isinstance(axes, str) else tuple(axes or ())
        ways = int(np.prod([self.mesh.shape[a] for a in names])) if names else 1
        fixed.append(axes if shape[i] % ways == 0 else None)
      spec = P(*fixed)
    return NamedSharding(self.mesh, spec)

  def shardings(self, logical_tree, shapes=None):
    """NamedSharding for every leaf of a tree of logical PartitionSpecs (with `shapes`, a
    matching tree of arrays or ShapeDtypeStructs, uneven dimensions are replicated)."""
    is_spec = lambda x: isinstance(x, P)
    if shapes is None:
      return jax.tree_util.tree_map(self.sharding, logical_tree, is_leaf=is_spec)
    return jax.tree_util.tree_map(lambda s, a: self.sharding(s, a.shape), logical_tree, shapes,
                                  is_leaf=is_spec)

  def batch_sharding(self) -> NamedSharding:
    return self.sharding(P("batch"))

  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  @property
  def data_parallel_size(self) -> int:
    return int(np.prod([self.mesh.shape[a] for a in self.mesh.axis_names if a != MODEL]))


@gin.configurable
def make_partitioner(mesh: Optional[Mesh] = None, rules=None) -> Partitioner:
  return Partitioner(mesh if mesh is not None else make_mesh(), rules)
