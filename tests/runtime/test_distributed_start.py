"""Cluster start: every TPU host joins through `jax.distributed.initialize()` with no arguments;
CPU/GPU clusters through an explicit coordinator; a lone process stays alone; twice is harmless.
(The explicit path across real local processes: test_multiprocess.py.)"""
import jax
import pytest

from xfer_t5x.runtime import distributed


@pytest.fixture
def fresh(monkeypatch):
  calls = []
  monkeypatch.setattr(distributed, "_initialized", False)
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append((a, k)))
  for var in ("XFER_T5X_COORDINATOR", "XFER_T5X_NUM_PROCESSES", "XFER_T5X_PROCESS_ID",
              "MEGASCALE_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES"):
    monkeypatch.delenv(var, raising=False)
  return calls


def test_a_tpu_host_joins_without_any_environment_variables(fresh, monkeypatch):
  monkeypatch.setattr(distributed, "tpu_chips_on_this_host", lambda: 4)
  distributed.initialize()
  distributed.initialize()  # a second call is harmless
  assert fresh == [((), {})]


def test_a_lone_cpu_process_does_not_start_jax_distributed(fresh, monkeypatch):
  monkeypatch.setattr(distributed, "tpu_chips_on_this_host", lambda: 0)
  distributed.initialize()
  assert fresh == []


def test_cpu_and_gpu_clusters_use_the_explicit_coordinator(fresh, monkeypatch):
  monkeypatch.setattr(distributed, "tpu_chips_on_this_host", lambda: 0)
  monkeypatch.setenv("XFER_T5X_COORDINATOR", "10.0.0.2:1234")
  monkeypatch.setenv("XFER_T5X_NUM_PROCESSES", "4")
  monkeypatch.setenv("XFER_T5X_PROCESS_ID", "3")
  distributed.initialize()
  assert fresh == [(("10.0.0.2:1234", 4, 3), {})]


def test_a_lone_tpu_vm_without_a_cluster_runs_as_one_process(fresh, monkeypatch):
  def no_cluster(*a, **k):
    raise ValueError("coordinator_address should be defined.")
  monkeypatch.setattr(jax.distributed, "initialize", no_cluster)
  monkeypatch.setattr(distributed, "tpu_chips_on_this_host", lambda: 1)
  distributed.initialize()  # no exception: one process
  assert distributed._initialized  # pylint: disable=protected-access


def test_jax_platforms_cpu_rules_the_tpu_out(monkeypatch):
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  assert distributed.tpu_chips_on_this_host() == 0
