"""`xfer-t5x launch` against a fake `gcloud` and a fake `kubectl` on PATH that record their
arguments: single- and multi-host slices, queued spot resources, the GKE JobSet manifest, dry
runs, a failed worker, a preemption followed by a relaunch, and hostile flag values reaching the
workers' command as data.

The fake gcloud keeps the slices' states in a JSON file; its `ssh --command` runs the command with
`bash -c` (as the TPU VM would) with HOME in the test's folder and, for the xfer-t5x command, a
fake Python (`--python`) that prints the arguments it received as JSON.
"""
import json
import os
import pathlib
import stat
import sys
import textwrap

import pytest
import yaml

from xfer_t5x import cli

FAKE_GCLOUD = textwrap.dedent('''\
    #!{python}
    import fcntl, json, os, subprocess, sys
    args = sys.argv[1:]
    with open(os.environ["FAKE_LOG"], "a") as f:
      f.write(json.dumps(args) + "\\n")
    path = os.environ["FAKE_STATE"]
    lock = open(path + ".lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    st = json.load(open(path))
    def save():
      json.dump(st, open(path, "w"))
    def opt(name):
      return next((a.split("=", 1)[1] for a in args if a.startswith(name + "=")), None)
    kind, verb, name = args[2], args[3], args[4]
    table = st["queued"] if kind == "queued-resources" else st["nodes"]
    if verb == "describe":
      if name not in table:
        print("ERROR: NOT_FOUND", file=sys.stderr); sys.exit(1)
      if table[name] in ("CREATING", "WAITING_FOR_RESOURCES"):
        st["polls"] = st.get("polls", 0) + 1
        if st["polls"] >= st.get("creating_polls", 1):
          table[name] = "ACTIVE" if kind == "queued-resources" else "READY"
          if kind == "queued-resources":
            st["nodes"][opt("--node-id") or st["qr_node"][name]] = "READY"
        save()
      print(table[name]); sys.exit(0)
    if verb == "create":
      table[name] = "WAITING_FOR_RESOURCES" if kind == "queued-resources" else "CREATING"
      st["polls"] = 0
      if kind == "queued-resources":
        st.setdefault("qr_node", {{}})[name] = opt("--node-id")
      save(); sys.exit(0)
    if verb == "delete":
      table.pop(name, None)
      if kind == "queued-resources":
        st["nodes"].pop(st["qr_node"].get(name, ""), None)
      save(); sys.exit(0)
    if verb == "scp":
      sys.exit(0)
    if verb == "ssh":
      command, worker = opt("--command"), opt("--worker")
      if " -m xfer_t5x " not in command:
        sys.exit(0)  # mkdir / install: nothing to do here
      run = st.get("runs", 0)
      st["runs"] = run + 1
      round_ = run // st["hosts"]
      if round_ in st.get("preempt_rounds", []):
        for n in st["nodes"]:
          st["nodes"][n] = "PREEMPTED"
        for q in st["queued"]:
          st["queued"][q] = "SUSPENDED"
        save()
        print("ssh: connection lost (the slice went away)"); sys.exit(255)
      save()
      fcntl.flock(lock, fcntl.LOCK_UN)
      os.makedirs(os.path.join(os.environ["FAKE_HOME"], "xfer_t5x_job"), exist_ok=True)
      env = dict(os.environ, HOME=os.environ["FAKE_HOME"], WORKER=worker,
                 FAKE_EXIT=str(st.get("fail", {{}}).get(worker, 0)))
      sys.exit(subprocess.run(["bash", "-c", command], env=env).returncode)
    sys.exit(0)
''')

FAKE_PYTHON = textwrap.dedent('''\
    #!{python}
    import json, os, sys
    assert sys.argv[1:3] == ["-m", "xfer_t5x"], sys.argv
    print("ARGV " + json.dumps(sys.argv[3:]))
    print("step 1 of the run on worker " + os.environ["WORKER"])
    sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
''')

