"""model-info.txt: every variable with its shape, dtype, logical axes and partition spec."""
import jax
from jax.sharding import PartitionSpec as P

from xfer_t5x.runtime import train_state as ts


def _flat(tree, prefix):
  is_spec = lambda x: isinstance(x, P)
  leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_spec)[0]
  out = {}
  for path, leaf in leaves:
    name = "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                    for k in path)
    out[f"{prefix}{name}"] = leaf
  return out


def lines(model, optimizer, partitioner):
  """One line per variable of the train state, T5X's model-info format in spirit."""
  shapes = ts.state_shapes(model, optimizer)
  axes = ts.state_logical_axes(model, optimizer)
  shardings = ts.state_shardings(model, optimizer, partitioner, shapes)
  flat_shapes = _flat(shapes, "state/")
  flat_axes = _flat(axes, "state/")
  flat_shard = _flat(shardings, "state/")
  total = 0
  out = [f"# mesh {dict(partitioner.mesh.shape)}; rules {list(partitioner.rules)}",
         "# variable  shape  dtype  logical_axes  partition_spec"]
  for name, s in flat_shapes.items():
    spec = flat_shard[name].spec if name in flat_shard else None
    out.append(f"{name}  {tuple(s.shape)}  {s.dtype}  {tuple(flat_axes.get(name, ()))}  "
               f"{tuple(spec) if spec is not None else ()}")
    if name.startswith("state/params/"):
      total += int(s.size)
  out.append(f"# total parameters: {total:,}")
  return out
