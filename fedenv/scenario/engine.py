"""A scenario's federated engine: its organizations' data on the shared base model.

The one place where a scenario becomes engine inputs (the engine layer knows no scenario): the
engine settings the scenario embeds (:meth:`~fedenv.scenario.models.Scenario.engine_config`,
``model``, ``benchmark``) and each organization's training dialogues.
"""

from __future__ import annotations

from fedenv.data import Dialogue, generate_org_dialogues, load_jsonl
from fedenv.engine.build import build_engine
from fedenv.engine.federation import FederatedEngine
from fedenv.scenario.models import Organization, Scenario


def organization_data(org: Organization, seed: int) -> list[Dialogue]:
    """``org``'s training dialogues: its JSONL file (first ``data_size``), or generated ones."""
    if org.data_path:
        return load_jsonl(org.data_path, max_dialogues=org.data_size)
    return generate_org_dialogues(
        org.domain, org.data_size, seed, org=org.name, quality=org.quality
    )


def scenario_engine(scenario: Scenario) -> FederatedEngine:
    """A :class:`FederatedEngine` for ``scenario``, on the shared base model and benchmark."""
    return build_engine(
        scenario.engine_config(),
        scenario.model,
        scenario.benchmark,
        {o.name: organization_data(o, scenario.seed) for o in scenario.organizations},
        [o.domain for o in scenario.organizations],
    )
