"""The scenario's typed sections: who takes part, on which model, under which rules.

Every field's ``description`` is its help text; ``scenarios/default.toml`` shows them in use.
The ``[model]``, ``[lora]``, ``[training]`` and ``[benchmark]`` sections are the engine's own
settings (:mod:`fedenv.engine.settings`), and ``[scoring]``, ``[incentives]``, ``[costs]`` and
``[defence]`` the scoring layer's (:mod:`fedenv.scoring.settings`): the scenario declares only what
is its own (the organizations and their attacks, sybil groups, the resource levels, the run-wide
keys; the ledger and the channels in :mod:`fedenv.scenario.ledger`), and checks what only the
whole scenario can: sybil groups name known organizations, and the defences fit the aggregator.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from fedenv.data import DOMAINS
from fedenv.device import DeviceName
from fedenv.engine.settings import (
    BenchmarkSettings,
    DataShare,
    EngineConfig,
    LocalSteps,
    LoraSettings,
    ModelSettings,
    TrainingSettings,
)
from fedenv.errors import ConfigError
from fedenv.scenario.ledger import ChannelSettings, LedgerSettings, check_channels
from fedenv.scenario.overrides import apply_overrides
from fedenv.scenario.unlearning import UnlearningPolicy, UnlearningRequest, check_unlearning
from fedenv.scoring.contribution import MAX_EXACT_PLAYERS
from fedenv.scoring.settings import (
    WEIGHING_FILTERS,
    CostSettings,
    DefenceSettings,
    IncentiveSettings,
    ScoringSettings,
)
from fedenv.settings import Settings, field_problem, one_of

BEHAVIOURS = (
    "honest",
    "free_rider",
    "noisy_free_rider",
    "noise",
    "sign_flip",
    "scaled",
    "false_facts",
    "backdoor",
    "sybil",
)
"""What an organization sends when it takes part (see :mod:`fedenv.scoring.attacks`)."""
ORG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,31}")  # also a Fabric MSP ID
SCENARIO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=,\[\]-]{0,127}")
"""A scenario's name names folders: portable file-name characters only (a sweep's cells are
named ``<scenario>[key=value,...]``)."""


def _org_name(name: str) -> str:
    if not ORG_NAME.fullmatch(name):
        raise ConfigError(
            "name", f"must be 1-32 letters, digits or '-', starting with a letter, got {name!r}"
        )
    return name


def _scenario_name(name: str) -> str:
    if not SCENARIO_NAME.fullmatch(name):
        shown = name if len(name) <= 80 else f"{name[:80]}... ({len(name)} characters)"
        raise ConfigError(
            "name",
            f"must be 1-128 letters, digits or '_.+=,[]-', starting with a letter or digit "
            f"(it names folders), got {shown!r}",
        )
    return name


class Organization(Settings):
    """One organization: an agent of the env, with its data, prices and behaviour."""

    name: Annotated[str, AfterValidator(_org_name)] = Field(
        description="agent id and ledger identity (letters, digits, '-')"
    )
    domain: Annotated[str, AfterValidator(one_of(DOMAINS))] = Field(
        description="customer-service domain of its private dialogues"
    )
    data_size: int = Field(ge=1, description="number of private training dialogues")
    quality: float = Field(
        1.0, ge=0.0, le=1.0, description="share of dialogues with correct facts (rest corrupted)"
    )
    unit_cost: float = Field(
        1.0, ge=0.0, description="cost of one compute unit (see resource_levels.compute)"
    )
    budget: float = Field(
        100.0, gt=0.0, description="money for costs over the episode; terminated when spent"
    )
    behaviour: Annotated[str, AfterValidator(one_of(BEHAVIOURS))] = Field(
        "honest", description="honest, or an attack (see fedenv.scoring.attacks)"
    )
    strength: float = Field(
        0.0, ge=0.0, description="attack strength (see fedenv.scoring.attacks); 0: its default"
    )
    data_path: str = Field(
        "",
        description="JSONL chat file (relative to the scenario file) to train on instead of "
        "generated dialogues",
    )


class ResourceLevel(Settings):
    """Resource level k: what taking part with action k trains, and what it costs."""

    local_steps: LocalSteps = Field(description="local optimizer steps at this level")
    data_share: DataShare = Field(1.0, description="share of the org's data sampled at this level")
    compute: float = Field(
        1.0, ge=0.0, description="compute units spent; cost = compute x unit_cost"
    )


class SybilGroup(Settings):
    """Identities of one owner (``behaviour = "sybil"``): the first one's data trains, every one
    that takes part sends a near-identical copy (see fedenv.scoring.attacks)."""

    members: tuple[str, ...] = Field(
        min_length=2, strict=False, description="names of the organizations that are one owner"
    )


class Scenario(Settings):
    """A scenario (``scenarios/<name>.toml``), validated once when it is loaded."""

    organizations: tuple[Organization, ...] = Field(
        min_length=1, strict=False, description="the agents"
    )
    resource_levels: tuple[ResourceLevel, ...] = Field(
        min_length=1, strict=False, description="levels 1..R of the action space"
    )
    name: Annotated[str, AfterValidator(_scenario_name)] = Field(
        "scenario", description="run name (names folders: 1-128 letters, digits, '_.+=,[]-')"
    )
    seed: int = Field(
        0, ge=0, description="drives data, model, training, scoring and identities"
    )
    max_rounds: int = Field(10, ge=1, description="rounds per episode (then truncation)")
    device: DeviceName = Field("auto", description="auto (cuda if present), cpu, cuda or cuda:N")
    model: ModelSettings = Field(default_factory=ModelSettings, description="base model")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="adapter settings")
    training: TrainingSettings = Field(
        default_factory=TrainingSettings, description="local training and aggregation"
    )
    benchmark: BenchmarkSettings = Field(
        default_factory=BenchmarkSettings, description="held-out evaluation"
    )
    scoring: ScoringSettings = Field(
        default_factory=ScoringSettings, description="contribution scoring"
    )
    incentives: IncentiveSettings = Field(
        default_factory=IncentiveSettings, description="payouts and model value"
    )
    costs: CostSettings = Field(
        default_factory=CostSettings, description="communication and ledger costs"
    )
    ledger: LedgerSettings = Field(
        default_factory=LedgerSettings, description="public chain and channel defaults"
    )
    channels: tuple[ChannelSettings, ...] = Field(
        (),
        strict=False,
        description="permissioned channels (default: one 'consortium' channel of every "
        "organization); see fedenv.scenario.ledger",
    )
    defence: DefenceSettings = Field(
        default_factory=DefenceSettings, description="defences against attacks (docs/incentives.md)"
    )
    sybils: tuple[SybilGroup, ...] = Field(
        (), strict=False, description="groups of organizations that are one owner's identities"
    )
    unlearning: tuple[UnlearningRequest, ...] = Field(
        (),
        strict=False,
        description="scheduled unlearning requests; see fedenv.scenario.unlearning",
    )
    unlearning_policy: UnlearningPolicy = Field(
        default_factory=UnlearningPolicy, description="how unlearning requests are carried out"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        names = self.org_names
        for i, name in enumerate(names):
            if name in names[:i]:
                raise field_problem(f"organizations[{i}].name", f"duplicate organization {name!r}")
        if self.scoring.contribution == "shapley" and len(names) > MAX_EXACT_PLAYERS:
            raise field_problem(
                "scoring.contribution",
                f"exact 'shapley' supports at most {MAX_EXACT_PLAYERS} organizations, "
                f"got {len(names)}; use 'tmc_shapley'",
            )
        for i, org in enumerate(self.organizations):
            if org.behaviour == "honest" and org.strength:
                raise field_problem(
                    f"organizations[{i}].strength", "an honest organization has no attack strength"
                )
        self._check_sybils()
        self._check_defence()
        check_channels(self.channels, names, self.ledger)
        problem = check_unlearning(
            self.unlearning,
            names,
            self.max_rounds,
            self.training.aggregator,
        )
        if problem is not None:
            raise problem
        return self

    def _check_sybils(self) -> None:
        names, grouped = self.org_names, {}
        for g, group in enumerate(self.sybils):
            for m, member in enumerate(group.members):
                where = f"sybils[{g}].members[{m}]"
                if member not in names:
                    raise field_problem(
                        where, f"unknown organization {member!r} (known: {', '.join(names)})"
                    )
                if member in grouped:
                    raise field_problem(where, f"{member!r} is already in sybils[{grouped[member]}]")
                behaviour = self.organizations[names.index(member)].behaviour
                if behaviour != "sybil":
                    raise field_problem(
                        where, f"{member!r} has behaviour {behaviour!r}; a sybil group's are 'sybil'"
                    )
                grouped[member] = g
        for i, org in enumerate(self.organizations):
            if org.behaviour == "sybil" and org.name not in grouped:
                raise field_problem(
                    f"organizations[{i}].behaviour", "'sybil' needs a [[sybils]] group naming it"
                )

    def _check_defence(self) -> None:
        defence = self.defence
        if defence.aggregation == "mean":
            return
        from fedenv.engine.aggregators import get_aggregator  # torch: only for robust statistics

        if not get_aggregator(self.training.aggregator).coordinatewise:
            raise field_problem(
                "defence.aggregation",
                f"{defence.aggregation!r} needs an aggregator that averages parameters (fedavg, "
                f"ffa); {self.training.aggregator!r} stacks its clients' factors",
            )
        weighing = [f for f in defence.filters if f in WEIGHING_FILTERS]
        if weighing:
            raise field_problem(
                "defence.filters",
                f"{weighing[0]!r} weighs a mean; it cannot combine with aggregation = "
                f"{defence.aggregation!r}",
            )

    def sybil_group(self, org: str) -> tuple[str, ...]:
        """The sybil group ``org`` belongs to (empty when none)."""
        return next((g.members for g in self.sybils if org in g.members), ())

    @property
    def org_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.organizations)

    @property
    def num_levels(self) -> int:
        return len(self.resource_levels)

    def level(self, k: int) -> ResourceLevel:
        """Resource level k in 1..R (action k)."""
        return self.resource_levels[k - 1]

    def engine_config(self) -> EngineConfig:
        """The engine's settings: this scenario's ``lora``, ``training``, ``seed`` and ``device``."""
        return EngineConfig(
            lora=self.lora, training=self.training, seed=self.seed, device=self.device
        )

    def with_overrides(self, **overrides: Any) -> Scenario:
        """A copy with ``overrides`` applied (:func:`~fedenv.scenario.overrides.apply_overrides`),
        validated exactly like the keys of a file."""
        raw = apply_overrides(self.to_dict(), overrides, known=tuple(Scenario.model_fields))
        return Scenario.from_dict(raw, source="overrides")
