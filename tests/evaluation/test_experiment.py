"""Experiments in gin and their expansion into runs and phases (no training here)."""
import os

import gin
import pytest

from xfer_t5x.experiments import experiment as exp_lib
from xfer_t5x.experiments import grid
from xfer_t5x.experiments import phases
from xfer_t5x.tasks import demo_data

ROOT = "/tmp/xfer_t5x_test_experiment_root"


@pytest.fixture(autouse=True)
def _clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def _plan(files, *bindings):
  return grid.load_plan(files, [f"experiment.root_dir = {ROOT!r}", *bindings])


def test_demo_expands_into_runs_sharing_intermediate_phases():
  plan = _plan(["experiments/demo.gin"])
  assert len(plan.runs) == 2 * 5 * 2  # sizes x intermediates x targets (1 seed)
  kinds = [p.kind for p in plan.phases]
  assert kinds.count("intermediate") == 2 * 4  # (size, mlm|mnli|mnli_translated|sst2): shared
  assert kinds.count("target") == 2 * 5 * 2
  assert kinds.count("evaluate") == 20
  # the two baselines are intermediate values like the tasks (CONTRACTS.md)
  mlm = plan.phase("demo/tiny/seed0/mlm/intermediate")
  assert mlm.task == "mlm" and dict(mlm.feature_lengths) == {"inputs": 48, "targets": 16}
  assert plan.phase("demo/mini/seed0/mnli_translated/intermediate").task == "mnli_translated"
  ids = [r.run_id for r in plan.runs]
  assert len(set(ids)) == len(ids)
  assert "demo/tiny/mnli/xnli/seed0" in ids
  dirs = [p.model_dir for p in plan.phases if p.kind != "evaluate"]
  assert len(set(dirs)) == len(dirs), "every training phase has its own model dir"
  assert all(d.startswith(ROOT + "/demo/") for d in dirs)
  assert plan.results_db == os.path.join(ROOT, "results.sqlite")
  assert plan.state_dir == ROOT

  run = plan.run("demo/mini/mnli/panx/seed0")
  inter, stage, ev = (plan.phase(p) for p in run.phase_ids)
  assert (inter.kind, stage.kind, ev.kind) == ("intermediate", "target", "evaluate")
  assert inter.task == "mnli" and inter.initial_checkpoint is None  # demo: random init
  assert inter.steps == 40 and inter.batch_size == 8
  assert stage.task == "panx_train"
  assert stage.initial_checkpoint == os.path.join(inter.model_dir, "checkpoint_40")
  assert stage.depends_on == (inter.phase_id,)
  assert dict(stage.feature_lengths) == {"inputs": 64, "targets": 56}
  assert ev.model_dir == stage.model_dir and ev.steps == stage.steps
  # demo.gin evaluates every language the demo data has, in its order
  assert ev.eval_tasks == tuple(f"panx.{l}" for l in demo_data.LANGUAGES)
  assert "models/mt5_mini.gin" in inter.gin_files
  # the mnli intermediate phase is the same for both targets
  xnli_run = plan.run("demo/mini/mnli/xnli/seed0")
  assert xnli_run.phase_ids[0] == run.phase_ids[0]

  none_run = plan.run("demo/tiny/none/xnli/seed0")
  assert len(none_run.phase_ids) == 2
  first = plan.phase(none_run.phase_ids[0])
  assert first.kind == "target" and first.initial_checkpoint is None and not first.depends_on
  # phases come after what they depend on
  order = {p.phase_id: i for i, p in enumerate(plan.phases)}
  assert all(order[d] < order[p.phase_id] for p in plan.phases for d in p.depends_on)


def test_phase_bindings_set_the_run_file_macros():
  plan = _plan(["experiments/demo.gin"], "experiment.seeds = [3]")
  stage = plan.phase("demo/tiny/seed3/sst2/xnli/1-xnli_train")
  b = "\n".join(stage.gin_bindings)
  assert f"MODEL_DIR = {stage.model_dir!r}" in b
  assert "MIXTURE_OR_TASK_NAME = 'xnli_train'" in b
  assert "TRAIN_STEPS = 40" in b and "train.seed = 3" in b
  assert f"INITIAL_CHECKPOINT = {stage.initial_checkpoint!r}" in b
  assert "TASK_FEATURE_LENGTHS = {'inputs': 80, 'targets': 8}" in b


