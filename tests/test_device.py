from __future__ import annotations

import os

import pytest
import torch

from fedenv.device import check_device, resolve_device, resolve_dtype
from fedenv.errors import ConfigError


def test_auto_picks_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error():
    with pytest.raises(ConfigError, match="CUDA is not available") as info:
        resolve_device("cuda")
    assert info.value.field == "device"


@pytest.mark.parametrize("bad", ["tpu", "gpu0", 3, "cuda:x", "mps", "mps:0"])
def test_unknown_devices_are_rejected(bad):
    with pytest.raises(ConfigError, match="device") as info:
        resolve_device(bad)
    assert info.value.field == "device"
    with pytest.raises(ConfigError) as checked:
        check_device(bad)
    assert checked.value.problem == info.value.problem  # one check, one message


def test_mps_is_refused_with_the_reason():
    with pytest.raises(
        ConfigError, match=r"'mps' is not supported \(MPS has no float64\); use auto"
    ):
        check_device("mps")


@pytest.mark.parametrize("good", ["auto", "cpu", "cuda", "cuda:1"])
def test_the_device_names_fedenv_runs_on(good):
    assert check_device(good) == good


def test_dtypes():
    assert resolve_dtype("auto", "cpu") == torch.float32
    if torch.cuda.is_available():
        assert resolve_dtype("auto", "cuda") in (torch.bfloat16, torch.float16)
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    assert resolve_dtype("float16") == torch.float16
    assert resolve_dtype(torch.float32) == torch.float32
    for bad in ("fp8", "int8", torch.int64):
        with pytest.raises(ConfigError, match="dtype"):
            resolve_dtype(bad)


def test_threads_are_this_processs_share_of_its_cpus(monkeypatch):
    from fedenv.device import PROCESSES_VARIABLE, available_cpus, cpu_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4}, raising=False)
    assert available_cpus() == 5
    monkeypatch.delenv(PROCESSES_VARIABLE, raising=False)
    assert cpu_threads() == 5
    assert [cpu_threads(n) for n in (1, 2, 3, 5, 8)] == [5, 2, 1, 1, 1]  # never oversubscribed
    monkeypatch.setenv(PROCESSES_VARIABLE, "2")
    assert cpu_threads() == 2


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_a_bad_process_count_names_the_variable(monkeypatch, bad):
    from fedenv.device import PROCESSES_VARIABLE, cpu_threads

    monkeypatch.setenv(PROCESSES_VARIABLE, bad)
    with pytest.raises(ConfigError, match=bad) as info:
        cpu_threads()
    assert info.value.field == PROCESSES_VARIABLE


def test_the_engine_takes_its_share_unless_told(monkeypatch, test_base):
    import copy

    from fedenv.data.benchmark import Benchmark
    from fedenv.device import PROCESSES_VARIABLE
    from fedenv.engine.demo import org_datasets
    from fedenv.engine.federation import FederatedEngine
    from fedenv.engine.settings import EngineConfig, TrainingSettings

    model, tokenizer = test_base
    benchmark = Benchmark.generated(tokenizer, ["bank"], 1, 0, device="cpu")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    monkeypatch.setenv(PROCESSES_VARIABLE, "3")

    def engine(threads: int):
        config = EngineConfig(training=TrainingSettings(cpu_threads=threads))
        datasets = org_datasets(1, 4, seed=0)
        return FederatedEngine(copy.deepcopy(model), tokenizer, datasets, benchmark, config)

    assert engine(0).num_threads == 2
    assert engine(5).num_threads == 5


def test_every_torch_op_of_a_step_runs_on_the_engines_threads():
    """The whole step (training, merging, hashing, scoring, defences) runs on the engine's
    threads, and the caller's setting is back after: a piece left on torch's process default
    oversubscribes the CPUs as soon as two env processes share them (two default-scenario
    processes then ran at x1.18 of one instead of x1.8)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    import fedenv

    class ThreadsSeen(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen: dict[int, str] = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.setdefault(torch.get_num_threads(), str(func))
            return func(*args, **(kwargs or {}))

    caller = torch.get_num_threads()
    torch.set_num_threads(2)
    env = fedenv.parallel_env("tiny", training={"cpu_threads": 1})
    try:
        env.reset(seed=0)
        probe = ThreadsSeen()
        with probe:
            env.step({a: env.action_space(a).n - 1 for a in env.agents})
        assert torch.get_num_threads() == 2
        assert set(probe.seen) == {1}, f"ops on other thread counts: {probe.seen}"
    finally:
        env.close()
        torch.set_num_threads(caller)
