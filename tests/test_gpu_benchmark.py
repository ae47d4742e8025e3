"""benchmarks/gpu.py: refuses clearly without CUDA, and its code runs (on the CPU, test preset)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without CUDA")
def test_refuses_without_cuda(capsys):
    assert load_script().main([]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err


def test_every_row_runs_on_the_cpu(monkeypatch, test_cache_dir, test_base, capsys):
    monkeypatch.setenv("FEDENV_CACHE", str(test_cache_dir))  # the session's "test" build
    small = "--preset test --orgs 2 --local-steps 2 --examples 8 --dialogues 1 --repeats 1"
    argv = [*small.split(), "--env-steps", "1", "--dtype", "float32", "--allow-cpu"]
    assert load_script().main(argv) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    labels = [line.split("|")[1].strip() for line in table[2:]]
    assert labels == [
        "local training",
        "coalition evaluation (3)",
        "round (train, LOO, commit)",
        "env step (level 1)",
    ]
    training, evaluation = table[2].split("|"), table[3].split("|")
    assert float(training[-2]) < 1e-5 and float(evaluation[-2]) < 1e-5  # float32: equal