def test_multi_stage_target_chains_its_stages_and_tatoeba_uses_xquad():
  plan = _plan(["experiments/demo.gin"],
               "experiment.sizes = {'tiny': 'models/mt5_tiny.gin'}",
               "experiment.intermediates = ['none', 'mnli']",
               "experiment.targets = ['xcopa', 'xquad', 'tatoeba']",
               "experiment.languages = {'xcopa': ['et', 'sw'], 'tatoeba': ['de']}",
               "experiment.stage_steps = {'xcopa_train.copa': 7}")
  run = plan.run("demo/tiny/mnli/xcopa/seed0")
  inter, siqa, copa, ev = (plan.phase(p) for p in run.phase_ids)
  assert (siqa.task, copa.task) == ("xcopa_train.siqa", "xcopa_train.copa")
  assert siqa.initial_checkpoint == inter.final_checkpoint
  assert copa.initial_checkpoint == siqa.final_checkpoint
  assert copa.steps == 7 and siqa.steps == 40
  assert ev.model_dir == copa.model_dir and ev.steps == 7
  assert run.stages == ("xcopa_train.siqa", "xcopa_train.copa")
  assert len(plan.run("demo/tiny/mnli/xquad/seed0").languages) == 12  # catalog default

  tat = plan.run("demo/tiny/mnli/tatoeba/seed0")
  xquad = plan.run("demo/tiny/mnli/xquad/seed0")
  assert tat.phase_ids[:-1] == xquad.phase_ids[:-1]
  tev = plan.phase(tat.eval_phase_id)
  assert tev.model_dir == plan.phase(xquad.phase_ids[-2]).model_dir
  assert tev.eval_tasks == ("tatoeba.de",)


def test_retrieval_demo_trains_dual_encoders_and_scores_tatoeba_beside():
  plan = _plan(["experiments/demo.gin", "experiments/demo_retrieval.gin"])
  kinds = [p.kind for p in plan.phases]
  assert (kinds.count("intermediate"), kinds.count("target"), kinds.count("evaluate")) == (
      2, 6, 12)
  assert len(plan.runs) == 12
  lareqa = plan.phase("demo_retrieval/tiny/seed0/mlm/lareqa/1-lareqa_train")
  files = list(lareqa.gin_files)
  assert files.index(exp_lib.DUAL_ENCODER_FILE) == files.index("runs/finetune.gin") + 1
  assert lareqa.task == "lareqa_train" and dict(lareqa.feature_lengths) == {
      "inputs": 48, "targets": 160}
  assert lareqa.initial_checkpoint == plan.phase(
      "demo_retrieval/tiny/seed0/mlm/intermediate").final_checkpoint
  ev = plan.phase("demo_retrieval/tiny/seed0/mlm/lareqa/evaluate")
  assert exp_lib.DUAL_ENCODER_FILE in ev.gin_files
  assert dict(ev.feature_lengths)["inputs"] == 160  # candidates embedded as trained
  xquad = plan.phase("demo_retrieval/tiny/seed0/mlm/xquad/1-xquad_train")
  assert exp_lib.DUAL_ENCODER_FILE not in xquad.gin_files
  # Tatoeba: its own score with the xquad model's encoder, and the dual encoder's beside it.
  own = plan.run("demo_retrieval/tiny/mlm/tatoeba/seed0")
  beside = plan.run("demo_retrieval/tiny/mlm/tatoeba-lareqa/seed0")
  assert own.result_stage == "evaluate" and beside.result_stage == "evaluate:lareqa_dual_encoder"
  assert beside.target == own.target == "tatoeba"
  own_ev, beside_ev = plan.phase(own.eval_phase_id), plan.phase(beside.eval_phase_id)
  assert own_ev.model_dir == xquad.model_dir and exp_lib.DUAL_ENCODER_FILE not in own_ev.gin_files
  assert beside_ev.model_dir == lareqa.model_dir
  assert exp_lib.DUAL_ENCODER_FILE in beside_ev.gin_files
  assert "evaluate.embedding_layer = 'final'" in beside_ev.gin_bindings
  assert beside.phase_ids[:-1] == plan.run("demo_retrieval/tiny/mlm/lareqa/seed0").phase_ids[:-1]
  assert beside_ev.eval_tasks == own_ev.eval_tasks


