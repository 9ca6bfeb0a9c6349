"""The dual encoder (xfer_t5x/model/dual_encoder.py): its parameters are the encoder-decoder's
encoder, its loss is an in-batch softmax that learns a signal and shards exactly, and its
embeddings are what retrieval ranks by."""
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.model.model_helpers import tiny_config
from xfer_t5x.model import scan
from xfer_t5x.model.api import EncoderDecoderModel
from xfer_t5x.model.dual_encoder import DualEncoderModel
from xfer_t5x.runtime import flops

WORKER = pathlib.Path(__file__).with_name("dual_encoder_worker.py")
REPO = pathlib.Path(__file__).resolve().parents[2]


def _worker(which):
  out = subprocess.run([sys.executable, str(WORKER), which], cwd=REPO, capture_output=True,
                       text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-4000:]
  line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


def _batch(queries, candidates):
  q = jnp.asarray(queries, jnp.int32)
  c = jnp.asarray(candidates, jnp.int32)
  return {"encoder_input_tokens": q, "decoder_target_tokens": c,
          "decoder_input_tokens": jnp.zeros_like(c)}


def test_training_on_synthetic_pairs_learns_far_above_chance():
  """300 Adafactor steps (batch 32, chance 1/32) on pairs whose only link is a token mapping."""
  out = _worker("learn")
  assert out["accuracy"][0] < 0.2
  assert np.mean(out["accuracy"][-20:]) > 0.8
  assert out["held_out_accuracy"] > 0.8  # pairs never seen in training
  assert np.mean(out["loss"][-20:]) < 0.25 * out["loss"][0]
  assert out["logit_scale"] != pytest.approx(10.0)  # the temperature was learnt


def test_sharded_4x2_gives_the_single_device_losses():
  """The same 5 steps (padding rows included) on a (4, 2) mesh and on one device."""
  out = _worker("sharded")
  np.testing.assert_allclose(out["sharded"]["loss"], out["single"]["loss"], rtol=2e-5)
  assert out["sharded"]["accuracy"] == out["single"]["accuracy"]
  assert all(np.isfinite(out["single"]["loss"]))


@pytest.fixture(scope="module")
def models():
  cfg = tiny_config()
  encdec = EncoderDecoderModel(cfg)
  dual = DualEncoderModel(cfg, projection_dim=24)
  encdec_params = jax.jit(encdec.init)(jax.random.PRNGKey(0))
  params = dual.params_from_encoder_decoder(encdec_params, jax.random.PRNGKey(1))
  return encdec, encdec_params, dual, params


def test_parameters_are_the_encoder_decoders_encoder_plus_projection_and_temperature(models):
  encdec, _, dual, _ = models
  enc = {k: v.shape for k, v in scan.flatten(encdec.abstract_params()).items()}
  ours = {k: v.shape for k, v in scan.flatten(dual.abstract_params()).items()}
  shared = {k: s for k, s in enc.items() if k.startswith(("token_embedder/", "encoder/"))}
  assert {k: ours[k] for k in shared} == shared
  assert set(ours) - set(shared) == {"projection/kernel", "logit_scale"}
  assert ours["projection/kernel"] == (32, 24) and ours["logit_scale"] == ()
  assert not any(k.startswith("decoder/") for k in ours)
  fixed = DualEncoderModel(tiny_config(), learnable_temperature=False)
  assert set(scan.flatten(fixed.abstract_params())) == set(shared)
  axes = scan.flatten(dual.logical_axes())
  assert tuple(axes["projection/kernel"]) == ("embed", "mlp") and tuple(axes["logit_scale"]) == ()


def test_initialised_from_an_encoder_decoder_it_embeds_as_its_encoder(models):
  """Below the top its pooled states are the encoder-decoder's (what Tatoeba embeds with);
  at the top they are projected and unit length."""
  encdec, encdec_params, dual, params = models
  tokens = jnp.asarray(np.random.default_rng(0).integers(2, 64, (5, 7)), jnp.int32)
  tokens = tokens.at[1, 4:].set(0)
  np.testing.assert_allclose(dual.embed_batch(params, tokens, 1),
                             encdec.embed_batch(encdec_params, tokens, 1), rtol=1e-6, atol=1e-6)
  top = dual.embed_batch(params, tokens)
  assert top.shape == (5, 24)
  np.testing.assert_allclose(np.linalg.norm(top, axis=-1), 1.0, rtol=1e-5)
  # The projection of the encoder-decoder's own (unprojected) top embedding.
  ref = encdec.embed_batch(encdec_params, tokens) @ params["projection"]["kernel"]
  ref = ref / np.linalg.norm(ref, axis=-1, keepdims=True)
  np.testing.assert_allclose(top, ref, rtol=1e-5, atol=1e-5)


