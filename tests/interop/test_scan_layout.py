"""xfer_t5x.model.scan: the converted layout is the one the scanned network really uses."""
import jax
import numpy as np
import pytest

from tests.interop.hf_helpers import copy_batch, tiny_config
from xfer_t5x.model import scan
from xfer_t5x.model.api import EncoderDecoderModel


def _random_params(model, seed):
  rng = np.random.default_rng(seed)
  return scan.unflatten({k: (0.2 * rng.standard_normal(v.shape)).astype(np.float32)
                         for k, v in scan.flatten(model.abstract_params()).items()})


@pytest.mark.slow
def test_scanned_model_with_stacked_params_computes_the_same_logits():
  unrolled = EncoderDecoderModel(tiny_config())
  scanned = EncoderDecoderModel(tiny_config(scan_layers=True))
  params = _random_params(unrolled, 0)
  stacked = scan.unflatten(scan.scan_params(scan.flatten(params)))
  abstract = scan.flatten(scanned.abstract_params())
  assert {k: v.shape for k, v in scan.flatten(stacked).items()} == {
      k: v.shape for k, v in abstract.items()}
  batch = copy_batch(np.random.default_rng(0), 4)
  np.testing.assert_allclose(np.asarray(jax.jit(scanned.logits)(stacked, batch)),
                             np.asarray(jax.jit(unrolled.logits)(params, batch)), rtol=1e-5, atol=1e-6)


def test_scan_and_unscan_are_inverse_and_exact():
  params = scan.flatten(_random_params(EncoderDecoderModel(tiny_config()), 1))
  back = scan.unscan_params(scan.scan_params(params))
  assert set(back) == set(params)
  for k, v in params.items():
    np.testing.assert_array_equal(back[k], v)
  assert scan.num_layers(params, "decoder") == 2
  assert scan.to_layout(params, scanned=False) == params