def test_study_experiment_file_expands():
  plan = _plan(["experiments/xtreme_r.gin"])
  exp = plan.experiment
  assert [s for s, _ in exp.sizes] == ["base", "large", "xl", "xxl"]
  assert len(exp.intermediates) == 11 and exp.intermediates[:2] == ("none", "mlm")
  targets = [t for t, _ in exp.targets]
  assert {"lareqa", "mewslix", "tatoeba"} <= set(targets) and len(targets) == 10
  kinds = [p.kind for p in plan.phases]
  assert len(plan.runs) == 4 * 11 * 10 * 3 + 4 * 11 * 3  # + Tatoeba with the LAReQA encoder
  assert kinds.count("intermediate") == 4 * 10 * 3
  assert kinds.count("target") == 4 * 11 * 3 * 10  # nine trained targets, xcopa with two stages
  lareqa = plan.phase("xtreme_r/xxl/seed2/squad_v2/lareqa/1-lareqa_train")
  assert dict(lareqa.feature_lengths) == {"inputs": 128, "targets": 512}
  assert exp_lib.DUAL_ENCODER_FILE in lareqa.gin_files
  assert lareqa.gin_files[-1] == "plans/mt5_xxl_v5p64.gin"  # the size's plan file still last
  mlm = plan.phase("xtreme_r/base/seed0/mlm/intermediate")
  assert mlm.task == "mlm" and dict(mlm.feature_lengths) == {"inputs": 1024, "targets": 229}
  assert kinds.count("evaluate") == len(plan.runs)
  none_xnli = plan.phase("xtreme_r/xl/seed1/none/xnli/1-xnli_train")
  assert none_xnli.initial_checkpoint == (
      "gs://t5-data/pretrained_models/t5x/mt5_xl/checkpoint_1000000")
  assert dict(none_xnli.feature_lengths) == {"inputs": 1024, "targets": 128}
  assert dict(plan.phase("xtreme_r/xl/seed1/none/xquad/1-xquad_train").feature_lengths) == {
      "inputs": 1024, "targets": 512}
  assert "partitioning/2d.gin" in none_xnli.gin_files
  tatoeba = plan.phase("xtreme_r/base/seed0/mnli/tatoeba/evaluate")
  assert tatoeba.model_dir == plan.phase("xtreme_r/base/seed0/mnli/xquad/1-xquad_train").model_dir
  assert dict(tatoeba.feature_lengths) == {"inputs": 512, "targets": 8}
  assert "evaluate.feature_lengths = {'inputs': 512, 'targets': 8}" in tatoeba.gin_bindings


def test_remote_root_needs_a_local_state_dir():
  with pytest.raises(exp_lib.ExperimentError, match="state_dir"):
    grid.load_plan(["experiments/demo.gin"], ["experiment.root_dir = 'gs://bucket/grid'"])
  plan = grid.load_plan(["experiments/demo.gin"], ["experiment.root_dir = 'gs://bucket/grid/'"],
                        state_dir="/tmp/grid_state")
  assert plan.state_dir == "/tmp/grid_state"
  assert plan.results_db == "/tmp/grid_state/results.sqlite"
  assert plan.phases[0].model_dir.startswith("gs://bucket/grid/demo/tiny/")


@pytest.mark.parametrize("binding, message", [
    ("experiment.targets = {'xnli': []}", "has no stages"),
    ("experiment.targets = ['nosuch']", "unknown target"),
    ("experiment.targets = ['tatoeba']", "add 'xquad'"),
    ("experiment.seeds = [1, 1]", "distinct seeds"),
    ("experiment.target_steps = 0", "at least 1"),
    ("experiment.feature_lengths = {'default': {'inputs': 8}}", "exactly 'inputs' and 'targets'"),
    ("experiment.name = 'a/b'", "without '/'"),
])
def test_bad_experiments_fail_with_the_binding_named(binding, message):
  with pytest.raises(exp_lib.ExperimentError, match=message):
    _plan(["experiments/demo.gin"], binding)


def test_feature_lengths_lookup_order():
  exp = exp_lib.experiment(name="x", sizes={"t": "models/mt5_tiny.gin"}, targets=["xnli", "xquad"],
                           feature_lengths={"xnli_train": {"inputs": 9, "targets": 3},
                                            "xquad": {"inputs": 11, "targets": 5}})
  assert exp.lengths_for("xnli_train", "xnli") == {"inputs": 9, "targets": 3}
  assert exp.lengths_for("xquad_train", "xquad") == {"inputs": 11, "targets": 5}
  assert exp.lengths_for("mnli") == exp_lib.DEFAULT_FEATURE_LENGTHS
  # A dual encoder's pairs keep their own lengths under a bound default; bound by name they win.
  pairs = exp_lib.experiment(name="x", sizes={"t": "models/mt5_tiny.gin"}, targets=["lareqa"],
                             feature_lengths={"default": {"inputs": 7, "targets": 7}})
  assert pairs.lengths_for("lareqa_train", "lareqa") == {"inputs": 128, "targets": 512}
  assert pairs.lengths_for("lareqa") == {"inputs": 7, "targets": 7}
  assert exp_lib.experiment(
      name="x", sizes={"t": "models/mt5_tiny.gin"}, targets=["lareqa"],
      feature_lengths={"lareqa_train": {"inputs": 5, "targets": 6}}).lengths_for(
          "lareqa_train", "lareqa") == {"inputs": 5, "targets": 6}
  bare = exp_lib.experiment(name="x", sizes={"t": "models/mt5_tiny.gin"}, targets=["udpos"])
  assert bare.lengths_for("udpos_train", "udpos") == {"inputs": 1024, "targets": 512}


