"""Scenarios: who takes part, on which model, under which rules.

A scenario is a TOML file (``scenarios/<name>.toml``) validated once, when it is loaded, into
the frozen pydantic models of :mod:`fedenv.scenario.models` (unknown keys refused, bounds in
each field's declaration, help text in its ``description``).  A bad file raises
:class:`~fedenv.errors.ConfigError` naming the file and the key, e.g.
``scenarios/x.toml: organizations[2].unit_cost: must be >= 0, got -1``.

- :mod:`~fedenv.scenario.models`: the sections (the engine's and the scoring layer's settings
  embedded as ``[model]``, ``[lora]``, ``[training]``, ``[benchmark]``, ``[scoring]``,
  ``[incentives]``, ``[costs]``);
- :mod:`~fedenv.scenario.ledger`: ``[ledger]`` (the public chain) and ``[[channels]]`` (the
  permissioned channels, checked against the organizations);
- :mod:`~fedenv.scenario.load`: :func:`load_scenario` (TOML, ``data_path``, overrides);
- :mod:`~fedenv.scenario.overrides`: ``load_scenario("default", seed=3, **{"lora.r": 4})``;
- :mod:`~fedenv.scenario.engine`: the scenario's federated engine (imports torch; not imported
  here, so ``import fedenv`` stays light).
"""

from __future__ import annotations

from fedenv.scenario.ledger import (
    CARRIES,
    ENDORSEMENT,
    PUBLIC_CHAINS,
    ChannelSettings,
    CollectionSettings,
    LedgerSettings,
    resolved_channels,
)
from fedenv.scenario.load import SCENARIO_DIR, load_scenario, scenario_from_dict
from fedenv.scenario.models import (
    BEHAVIOURS,
    Organization,
    ResourceLevel,
    Scenario,
    SybilGroup,
)
from fedenv.scenario.overrides import OVERRIDE_ALIASES

__all__ = [
    "BEHAVIOURS",
    "CARRIES",
    "ENDORSEMENT",
    "OVERRIDE_ALIASES",
    "PUBLIC_CHAINS",
    "SCENARIO_DIR",
    "ChannelSettings",
    "CollectionSettings",
    "LedgerSettings",
    "Organization",
    "ResourceLevel",
    "Scenario",
    "SybilGroup",
    "load_scenario",
    "resolved_channels",
    "scenario_from_dict",
]
