"""Verify plugins: checks that other packages add to `python -m chains verify` of a run folder.

`chains` knows bytes and digests, never the models that produced them, so a check that must
recompute something (say, a model rebuilt from stored updates) lives in the package that knows
how, and registers itself under the entry-point group `chains.verify` (`[project.entry-points]`
of its `pyproject.toml`), e.g.

    [project.entry-points."chains.verify"]
    unlearning = "fedenv.unlearning.verify_plugin:check"

A plugin is a callable `check(folder, anchors)`: `folder` is the run folder (a `pathlib.Path`)
whose public ledger verified, `anchors` the verified ledger's `anchor` records as
`Anchored(height, sender, payload)`, in ledger order. It returns the `Problem`s it finds (each
with a reason and a detail naming the file), which join that ledger's report. Plugins are loaded
only when a run folder is verified (so `import chains` stays light); a plugin that cannot be
loaded or raises is itself a problem (`plugin-error`), never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from chains.report import Problem

__all__ = ["GROUP", "Anchored", "Plugin", "load_plugins", "run_plugins"]

GROUP = "chains.verify"


@dataclass(frozen=True)
class Anchored:
    """One verified `anchor` record: its block, the sender's identity id, its payload."""

    height: int
    sender: str
    payload: dict[str, Any]


Plugin = Callable[[Path, Sequence[Anchored]], Iterable[Problem]]


def load_plugins() -> list[tuple[str, Plugin | Exception]]:
    """(name, plugin or the error loading it) of every registered plugin, sorted by name."""
    loaded: list[tuple[str, Plugin | Exception]] = []
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        try:
            loaded.append((point.name, point.load()))
        except Exception as exc:  # noqa: BLE001 -- a broken plugin is a finding, not a crash
            loaded.append((point.name, exc))
    return loaded


def run_plugins(folder: Path, anchors: Sequence[Anchored],
                plugins: Sequence[tuple[str, Plugin | Exception]] | None = None) -> list[Problem]:
    """The problems every plugin finds in `folder`."""
    problems: list[Problem] = []
    for name, plugin in load_plugins() if plugins is None else plugins:
        if isinstance(plugin, Exception):
            problems.append(Problem(None, "plugin-error", f"{name}: cannot load: {plugin!r}"))
            continue
        try:
            problems.extend(plugin(folder, anchors))
        except Exception as exc:  # noqa: BLE001 -- foreign code: report, never crash
            problems.append(Problem(None, "plugin-error", f"{name}: {exc!r}"))
    return problems