def test_phase_config_hash_is_stable_and_distinguishes_phases():
  plan = _plan(["experiments/demo.gin"])
  a, b = plan.phases[0], plan.phases[1]
  ha = phases.config_hash(a)
  assert ha == phases.config_hash(a) and len(ha) == 64
  assert ha != phases.config_hash(b)
  other = _plan(["experiments/demo.gin"], "experiment.target_steps = 41")
  assert phases.config_hash(other.phase(a.phase_id)) != ha  # TRAIN_STEPS differs


def test_phase_config_hash_ignores_the_rest_of_the_grid():
  plan = _plan(["experiments/demo.gin"])
  wider = _plan(["experiments/demo.gin"], "experiment.seeds = [0, 1]",
                "experiment.intermediates = ['none', 'mnli', 'sst2', 'qqp']")
  pid = "demo/tiny/seed0/mnli/xnli/1-xnli_train"
  assert phases.config_hash(plan.phase(pid)) == phases.config_hash(wider.phase(pid))
  moved = grid.load_plan(["experiments/demo.gin"], ["experiment.root_dir = '/elsewhere/grid'"])
  assert phases.config_hash(moved.phase(pid)) == phases.config_hash(plan.phase(pid))
  gin.clear_config()
  phases.configure(plan.phase(pid), finalize=False)
  text = phases.phase_config_text()
  assert "experiment." not in text and "TRAIN_STEPS = 40" in text


def test_each_size_has_its_own_files_and_batches():
  plan = _plan(["experiments/demo.gin"])
  for p in plan.phases:
    if p.size == "mini":
      assert p.gin_files[-1] == "plans/demo_mini_cpu.gin", p.phase_id  # parsed last
      assert p.batch_size == 8
    else:
      assert "plans/demo_mini_cpu.gin" not in p.gin_files
      assert p.batch_size == 16, p.phase_id
  tiny = next(p for p in plan.phases if p.size == "tiny" and p.kind == "target")
  assert "BATCH_SIZE = 16" in tiny.gin_bindings
  # The phase's parsed config holds the size's file: mini's mesh is data-parallel.
  mini = next(p for p in plan.phases if p.size == "mini" and p.kind == "intermediate")
  phases.configure(mini, finalize=False)
  try:
    assert gin.query_parameter("standard_logical_axis_rules.parameter_partitioning_dims") == 1
    assert gin.query_parameter("make_mesh.model") == 1
  finally:
    gin.clear_config()


def test_study_sizes_use_their_plan_files():
  plan = _plan(["experiments/xtreme_r.gin"], "experiment.state_dir = '/tmp/xfer_t5x_state'")
  by_size = {p.size: p for p in plan.phases if p.kind == "target"}
  assert by_size["xxl"].gin_files[-1] == "plans/mt5_xxl_v5p64.gin"
  assert by_size["large"].gin_files[-1] == "plans/mt5_large_v5p8.gin"
  assert by_size["base"].gin_files[-1] == "plans/mt5_base_v5p8.gin"
  assert by_size["xl"].gin_files[-1] == "plans/mt5_xl_v5p8.gin"
  phases.configure(by_size["xxl"], finalize=False)
  try:
    assert gin.query_parameter("%MODEL_PARALLEL") == 8
    assert gin.query_parameter("standard_logical_axis_rules.parameter_partitioning_dims") == 2
  finally:
    gin.clear_config()
  phases.configure(by_size["large"], finalize=False)
  try:
    assert gin.query_parameter("train.num_microbatches") == 4
    assert gin.query_parameter("standard_logical_axis_rules.parameter_partitioning_dims") == 1
  finally:
    gin.clear_config()


@pytest.mark.parametrize("binding,message", [
    ("experiment.size_batch_sizes = {'tiny': {'eval': 4}}", "'intermediate' and/or 'target'"),
    ("experiment.size_batch_sizes = {'tiny': {'target': 0}}", "must be an integer >= 1"),
])
def test_bad_size_batches_are_refused(binding, message):
  with pytest.raises(exp_lib.ExperimentError, match=message):
    _plan(["experiments/demo.gin"], binding)
