"""benchmarks/roofline.py runs on the current engine and prints fractions of the peak that are
fractions (its figures are the denominators of every speed claim in the README)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "roofline.py"
pytestmark = pytest.mark.usefixtures("shared_cache")


def test_the_roofline_table_runs_and_its_fractions_are_fractions(capsys):
    spec = importlib.util.spec_from_file_location("roofline_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--scenario", "tiny", "--repeats", "1", "--local-steps", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    workloads = [row.split("|")[1].strip() for row in rows[2:]]
    assert [w.split(",")[0].split(" 1 x")[0] for w in workloads] == [
        "local training",
        "coalition evaluation",
    ]
    for row in rows[2:]:
        model, executed = (int(f) for f in re.findall(r"(\d+)%", row.split("|")[-2]))
        assert 0 < model <= executed <= 100, row
