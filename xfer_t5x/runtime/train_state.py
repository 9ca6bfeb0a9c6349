"""The training state (step, params, optimizer state) and its sharded construction."""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from xfer_t5x.runtime.optimizer import Adafactor


class TrainState(NamedTuple):
  step: jnp.ndarray
  params: Any
  opt_state: Any


def state_logical_axes(model, optimizer: Adafactor) -> TrainState:
  """Logical PartitionSpecs of every leaf of the state."""
  return TrainState(P(), model.logical_axes(), optimizer.state_logical_axes(
      model.abstract_params()))


def state_shapes(model, optimizer) -> TrainState:
  """ShapeDtypeStructs of the state (the model's are traced once and cached)."""
  params = model.abstract_params()
  return TrainState(jax.ShapeDtypeStruct((), jnp.int32), params,
                    jax.eval_shape(optimizer.init, params))


def state_shardings(model, optimizer, partitioner, shapes=None) -> TrainState:
  shapes = shapes if shapes is not None else state_shapes(model, optimizer)
  return partitioner.shardings(state_logical_axes(model, optimizer), shapes)


def abstract_state(model, optimizer, partitioner) -> TrainState:
  """ShapeDtypeStructs with shardings: what a restore needs; nothing allocated."""
  shapes = state_shapes(model, optimizer)
  shardings = state_shardings(model, optimizer, partitioner, shapes)
  return jax.tree_util.tree_map(
      lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)


def init_state_fn(model, optimizer):
  def init(rng):
    params = model.init(rng)
    return TrainState(jnp.zeros([], jnp.int32), params, optimizer.init(params))
  return init


def init_state(model, optimizer, partitioner, rng) -> TrainState:
  """Initialise already sharded: jit of init with out_shardings, so no host ever holds the
  whole model."""
  shardings = state_shardings(model, optimizer, partitioner)
  with partitioner.activate():
    return jax.jit(init_state_fn(model, optimizer), out_shardings=shardings)(rng)


def state_from_params(params, model, optimizer, partitioner, step=0) -> TrainState:
  """A fresh optimizer around given (e.g. imported pretrained) params, sharded."""
  shardings = state_shardings(model, optimizer, partitioner)

  def build(p):
    return TrainState(jnp.asarray(step, jnp.int32), p, optimizer.init(p))
  with partitioner.activate():
    return jax.jit(build, in_shardings=(shardings.params,), out_shardings=shardings)(params)
