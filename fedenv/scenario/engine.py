"""A scenario's federated engine: its organizations' data on the shared base model.

The one place where a scenario becomes engine inputs (the engine layer knows no scenario): the
engine settings the scenario embeds (:meth:`~fedenv.scenario.models.Scenario.engine_config`,
``model``, ``benchmark``) and each organization's training dialogues, poisoned for the
``false_facts`` and ``backdoor`` attackers (:mod:`fedenv.scoring.poisoned_data`).
"""

from __future__ import annotations

from fedenv.data import Dialogue, generate_org_dialogues, load_jsonl
from fedenv.engine.build import build_engine
from fedenv.engine.federation import FederatedEngine
from fedenv.scenario.models import Organization, Scenario
from fedenv.scoring.attacks import ATTACKS, strength_of
from fedenv.scoring.poisoned_data import poison_dialogues


def organization_data(org: Organization, seed: int) -> list[Dialogue]:
    """``org``'s training dialogues: its JSONL file (first ``data_size``), or generated ones;
    poisoned when its behaviour poisons data."""
    if org.data_path:
        dialogues = load_jsonl(org.data_path, max_dialogues=org.data_size)
    else:
        dialogues = generate_org_dialogues(
            org.domain, org.data_size, seed, org=org.name, quality=org.quality
        )
    if not ATTACKS[org.behaviour].poisons_data:
        return dialogues
    return poison_dialogues(
        org.behaviour,
        dialogues,
        domain=org.domain,
        seed=seed,
        strength=strength_of(org.behaviour, org.strength),
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
