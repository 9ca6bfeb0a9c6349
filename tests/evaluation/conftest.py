"""A tiny model trained briefly on the demo data, shared by the evaluation tests.

Trained a few steps with a large learning rate on `xnli_train` (the demo's NLI labels follow
one keyword), it says label words with clear margins and scores differently per language, so
identity and agreement tests compare real, varied numbers (CONTRACTS.md "Numbers in tests").
"""
import pytest

LANGS = ("en", "de", "es", "sw", "zh")  # five of the demo's eight languages: enough, and quicker
STEPS = (15, 30)
# gin/models/mt5_tiny.gin's architecture, float32 activations.
TINY = dict(emb_dim=64, num_heads=4, head_dim=16, mlp_dim=128, num_encoder_layers=2,
            num_decoder_layers=2, dtype="float32", dropout_rate=0.0)


def build(root: str, spm: str):
  """(vocabulary, model) for the demo data at root, registering the tasks with XNLI and PAN-X
  restricted to LANGS."""
  from xfer_t5x.model.api import EncoderDecoderModel  # pylint: disable=g-import-not-at-top
  from xfer_t5x.model.config import T5Config  # pylint: disable=g-import-not-at-top
  from xfer_t5x.tasks import demo_data, study, vocab  # pylint: disable=g-import-not-at-top
  voc = vocab.build_local_vocabulary(demo_data.demo_texts(root), spm)
  study.register_tasks(voc, data_dir=root, languages={"xnli": LANGS, "panx": LANGS})
  return voc, EncoderDecoderModel(T5Config(**TINY).with_vocab(voc.vocab_size))


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
  """{"model_dir", "spm", "data"}: checkpoints at STEPS of a briefly trained tiny model."""
  import jax  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime import checkpoints, data as data_lib, train_state  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime.optimizer import Adafactor, learning_rate_schedule  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime.partitioning import Partitioner, make_mesh  # pylint: disable=g-import-not-at-top
  from xfer_t5x.runtime.train_step import make_train_step  # pylint: disable=g-import-not-at-top
  from xfer_t5x.tasks import demo_data  # pylint: disable=g-import-not-at-top

  tmp = tmp_path_factory.mktemp("trained")
  root = demo_data.write_demo_data(str(tmp / "data"), n_train=96, n_eval=8)
  spm = str(tmp / "spm.model")
  _, model = build(root, spm)
  part = Partitioner(make_mesh(1, 1, devices=jax.devices()[:1]))
  opt = Adafactor(model.logical_axes(), learning_rate=learning_rate_schedule("constant", 1e-2))
  state = train_state.init_state(model, opt, part, jax.random.PRNGKey(0))
  step_fn = make_train_step(model, opt, part, use_dropout=False)
  it = data_lib.DataIterator.from_task("xnli_train", {"inputs": 64, "targets": 8}, "train", 16,
                                       seed=0)
  with checkpoints.Checkpointer(tmp / "model", async_save=False, keep=None) as ck:
    for step in range(1, STEPS[-1] + 1):
      state, _ = step_fn(state, data_lib.to_global(next(it), part.mesh))
      if step in STEPS:
        ck.save(step, state, force=True)
  return {"model_dir": tmp / "model", "spm": spm, "data": root}
