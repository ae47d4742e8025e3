"""Overrides: changing a scenario's keys from code or a command line, before validation.

``load_scenario("default", seed=3, contribution="shapley", **{"lora.r": 4})``: an override is a
top-level key (``seed``), a dotted path (``lora.r``, ``scoring.reject_negative``) or one of the
short names in :data:`OVERRIDE_ALIASES`.  Overrides are written into the scenario's plain data,
which is then validated like a file, so an override is checked exactly like a key in a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fedenv.errors import ConfigError

OVERRIDE_ALIASES = {
    "preset": "model.preset",
    "dtype": "model.dtype",
    "aggregator": "training.aggregator",
    "contribution": "scoring.contribution",
    "mechanism": "incentives.mechanism",
    "reward_pool": "incentives.reward_pool",
    "model_value_weight": "incentives.model_value_weight",
    "collective_weight": "incentives.collective_weight",
}
"""Short override names; any other override is a top-level key or a dotted path ("lora.r")."""


def apply_overrides(
    raw: dict[str, Any], overrides: Mapping[str, Any], *, known: Sequence[str]
) -> dict[str, Any]:
    """Write ``overrides`` into ``raw`` (a scenario's plain data, changed in place and returned);
    ``known``: the scenario's top-level keys.  Two keys naming the same path (an alias and its
    full path) are an error.  Errors name the source ``overrides``."""
    seen: dict[str, str] = {}
    for key, value in overrides.items():
        full = OVERRIDE_ALIASES.get(key, key)
        if full in seen:
            raise ConfigError(key, f"sets {full!r}, as {seen[full]!r} does; give it once",
                              "overrides")
        seen[full] = key
        path = full.split(".")
        if path[0] not in known:
            names = ", ".join(sorted({*known, *OVERRIDE_ALIASES}))
            raise ConfigError(
                key,
                f"unknown override (known: {names}, or a dotted path such as 'lora.r')",
                "overrides",
            )
        table = raw
        for i, part in enumerate(path[:-1]):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(".".join(path[: i + 1]), "is not a table", "overrides")
        table[path[-1]] = _plain(value)
    return raw


def _plain(value: Any) -> Any:
    """A settings model or tuple as the plain data a file would hold."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value
