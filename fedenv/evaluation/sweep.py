"""Sweeps: a comparison repeated over a grid of scenario settings, with the same seeds in every cell.

``--sweep 'incentives.reward_pool=5,10,20' --sweep 'lora.r=4,8'`` is an *axis* each; the grid is
their product (here 3 x 2 cells).  A cell is the scenario with the cell's values applied as
overrides, renamed ``<scenario>[incentives.reward_pool=5,lora.r=4]``; every cell is played with
every mechanism and the same seeds, so cells and mechanisms are both compared over common
random numbers.  Values are JSON (``4``, ``true``, ``"fedavg"``, ``[1, 2]``) or else plain
strings, split at the commas that are not inside brackets or quotes.

Everything is checked before any run (:func:`expand_plan`): the syntax of each axis, a key given
twice (across axes, or in an axis and an ``--override``; aliases such as ``reward_pool`` count as
their full path), a value repeated within an axis, and every cell's scenario, validated like a
file.  Errors are :class:`~fedenv.errors.ConfigError` naming ``sweep``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fedenv.errors import ConfigError
from fedenv.evaluation.play import Plan
from fedenv.scenario import Scenario
from fedenv.scenario.overrides import OVERRIDE_ALIASES


@dataclass(frozen=True)
class SweepAxis:
    """One ``--sweep KEY=V1,V2,...``: the key (its full dotted path) and its values."""

    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Cell:
    """One point of the grid: the base scenario's name, and the value of every axis."""

    scenario: str
    keys: Mapping[str, Any]

    @property
    def name(self) -> str:
        settings = ",".join(f"{k}={_text(v)}" for k, v in self.keys.items())
        return f"{self.scenario}[{settings}]"


def canonical_key(key: str) -> str:
    """The full dotted path of an override key (``reward_pool`` -> ``incentives.reward_pool``)."""
    return OVERRIDE_ALIASES.get(key, key)


def _split(text: str) -> list[str]:
    """Split at commas outside brackets, braces and double quotes."""
    parts, depth, quoted, current = [], 0, False, []
    for char in text:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "[{":
            depth += 1
        elif not quoted and char in "]}":
            depth -= 1
        if char == "," and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def parse_sweeps(items: Sequence[str]) -> list[SweepAxis]:
    """``["KEY=V1,V2", ...]`` -> axes; a clear ConfigError("sweep") for anything malformed."""
    axes: list[SweepAxis] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("sweep", f"expected KEY=V1,V2,..., got {item!r}")
        parts = _split(raw)
        if any(not p for p in parts):
            raise ConfigError("sweep", f"{item!r}: empty value (values are comma-separated)")
        values = tuple(_value(p) for p in parts)
        texts = [_text(v) for v in values]
        for i, text in enumerate(texts):
            if text in texts[:i]:
                raise ConfigError("sweep", f"{item!r}: value {text} is given twice")
        full = canonical_key(key)
        for axis in axes:
            if axis.key == full:
                raise ConfigError("sweep", f"key {full!r} is swept twice")
        axes.append(SweepAxis(full, values))
    return axes


def check_duplicate_keys(overrides: Iterable[str], axes: Sequence[SweepAxis]) -> None:
    """Refuse a key that is both overridden and swept (aliases count as their full path)."""
    swept = {a.key for a in axes}
    for key in overrides:
        if canonical_key(key) in swept:
            raise ConfigError(
                "sweep", f"{canonical_key(key)!r} is both swept and set by --override; drop one"
            )


def cells(scenario: Scenario, axes: Sequence[SweepAxis]) -> list[tuple[Cell, Scenario]]:
    """Every cell of the grid over ``scenario``, each with its validated scenario."""
    out = []
    for combination in itertools.product(*(a.values for a in axes)):
        cell = Cell(scenario.name, {a.key: v for a, v in zip(axes, combination)})
        try:
            variant = scenario.with_overrides(**cell.keys)
        except ConfigError as error:
            raise ConfigError(
                "sweep", f"{scenario.name}: {error.field}: {error.problem} (cell {cell.name})"
            ) from None
        out.append((cell, variant.with_overrides(name=cell.name)))
    return out


def expand_plan(plan: Plan, axes: Sequence[SweepAxis]) -> tuple[Plan, dict[str, Cell]]:
    """The plan over every cell of every scenario, and ``{cell scenario name: cell}``."""
    if not axes:
        return plan, {}
    grid = [pair for scenario in plan.scenarios for pair in cells(scenario, axes)]
    expanded = Plan(tuple(s for _, s in grid), plan.mechanisms, plan.seeds, plan.episodes)
    return expanded, {s.name: cell for cell, s in grid}
