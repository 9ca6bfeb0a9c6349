"""What a decode step moves between devices, read from the compiled HLO: under a (4, 2)
('data', 'model') mesh with the batch on 'data', no all-gather inside the decode loop spans
'data' (each example's cache, log-probabilities and choices stay on its shard); the only ones
left gather each device's top 2k candidates over the vocabulary's 'model' shards.

A (4, 2) mesh tells the two apart by group size: a collective over 'data' has groups of 4."""
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import functools, sys
    import jax
    jax.config.update("jax_num_cpu_devices", 8)
    import numpy as np
    from tests.model.model_helpers import tiny_config
    from xfer_t5x.model import decoding
    from xfer_t5x.model.api import EncoderDecoderModel
    from xfer_t5x.runtime import partitioning

    model = EncoderDecoderModel(tiny_config(vocab_size=128))
    part = partitioning.Partitioner(partitioning.make_mesh(data=4, model=2))
    abstract = model.abstract_params()
    shardings = part.shardings(model.logical_axes(), abstract)
    params = jax.tree_util.tree_map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
    batch = {"encoder_input_tokens": jax.ShapeDtypeStruct((16, 16), np.int32,
                                                         sharding=part.batch_sharding())}
    method = sys.argv[1]
    kw = {"num_beams": 4} if method == "beam" else {}
    with part.activate():
      fn = jax.jit(functools.partial(decoding.predict_batch, model, method=method,
                                     max_decode_length=16, **kw))
      print(fn.lower(params, batch).compile().as_text())
""")

_COLLECTIVE = re.compile(r"\b(all-gather|all-reduce|all-to-all|collective-permute|"
                         r"reduce-scatter)(-start)?\(")


def _computations(text):
  comps, cur = {}, None
  for line in text.splitlines():
    m = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
    if m:
      cur = m.group(1)
      comps[cur] = []
    elif cur:
      comps[cur].append(line)
  return comps


def loop_collectives(text):
  """The collectives of the while loops' bodies (and what they call): [(op, group size, line)]."""
  comps = _computations(text)
  stack = re.findall(r"while\(.*?body=%?([\w.\-]+)", text)
  seen, out = set(), []
  while stack:
    name = stack.pop()
    if name in seen or name not in comps:
      continue
    seen.add(name)
    for line in comps[name]:
      stack += re.findall(r"(?:calls=|to_apply=|body=|condition=)%?([\w.\-]+)", line)
      m = _COLLECTIVE.search(line)
      if m:
        out.append((m.group(1), group_size(line), line.strip()[:160]))
  return out


def group_size(line):
  """Devices per replica group, from any of the HLO text's three spellings."""
  m = re.search(r"replica_groups=\{\{([\d,]+)\}", line)
  if m:
    return len(m.group(1).split(","))
  m = re.search(r"replica_groups=\[\d+,(\d+)\]<=", line)
  if m:
    return int(m.group(1))
  m = re.search(r"replica_groups=mesh\[([^\]]*)\].*?\{([^}]*)\}", line)
  if m:
    sizes = dict(re.findall(r"'(\w+)'=(\d+)", m.group(1)))
    n = 1
    for axis in re.findall(r"'(\w+)'", m.group(2)):
      n *= int(sizes[axis])
    return n
  raise AssertionError(f"unparsed replica groups: {line[:300]}")


def _compiled(method):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", SCRIPT, method], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return proc.stdout


@pytest.mark.parametrize("method", ["beam", "greedy"])
def test_no_all_gather_over_data_in_the_decode_loop(method):
  collectives = loop_collectives(_compiled(method))
  assert collectives, "found no collectives in the loop: the parser or the compile changed"
  gathers = [c for c in collectives if c[0] == "all-gather"]
  over_data = [line for _, size, line in gathers if size != 2]
  assert not over_data, "\n".join(over_data)
  if method == "beam":
    # Only the per-device top-2k candidates (values and token ids): [4 rows, 4 beams, 2 x 8].
    assert len(gathers) == 2, gathers
    assert all("[4,4,16]" in line for _, _, line in gathers), gathers
  # Every all-reduce is over 'model' too (the matmuls' partial sums, the softmax's sums).
  assert all(size == 2 for op, size, _ in collectives if op == "all-reduce"), collectives


def test_group_size_reads_every_spelling():
  assert group_size("x = all-gather(y), replica_groups={{0,1},{2,3}}, dims") == 2
  assert group_size("x = all-gather(y), replica_groups=[2,4]<=[4,2]T(1,0), d") == 4
  assert group_size("all-reduce(y), replica_groups=mesh['axis_0'=4,'axis_1'=2] {'axis_1'}, u") == 2
  assert group_size("all-gather(y), replica_groups=mesh['axis_0'=4,'axis_1'=1,'axis_2'=2] "
                    "{'axis_0'}, dimensions={0}") == 4
