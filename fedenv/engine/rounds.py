"""The records of federated rounds: engine settings, who takes part, what comes back.

:class:`EngineConfig` (local training and aggregation settings), :class:`Participant` (one
organization's part in a round), :class:`ClientUpdate` (its trained adapter and digest) and
:class:`RoundResult` (a committed round). All are validated on construction: a bad value raises
:class:`~fedenv.errors.ConfigError` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fedenv.engine.aggregators import get_aggregator
from fedenv.engine.lora import Adapter, LoraSettings, adapter_digest
from fedenv.errors import ConfigError

if TYPE_CHECKING:
    from fedenv.data.benchmark import BenchmarkResult


def positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def positive_float(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@dataclass
class EngineConfig:
    """Local training and aggregation settings of a :class:`FederatedEngine`."""

    lora: LoraSettings = field(default_factory=LoraSettings, metadata={"help": "adapter settings"})
    aggregator: str = field(default="fedavg", metadata={"help": "fedavg | ffa | flora"})
    lr: float = field(default=3e-3, metadata={"help": "local AdamW learning rate"})
    batch_size: int = field(default=8, metadata={"help": "dialogues per local step"})
    max_len: int = field(default=128, metadata={"help": "tokens kept per dialogue"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float | None = field(default=1.0, metadata={"help": "clip norm; None: off"})
    seed: int = field(default=0, metadata={"help": "drives the adapter init and client RNGs"})
    device: str = field(default="auto", metadata={"help": "auto (keep the model's) | cpu | cuda"})
    dtype: str = field(default="auto", metadata={"help": "auto (keep the model's) | float32 | ..."})
    num_threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads; None: leave"}
    )

    def __post_init__(self) -> None:
        if isinstance(self.lora, Mapping):
            self.lora = LoraSettings(**self.lora)
        if not isinstance(self.lora, LoraSettings):
            raise ConfigError("lora", f"must be LoraSettings, got {type(self.lora).__name__}")
        get_aggregator(self.aggregator)
        if not positive_float(self.lr):
            raise ConfigError("lr", f"must be a positive number, got {self.lr!r}")
        for name in ("batch_size", "max_len"):
            if not positive_int(getattr(self, name)):
                raise ConfigError(name, f"must be a positive integer, got {getattr(self, name)!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ConfigError("weight_decay", f"must be >= 0, got {self.weight_decay!r}")
        if self.max_grad_norm is not None and not positive_float(self.max_grad_norm):
            raise ConfigError(
                "max_grad_norm", f"must be positive or None, got {self.max_grad_norm!r}"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError("seed", f"must be an integer, got {self.seed!r}")
        if self.num_threads is not None and not positive_int(self.num_threads):
            raise ConfigError(
                "num_threads", f"must be a positive integer or None, got {self.num_threads!r}"
            )


@dataclass(frozen=True)
class Participant:
    """One organization taking part in a round: ``local_steps`` optimizer steps on the first
    ``ceil(data_fraction * n)`` of its ``n`` examples."""

    org: str
    local_steps: int
    data_fraction: float = 1.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the bad field (the engine re-checks every round)."""
        source = f"participant {self.org!r}"
        if not isinstance(self.org, str) or not self.org:
            raise ConfigError("org", f"must be a non-empty string, got {self.org!r}")
        if not positive_int(self.local_steps):
            raise ConfigError(
                "local_steps", f"must be a positive integer, got {self.local_steps!r}", source
            )
        if not (positive_float(self.data_fraction) and self.data_fraction <= 1.0):
            raise ConfigError(
                "data_fraction", f"must be in (0, 1], got {self.data_fraction!r}", source
            )


@dataclass
class ClientUpdate:
    """What one organization sends back: its trained adapter and the adapter's digest."""

    org: str
    adapter: Adapter
    num_examples: int
    local_steps: int
    train_loss: float
    digest: str
    seconds: float = 0.0

    @classmethod
    def create(
        cls,
        org: str,
        adapter: Adapter,
        *,
        num_examples: int,
        local_steps: int,
        train_loss: float = float("nan"),
        seconds: float = 0.0,
    ) -> ClientUpdate:
        """An update whose ``digest`` is computed from ``adapter`` (use it for crafted updates)."""
        return cls(
            org, adapter, num_examples, local_steps, train_loss, adapter_digest(adapter), seconds
        )


@dataclass
class RoundResult:
    """One committed round: its updates, the new global digest and the benchmark around it."""

    round: int
    updates: list[ClientUpdate]
    global_digest: str
    before: BenchmarkResult | None
    after: BenchmarkResult | None
    timings: dict[str, float]
