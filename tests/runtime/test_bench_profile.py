"""`bench --profile`: trace events are attributed to the model's parts through the compiled
program's op names, overlapping ops are counted once in the busy time, and a real trace of the
trainer's step is found and attributed. It times nothing it asserts on."""
import jax

from xfer_t5x.model.api import EncoderDecoderModel
from xfer_t5x.model.config import T5Config
from xfer_t5x.runtime import bench, bench_profile, train_state
from xfer_t5x.runtime.optimizer import Adafactor
from xfer_t5x.runtime.partitioning import make_partitioner

HLO = """
ENTRY %main {
  %ynn_fusion.3 = f32[2048,1024]{1,0} fusion(%a, %b), kind=kCustom, calls=%c, metadata={op_name="jit(train_step)/jvp(Transformer)/Transformer.encode/encoder/layers_0/mlp/wi_0/dot_general" stack_frame_id=3}
  %dot.7 = f32[512,512]{1,0} dot(%x, %y), metadata={op_name="jit(train_step)/transpose(jvp(Transformer))/Transformer.encode/encoder/layers_0/attention/query/dot_general"}
  %fusion.2 = f32[8,8,256,256]{3,2,1,0} fusion(%p), kind=kLoop, metadata={op_name="jit(train_step)/jvp(Transformer)/Transformer.encode/encoder/layers_0/attention/softmax"}
  ROOT %add.1 = f32[] add(%u, %v), metadata={op_name="jit(train_step)/add"}
}
"""


def test_op_names_and_parts():
  names = bench_profile.op_names(HLO)
  assert set(names) == {"ynn_fusion.3", "dot.7", "fusion.2", "add.1"}
  assert bench_profile.part(names["ynn_fusion.3"]) == "forward: mlp"
  assert bench_profile.part(names["dot.7"]) == "backward: attention projections"
  assert bench_profile.part(names["fusion.2"]) == "forward: attention core"
  assert bench_profile.part(names["add.1"]) == "loss, optimizer and the rest"


def test_summary_per_step_with_overlap_counted_once_in_busy():
  names = bench_profile.op_names(HLO)
  events = [  # two steps; dot.7 overlaps ynn_fusion.3 by 100 us in the first
      {"ph": "X", "name": "ynn_fusion.3", "ts": 0, "dur": 400},
      {"ph": "X", "name": "dot.7", "ts": 300, "dur": 200},
      {"ph": "X", "name": "add.1", "ts": 600, "dur": 100},
      {"ph": "X", "name": "ynn_fusion.3", "ts": 1000, "dur": 400},
      {"ph": "X", "name": "ThunkExecutor::Execute", "ts": 0, "dur": 5000},  # not an op
      {"ph": "M", "name": "dot.7"}]
  rows, busy_ms = bench_profile.summarize(events, names, steps=2)
  assert dict(rows) == {"forward: mlp": 0.4, "backward: attention projections": 0.1,
                        "loss, optimizer and the rest": 0.05}
  assert [label for label, _ in rows][0] == "forward: mlp"  # largest first
  assert busy_ms == (500 + 100 + 400) / 2 / 1e3


def test_a_real_trace_of_the_trainers_step_is_attributed(tmp_path):
  fields, b, li, lt = bench.NAMED_CONFIGS["tiny"]
  model = EncoderDecoderModel(T5Config(**fields, dropout_rate=0.0, dtype="float32"))
  partitioner = make_partitioner()
  optimizer = Adafactor(model.logical_axes())
  state = train_state.init_state(model, optimizer, partitioner, jax.random.PRNGKey(0))
  step = bench.build_step(model, optimizer, partitioner)
  batch = jax.device_put(bench.train_batch(*bench.random_tokens(model.config.vocab_size, b,
                                                                 li, lt)),
                         partitioner.batch_sharding())
  with partitioner.activate():
    compiled = step.jitted.lower(state, batch).compile()
    state, lines, figures = bench_profile.profile(compiled, state, batch, str(tmp_path), steps=2)
  assert int(state.step) == 2
  parts = figures["parts_ms"]
  for label in ("forward: mlp", "backward: mlp", "forward: attention core",
                "backward: attention projections", "forward: logits layer",
                "loss, optimizer and the rest"):
    assert parts.get(label, 0) > 0, (label, parts)
  assert 0 < figures["busy_ms"] <= figures["wall_ms"] * 1.01
  assert lines[0].startswith("profile (2 traced steps") and len(lines) == len(parts) + 1