FAKE_KUBECTL = textwrap.dedent('''\
    #!{python}
    import json, os, sys
    with open(os.environ["FAKE_LOG"], "a") as f:
      f.write(json.dumps(["kubectl"] + sys.argv[1:]) + "\\n")
''')


def _script(path, text):
  path.write_text(text.format(python=sys.executable))
  path.chmod(path.stat().st_mode | stat.S_IXUSR)
  return path


@pytest.fixture
def fake(tmp_path, monkeypatch):
  """The fake gcloud/kubectl on PATH; returns a helper to set the state and read the calls."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _script(bin_dir / "gcloud", FAKE_GCLOUD)
  _script(bin_dir / "kubectl", FAKE_KUBECTL)
  python = _script(tmp_path / "fakepy", FAKE_PYTHON)
  (tmp_path / "home").mkdir()
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
  monkeypatch.setenv("FAKE_STATE", str(tmp_path / "state.json"))
  monkeypatch.setenv("FAKE_HOME", str(tmp_path / "home"))
  monkeypatch.chdir(tmp_path)
  (tmp_path / "x.whl").write_text("a wheel")

  class Fake:
    root = tmp_path
    fakepy = str(python)

    def state(self, **kw):
      st = {"nodes": {}, "queued": {}, "hosts": 1}
      st.update(kw)
      (tmp_path / "state.json").write_text(json.dumps(st))

    def calls(self):
      p = tmp_path / "calls.jsonl"
      return [json.loads(l) for l in p.read_text().splitlines()] if p.exists() else []

  return Fake()


def _launch(fake, *flags, command=()):
  argv = ["launch", "--tpu", "job1", "--zone", "us-east5-a", "--project", "proj",
          "--wheel", str(fake.root / "x.whl"), "--python", fake.fakepy, "--poll_seconds", "0",
          *flags, "--", *command]
  return cli.main(argv)


HOSTILE = ["train", "--gin_file", "models/mt5_tiny.gin", "--gin.MODEL_DIR=gs://b/run 1",
           "--gin.MIXTURE_OR_TASK_NAME=mnli; touch PWNED", "--gin.X='a\"b' $(touch PWNED2)",
           "--gin.Y=line1\nline2 `touch PWNED3`", "--gin.Z=$HOME && echo hi"]


def _received(out):
  """{worker: the argv the fake Python got} from the launch's prefixed output."""
  got = {}
  for line in out.splitlines():
    if line.startswith("[worker ") and "] ARGV " in line:
      worker = int(line[len("[worker "):line.index("]")])
      got[worker] = json.loads(line.split("] ARGV ", 1)[1])
  return got


def test_multi_host_queued_spot_slice_runs_on_every_worker_with_hostile_values_as_data(
    fake, capsys):
  fake.state(hosts=2, creating_polls=2)
  assert _launch(fake, "--accelerator", "v5p-16", "--queued", "--spot", command=HOSTILE) == 0
  out = capsys.readouterr().out
  assert _received(out) == {0: HOSTILE, 1: HOSTILE}  # every word arrived as it was given
  assert not list(fake.root.rglob("PWNED*"))  # and nothing of it ran as a command
  assert "[worker 0] step 1 of the run on worker 0" in out
  assert "[worker 1] step 1 of the run on worker 1" in out
  assert "worker 0: 0, worker 1: 0" in out
  for w in (0, 1):  # each worker's log saved
    log = (fake.root / "launch_logs" / "job1" / f"worker_{w}.log").read_text()
    assert f"step 1 of the run on worker {w}" in log
  calls = fake.calls()
  create = [c for c in calls if c[3] == "create"]
  assert create == [["compute", "tpus", "queued-resources", "create", "job1-qr",
                     "--node-id=job1", "--zone=us-east5-a", "--project=proj",
                     "--accelerator-type=v5p-16", "--runtime-version=v2-alpha-tpuv5", "--spot"]]
  runs = [c for c in calls if c[3] == "ssh" and " -m xfer_t5x " in c[-1]]
  assert sorted(c[-2] for c in runs) == ["--worker=0", "--worker=1"]
  scp = next(c for c in calls if c[3] == "scp")
  assert scp[4].endswith("x.whl") and scp[5].endswith("constraints.txt")
  assert scp[6:] == ["job1:xfer_t5x_job/", "--worker=all", "--zone=us-east5-a", "--project=proj"]
  install = [c for c in calls if c[3] == "ssh" and "pip" in c[-1]]
  assert len(install) == 1 and "--worker=all" in install[0]
  assert "-c constraints.txt './x.whl[tpu]'" in install[0][-1]


