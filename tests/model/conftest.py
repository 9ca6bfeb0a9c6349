"""Fixtures of the model tests: a tiny mT5 trained briefly on the copy task, and a random one."""
import jax
import pytest

from tests.model.model_helpers import tiny_config, train
from xfer_t5x.model.api import EncoderDecoderModel


@pytest.fixture(scope="session")
def trained():
  """(model, params): the tiny model after 1000 Adam steps on the copy task (a few seconds; at
  600 it copied only half the inputs, and whether every decode ended with EOS hung on rounding)."""
  model = EncoderDecoderModel(tiny_config())
  params = train(model, jax.jit(model.init)(jax.random.PRNGKey(0)), steps=1000)
  return model, params


@pytest.fixture(scope="session")
def random_model():
  """(model, params): the tiny model at its random initialisation."""
  model = EncoderDecoderModel(tiny_config())
  return model, jax.jit(model.init)(jax.random.PRNGKey(1))
