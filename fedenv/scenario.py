"""Scenarios: who takes part, on which model, under which rules.

A scenario is a TOML file (``scenarios/<name>.toml``) loaded with :mod:`tomllib` into the frozen
dataclasses below and validated on the way in: an unknown key, a wrong type or an impossible value
raises :class:`~fedenv.errors.ConfigError` naming the file and the key, e.g.
``scenarios/x.toml: organizations[2].unit_cost: must be >= 0, got -1``.

Every field carries its help text (``field.metadata["help"]``); ``scenarios/default.toml`` shows
them all in use.  ``load_scenario("default", seed=3, contribution="shapley")`` applies overrides
to the raw table before validation, so an override is checked exactly like a key in the file.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedenv.errors import ConfigError
from fedenv.scoring.contribution import MAX_EXACT_PLAYERS, METHODS
from fedenv.scoring.incentives import MECHANISMS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
BEHAVIOURS = ("honest", "free_rider", "noise", "scaled")
"""What an organization sends when it takes part (see :mod:`fedenv.scoring.behaviours`)."""
DEVICES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DTYPES = ("auto", "float32", "bfloat16", "float16")
ENDORSEMENT = ("majority", "all", "any")
ORG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,31}")  # also a Fabric MSP ID

Check = Callable[[Any], "str | None"]


def _opt(default: Any, help: str, check: Check | None = None) -> Any:
    """A dataclass field with its help text and an optional value check."""
    return field(default=default, metadata={"help": help, "check": check})


def _req(help: str, check: Check | None = None) -> Any:
    return field(metadata={"help": help, "check": check})


def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be >= {low:g}"


def greater_than(low: float) -> Check:
    return lambda v: None if v > low else f"must be > {low:g}"


def between(low: float, high: float, *, open_low: bool = False) -> Check:
    def check(v: float) -> str | None:
        ok = (low < v if open_low else low <= v) and v <= high
        return None if ok else f"must be in {'(' if open_low else '['}{low:g}, {high:g}]"

    return check


def one_of(names: tuple[str, ...]) -> Check:
    return lambda v: None if v in names else f"must be one of {', '.join(map(repr, names))}"


def matches(pattern: re.Pattern[str], what: str) -> Check:
    return lambda v: None if pattern.fullmatch(v) else f"must be {what}"


def non_empty(v: Any) -> str | None:
    return None if len(v) else "must not be empty"


def _domain(v: str) -> str | None:
    from fedenv.data import DOMAINS

    return one_of(DOMAINS)(v)


def _aggregator(v: str) -> str | None:
    from fedenv.engine.aggregators import (
        AGGREGATORS,  # imports torch: checked only when a file names one
    )

    return one_of(tuple(AGGREGATORS))(v)


@dataclass(frozen=True)
class Organization:
    name: str = _req(
        "agent id and ledger identity (letters, digits, '-')",
        matches(ORG_NAME, "1-32 letters, digits or '-', starting with a letter"),
    )
    domain: str = _req("customer-service domain of its private dialogues", _domain)
    data_size: int = _req("number of private training dialogues", at_least(1))
    quality: float = _opt(
        1.0, "share of dialogues with correct facts (rest are corrupted)", between(0.0, 1.0)
    )
    unit_cost: float = _opt(
        1.0, "cost of one compute unit (see resource_levels.compute)", at_least(0.0)
    )
    budget: float = _opt(
        100.0, "money for costs over the episode; terminated when spent", greater_than(0.0)
    )
    behaviour: str = _opt(
        "honest", "honest, free_rider, noise or scaled (see fedenv.scoring.behaviours)", one_of(BEHAVIOURS)
    )
    data_path: str = _opt(
        "",
        "JSONL chat file (relative to the scenario file) to train on "
        "instead of generated dialogues",
    )


@dataclass(frozen=True)
class ResourceLevel:
    local_steps: int = _req("local optimizer steps at this level", at_least(1))
    data_share: float = _opt(
        1.0, "share of the org's data sampled at this level", between(0.0, 1.0, open_low=True)
    )
    compute: float = _opt(1.0, "compute units spent; cost = compute x unit_cost", at_least(0.0))


@dataclass(frozen=True)
class ModelSpec:
    preset: str = _opt("tiny", "fedenv preset name, or a Hugging Face model name/path", non_empty)
    dtype: str = _opt("auto", "parameter dtype", one_of(DTYPES))


@dataclass(frozen=True)
class LoraSpec:
    r: int = _opt(8, "LoRA rank", at_least(1))
    alpha: float = _opt(16.0, "LoRA alpha (scaling = alpha / r)", greater_than(0.0))
    dropout: float = _opt(0.0, "LoRA dropout", between(0.0, 0.9))
    target_modules: tuple[str, ...] = _opt(
        ("q_proj", "v_proj"), "modules that get adapters", non_empty
    )


@dataclass(frozen=True)
class TrainingSpec:
    aggregator: str = _opt("fedavg", "how accepted updates are combined", _aggregator)
    learning_rate: float = _opt(3e-3, "local AdamW learning rate", greater_than(0.0))
    batch_size: int = _opt(8, "local batch size", at_least(1))
    max_len: int = _opt(128, "max tokens per dialogue", at_least(8))
    cpu_threads: int = _opt(
        0,
        "torch CPU threads for training and scoring; 0 = one thread for small models. Update "
        "hashes are reproducible for a given thread count",
        at_least(0),
    )


@dataclass(frozen=True)
class BenchmarkSpec:
    dialogues_per_domain: int = _opt(4, "held-out dialogues per organization domain", at_least(1))
    batch_size: int = _opt(32, "evaluation batch size", at_least(1))


@dataclass(frozen=True)
class ScoringSpec:
    contribution: str = _opt("loo", "contribution method", one_of(METHODS))
    reject_negative: bool = _opt(
        True,
        "leave updates with negative contribution out of the aggregate, and commit nothing "
        "if the rest would lower the global's score",
    )
    tmc_permutations: int = _opt(24, "tmc_shapley: most permutations sampled", at_least(1))
    tmc_tolerance: float = _opt(
        0.01,
        "tmc_shapley: truncate a permutation once its prefix "
        "is this close to the full coalition's value",
        at_least(0.0),
    )


@dataclass(frozen=True)
class IncentiveSpec:
    mechanism: str = _opt("shapley", "payout rule", one_of(tuple(MECHANISMS)))
    reward_pool: float = _opt(10.0, "money paid out per round", at_least(0.0))
    model_value_weight: float = _opt(
        1.0, "money per point of own-domain score improvement", at_least(0.0)
    )


@dataclass(frozen=True)
class CostSpec:
    communication_per_update: float = _opt(0.1, "cost of sending one update", at_least(0.0))
    ledger_fee_per_tx: float = _opt(0.01, "fee per transaction an org submits", at_least(0.0))


@dataclass(frozen=True)
class LedgerSpec:
    endorsement: str = _opt(
        "majority", "scoring endorsement policy over the orgs' peers", one_of(ENDORSEMENT)
    )


@dataclass(frozen=True)
class Scenario:
    organizations: tuple[Organization, ...] = _req("the agents", non_empty)
    resource_levels: tuple[ResourceLevel, ...] = _req("levels 1..R of the action space", non_empty)
    name: str = _opt("scenario", "run name", non_empty)
    seed: int = _opt(0, "drives data, model, training, scoring and identities", at_least(0))
    max_rounds: int = _opt(10, "rounds per episode (then truncation)", at_least(1))
    device: str = _opt(
        "auto", "auto, cpu, cuda, cuda:N or mps", matches(DEVICES, "auto, cpu, mps, cuda or cuda:N")
    )
    model: ModelSpec = field(default_factory=ModelSpec, metadata={"help": "base model"})
    lora: LoraSpec = field(default_factory=LoraSpec, metadata={"help": "adapter settings"})
    training: TrainingSpec = field(
        default_factory=TrainingSpec, metadata={"help": "local training and aggregation"}
    )
    benchmark: BenchmarkSpec = field(
        default_factory=BenchmarkSpec, metadata={"help": "held-out evaluation"}
    )
    scoring: ScoringSpec = field(
        default_factory=ScoringSpec, metadata={"help": "contribution scoring"}
    )
    incentives: IncentiveSpec = field(
        default_factory=IncentiveSpec, metadata={"help": "payouts and model value"}
    )
    costs: CostSpec = field(
        default_factory=CostSpec, metadata={"help": "communication and ledger costs"}
    )
    ledger: LedgerSpec = field(
        default_factory=LedgerSpec, metadata={"help": "permissioned channel settings"}
    )

    @property
    def org_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.organizations)

    @property
    def num_levels(self) -> int:
        return len(self.resource_levels)

    def level(self, k: int) -> ResourceLevel:
        """Resource level k in 1..R (action k)."""
        return self.resource_levels[k - 1]

    def to_dict(self) -> dict[str, Any]:
        """Plain TOML/JSON-able data; ``scenario_from_dict(s.to_dict())`` gives back ``s``."""
        return _plain(self)

    def with_overrides(self, **overrides: Any) -> Scenario:
        return scenario_from_dict(_apply_overrides(self.to_dict(), overrides), source="overrides")


OVERRIDE_ALIASES = {
    "preset": "model.preset",
    "dtype": "model.dtype",
    "aggregator": "training.aggregator",
    "contribution": "scoring.contribution",
    "mechanism": "incentives.mechanism",
    "reward_pool": "incentives.reward_pool",
    "model_value_weight": "incentives.model_value_weight",
}
"""Short override names; any other override is a top-level key or a dotted path ("lora.r")."""


def load_scenario(path_or_name: str | Path, **overrides: Any) -> Scenario:
    """Load ``scenarios/<name>.toml`` (a bare name) or a TOML file, apply overrides, validate."""
    path = Path(path_or_name)
    if path.suffix != ".toml" and not path.exists():
        path = SCENARIO_DIR / f"{path_or_name}.toml"
    source = _display(path)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.toml")))
        raise ConfigError("scenario", f"no such file (bundled scenarios: {known})", source)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("toml", str(exc), source) from None
    raw.setdefault("name", path.stem)
    for i, org in enumerate(raw.get("organizations", ()) if isinstance(raw, dict) else ()):
        if isinstance(org, dict) and isinstance(org.get("data_path"), str) and org["data_path"]:
            data_path = (path.parent / org["data_path"]).resolve()
            if not data_path.is_file():
                raise ConfigError(
                    f"organizations[{i}].data_path", f"no such file: {data_path}", source
                )
            org["data_path"] = str(data_path)
    scenario = scenario_from_dict(raw, source=source)
    return scenario.with_overrides(**overrides) if overrides else scenario


def scenario_from_dict(raw: Mapping[str, Any], *, source: str = "<dict>") -> Scenario:
    """Validate plain data (as parsed from TOML) into a :class:`Scenario`."""
    scenario = _build(Scenario, raw, "", source)
    names = scenario.org_names
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(
                f"organizations[{i}].name", f"duplicate organization {name!r}", source
            )
    n = len(names)
    if scenario.scoring.contribution == "shapley" and n > MAX_EXACT_PLAYERS:
        raise ConfigError(
            "scoring.contribution",
            f"exact 'shapley' supports at most {MAX_EXACT_PLAYERS} organizations, "
            f"got {n}; use 'tmc_shapley'",
            source,
        )
    return scenario


def _apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        path = OVERRIDE_ALIASES.get(key, key).split(".")
        if path[0] not in _field_names(Scenario):
            known = sorted(_field_names(Scenario) | set(OVERRIDE_ALIASES))
            raise ConfigError(
                key,
                f"unknown override (known: {', '.join(known)}, or a dotted path such as 'lora.r')",
                "overrides",
            )
        table = raw
        for i, part in enumerate(path[:-1]):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(".".join(path[: i + 1]), "is not a table", "overrides")
        table[path[-1]] = _plain(value)
    return raw


# --- generic validation of plain data into the dataclasses above -------------------------------


def _build(cls: type, raw: Any, where: str, source: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(where or "scenario", f"must be a table, got {_describe(raw)}", source)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(
                _join(where, key), f"unknown key (known: {', '.join(fields)})", source
            )
    values = {}
    for name, f in fields.items():
        path = _join(where, name)
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(path, "missing required key", source)
            continue
        value = _coerce(hints[name], raw[name], path, source)
        check = f.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            raise ConfigError(path, f"{problem}, got {_show(value)}", source)
        values[name] = value
    return cls(**values)


def _coerce(tp: Any, value: Any, path: str, source: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, source)
    if typing.get_origin(tp) is tuple:
        (item_type, _) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"must be an array, got {_describe(value)}", source)
        return tuple(_coerce(item_type, v, f"{path}[{i}]", source) for i, v in enumerate(value))
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise ConfigError(path, f"must be {_TYPE_NAMES[tp]}, got {_describe(value)}", source)
    if tp is float:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(path, f"must be a finite number, got {value}", source)
    return value


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _describe(value: Any) -> str:
    kind = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)
    return f"{kind} {_show(value)}" if not isinstance(value, (dict, list)) else kind


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