def test_single_host_slice_is_reused_when_ready(fake, capsys):
  fake.state(hosts=1, nodes={"job1": "READY"})
  assert _launch(fake, "--accelerator", "v5p-8", command=["eval", "--gin.MODEL_DIR=/tmp/m"]) == 0
  out = capsys.readouterr().out
  assert _received(out) == {0: ["eval", "--gin.MODEL_DIR=/tmp/m"]}
  assert not [c for c in fake.calls() if c[3] in ("create", "delete")]


def test_one_failed_worker_is_reported_with_its_exit_status(fake, capsys):
  fake.state(hosts=2, nodes={"job1": "READY"}, fail={"1": 3})
  assert _launch(fake, "--accelerator", "v5p-16",
                 command=["train", "--gin.MODEL_DIR=gs://b/m"]) == 1
  out = capsys.readouterr().out
  assert "worker 0: 0, worker 1: 3 FAILED" in out
  assert not [c for c in fake.calls() if c[3] in ("create", "delete")]  # not a preemption


def test_preempted_slice_is_recreated_and_the_command_launched_again(fake, capsys):
  fake.state(hosts=2, preempt_rounds=[0])
  assert _launch(fake, "--accelerator", "v5p-16", "--spot",
                 command=["train", "--gin.MODEL_DIR=gs://b/m"]) == 0
  out = capsys.readouterr().out
  assert "was PREEMPTED during the run: recreating it" in out
  assert _received(out) == {0: ["train", "--gin.MODEL_DIR=gs://b/m"],
                            1: ["train", "--gin.MODEL_DIR=gs://b/m"]}
  verbs = [c[3] for c in fake.calls() if c[3] in ("create", "delete")]
  assert verbs == ["create", "delete", "create"]
  installs = [c for c in fake.calls() if c[3] == "ssh" and "pip" in c[-1]]
  assert len(installs) == 2  # a new slice is installed again
  assert (fake.root / "launch_logs" / "job1" / "worker_1.attempt1.log").exists()


def test_preemptions_beyond_max_restarts_end_the_launch(fake, capsys):
  fake.state(hosts=1, preempt_rounds=[0, 1])
  assert _launch(fake, "--accelerator", "v5p-8", "--max_restarts", "1",
                 command=["train"]) == 1
  out = capsys.readouterr().out
  assert "no restarts left" in out and "worker 0: 255 FAILED" in out


def test_dry_run_prints_every_command_and_runs_none(fake, capsys):
  fake.state()
  assert _launch(fake, "--accelerator", "v4-16", "--dry_run", "--reserved",
                 command=["train", "--gin.MODEL_DIR=gs://b/m"]) == 0
  out = capsys.readouterr().out
  assert fake.calls() == []
  assert ("$ gcloud compute tpus tpu-vm create job1 --zone=us-east5-a --project=proj "
          "--accelerator-type=v4-16 --version=tpu-ubuntu2204-base --reserved") in out
  assert out.count("--worker=0 ") == 1 and out.count("--worker=1 ") == 1  # v4-16: 2 hosts


def test_local_model_dir_is_refused_for_a_multi_host_slice(fake, capsys):
  fake.state()
  assert _launch(fake, "--accelerator", "v5p-16",
                 command=["train", "--gin.MODEL_DIR=/tmp/model"]) == 2
  err = capsys.readouterr().err
  assert "--gin.MODEL_DIR=/tmp/model is a local path, but v5p-16 has 2 hosts" in err
  assert "gs://" in err and fake.calls() == []