def test_a_duplicate_candidate_is_no_negative_and_padding_rows_do_not_count(models):
  _, _, dual, params = models
  rng = np.random.default_rng(0)
  q = rng.integers(2, 64, (6, 5))
  c = rng.integers(2, 64, (6, 5))
  c[3] = c[1]  # two questions about one sentence
  q[5], c[5] = 0, 0  # a padding row
  batch = _batch(q, c)
  logits = np.asarray(dual.similarity_logits(params, batch))
  assert logits[1, 3] < -1e8 and logits[3, 1] < -1e8  # the duplicate left out
  assert logits[1, 1] > -1e8 and logits[3, 3] > -1e8
  assert np.all(logits[:, 5] < -1e8) and np.all(logits[5] < -1e8)
  loss, m = dual.loss_fn(params, batch)
  assert float(m["weight_sum"]) == 5.0 and float(m["num_examples"]) == 5.0
  # The loss is the mean over the 5 real rows of -log softmax at the diagonal.
  logp = jax.nn.log_softmax(jnp.asarray(logits[:5, :5]), axis=-1)
  np.testing.assert_allclose(loss, -np.mean(np.diag(logp)), rtol=1e-5)
  grads = jax.grad(lambda p: dual.loss_fn(p, batch)[0])(params)
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))


def test_bidirectional_loss_averages_both_directions(models):
  _, _, dual, params = models
  two_way = DualEncoderModel(dual.config, projection_dim=24, bidirectional=True)
  rng = np.random.default_rng(1)
  batch = _batch(rng.integers(2, 64, (4, 5)), rng.integers(2, 64, (4, 5)))
  logits = dual.similarity_logits(params, batch)
  rows = -jnp.diag(jax.nn.log_softmax(logits, axis=-1))
  cols = -jnp.diag(jax.nn.log_softmax(logits, axis=0))
  np.testing.assert_allclose(two_way.loss_fn(params, batch)[0], jnp.mean(0.5 * (rows + cols)),
                             rtol=1e-5)


def test_bad_settings_are_refused_with_the_binding():
  with pytest.raises(ValueError, match="DualEncoderModel.temperature"):
    DualEncoderModel(tiny_config(), temperature=0.0)
  with pytest.raises(ValueError, match="DualEncoderModel.projection_dim"):
    DualEncoderModel(tiny_config(), projection_dim=-3)


def test_flops_count_two_encoder_passes_projection_and_similarities():
  cfg = tiny_config()
  enc_only = flops.forward_flops(cfg, 8, 16, 1).encoder
  both = flops.forward_flops(cfg, 8, 16, 1).encoder + flops.forward_flops(cfg, 8, 24, 1).encoder
  expected = 3 * (both + 2 * 2 * 8 * 32 * 24 + 2 * 8 * 8 * 24)
  assert DualEncoderModel(cfg, projection_dim=24).train_step_flops(8, 16, 24) == expected
  assert enc_only < both


def test_initial_state_from_an_encoder_decoder_checkpoint_under_the_mesh(models):
  """What the trainer does with an encoder-decoder INITIAL_CHECKPOINT: the shared parameters
  placed on the mesh's shardings, the projection and temperature made there, sharded."""
  from xfer_t5x.runtime import train_state as ts  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime.optimizer import Adafactor  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime.partitioning import make_partitioner  # pylint: disable=g-import-not-at-top
  _, encdec_params, dual, _ = models
  part = make_partitioner()
  shardings = ts.state_shardings(dual, Adafactor(dual.logical_axes()), part)
  with part.activate():
    params = dual.params_from_encoder_decoder(encdec_params, jax.random.PRNGKey(3),
                                              shardings.params)
  assert set(params) == {"token_embedder", "encoder", "projection", "logit_scale"}
  np.testing.assert_array_equal(params["encoder"]["encoder_norm"]["scale"],
                                encdec_params["encoder"]["encoder_norm"]["scale"])
  assert params["projection"]["kernel"].sharding.is_equivalent_to(
      shardings.params["projection"]["kernel"], 2)
  np.testing.assert_allclose(params["logit_scale"], np.log(1 / 0.05), rtol=1e-6)
