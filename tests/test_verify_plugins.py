"""chains.verify plugins: discovered through entry points, and never a traceback."""

from __future__ import annotations

from pathlib import Path

from chains.report import Problem
from chains.verify_plugins import Anchored, load_plugins, run_plugins


def test_fedenv_registers_its_unlearning_check():
    names = [name for name, plugin in load_plugins() if not isinstance(plugin, Exception)]
    assert "unlearning" in names


def test_a_plugin_that_raises_or_cannot_load_is_a_problem_not_a_crash(tmp_path: Path):
    def broken(folder, anchors):
        raise RuntimeError("boom")

    def finds(folder, anchors):
        return [Problem(a.height, "found", str(folder)) for a in anchors]

    anchors = [Anchored(3, "orderer", {"event": "x", "digest": "0" * 64})]
    problems = run_plugins(
        tmp_path, anchors, [("broken", broken), ("missing", ImportError("no")), ("finds", finds)]
    )
    assert [(p.reason, p.block) for p in problems] == [
        ("plugin-error", None),
        ("plugin-error", None),
        ("found", 3),
    ]
    assert "boom" in problems[0].detail and "missing" in problems[1].detail


def test_the_unlearning_check_ignores_folders_without_certificates(tmp_path: Path):
    from fedenv.unlearning.verify_plugin import check

    assert check(tmp_path, [Anchored(1, "orderer", {"event": "episode-start"})]) == []