def test_grid_run_on_a_multi_host_slice_runs_on_every_worker(fake, capsys):
  fake.state(hosts=4, nodes={"job1": "READY"})
  cmd = ["grid", "run", "--gin_file", "experiments/xtreme_r.gin",
         "--gin.experiment.root_dir=gs://b/study"]
  assert _launch(fake, "--accelerator", "v4-32", command=cmd) == 0
  assert _received(capsys.readouterr().out) == {w: cmd for w in range(4)}
  assert _launch(fake, "--accelerator", "v4-32", command=[
      "grid", "run", "--gin.experiment.root_dir=/tmp/study"]) == 2
  assert "--gin.experiment.root_dir=/tmp/study is a local path" in capsys.readouterr().err


def test_local_gin_files_and_modules_travel_with_the_job(fake, capsys):
  fake.state(hosts=1, nodes={"job1": "READY"})
  (fake.root / "conf").mkdir()
  (fake.root / "conf" / "mine.gin").write_text("train.batch_size = 4\n")
  (fake.root / "my_tasks.py").write_text("# registers tasks\n")
  cmd = ["train", "--gin_file", "conf/mine.gin", "--gin_file=models/mt5_tiny.gin",
         "--module", "my_tasks"]
  assert _launch(fake, "--accelerator", "v5p-8", command=cmd) == 0
  out = capsys.readouterr().out
  assert _received(out)[0] == ["train", "--gin_file", "mine.gin",
                               "--gin_file=models/mt5_tiny.gin", "--module", "my_tasks"]
  scp = next(c for c in fake.calls() if c[3] == "scp")
  assert str(fake.root / "conf" / "mine.gin") in scp and str(fake.root / "my_tasks.py") in scp


def test_gke_jobset_manifest(fake, capsys):
  fake.state()
  (fake.root / "mine.gin").write_text("train.batch_size = 4\n")
  cmd = ["train", "--gin_file", "mine.gin", "--gin.MODEL_DIR=gs://b/m",
         "--gin.X=$(touch PWNED)"]
  assert cli.main(["launch", "--gke", "--tpu", "study", "--accelerator", "v5p-64", "--spot",
                   "--image", "us-docker.pkg.dev/p/r/xfer:1", "--env", "A=1", "--", *cmd]) == 0
  path = fake.root / "launch_logs" / "study" / "jobset.yaml"
  docs = list(yaml.safe_load_all(path.read_text()))
  config_map, jobset = docs
  assert config_map["kind"] == "ConfigMap" and config_map["data"] == {
      "mine.gin": "train.batch_size = 4\n"}
  assert jobset["kind"] == "JobSet" and jobset["metadata"]["name"] == "study"
  job = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]
  assert job["parallelism"] == job["completions"] == 8  # v5p-64: 32 chips, 8 hosts
  pod = job["template"]["spec"]
  assert pod["nodeSelector"] == {"cloud.google.com/gke-tpu-accelerator": "tpu-v5p-slice",
                                 "cloud.google.com/gke-tpu-topology": "2x4x4",
                                 "cloud.google.com/gke-spot": "true"}
  container = pod["containers"][0]
  assert container["command"] == ["python", "-m", "xfer_t5x", *cmd]  # no shell: data
  assert container["resources"]["limits"] == {"google.com/tpu": 4}
  assert container["env"] == [{"name": "A", "value": "1"}]
  assert [["kubectl", "apply", "-f", "launch_logs/study/jobset.yaml"]] == fake.calls()
  capsys.readouterr()
  # --dry_run prints the manifest and applies nothing.
  (fake.root / "calls.jsonl").unlink()
  assert cli.main(["launch", "--gke", "--tpu", "study", "--accelerator", "v6e-16", "--image",
                   "img", "--dry_run", "--", "eval", "--gin.MODEL_DIR=gs://b/m"]) == 0
  out = capsys.readouterr().out
  printed = [d for d in yaml.safe_load_all(out.split("# manifest written")[0])]
  assert printed[-1]["spec"]["replicatedJobs"][0]["template"]["spec"]["parallelism"] == 4
  assert fake.calls() == []
