"""The engine's settings: the base model, the LoRA adapter, local training and the benchmark.

Each is a :class:`~fedenv.settings.Settings` model declared once, here, with its bounds and help
text: a scenario embeds them as its ``[model]``, ``[lora]``, ``[training]`` and ``[benchmark]``
sections, and :class:`EngineConfig` (what a :class:`~fedenv.engine.federation.FederatedEngine`
runs with) holds the same ``lora`` and ``training`` objects, so a field has one name and one set
of bounds from the TOML file to peft.  :data:`LocalSteps` and :data:`DataShare` bound both a
scenario's resource levels and a round's participants.  This module imports no torch.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from fedenv.device import DeviceName, DtypeName
from fedenv.errors import ConfigError
from fedenv.settings import Settings

LocalSteps = Annotated[int, Field(ge=1, description="local optimizer steps")]
DataShare = Annotated[
    float,
    Field(gt=0.0, le=1.0, description="share of the organization's data sampled (first n)"),
]


def _known_aggregator(name: str) -> str:
    from fedenv.engine.aggregators import AGGREGATORS  # imports torch: only when a file names one

    if name not in AGGREGATORS:
        raise ConfigError("aggregator", f"must be one of {', '.join(map(repr, AGGREGATORS))}, "
                          f"got {name!r}")
    return name


class ModelSettings(Settings):
    """The base model."""

    preset: str = Field(
        "tiny", min_length=1, description="fedenv preset name, or a Hugging Face model name/path"
    )
    dtype: DtypeName = Field("auto", description="parameter dtype: auto, float32, bfloat16, float16")


class LoraSettings(Settings):
    """The LoRA hyperparameters of the global adapter (peft ``LoraConfig`` fields)."""

    r: int = Field(8, ge=1, description="LoRA rank of every adapter pair")
    alpha: float = Field(16.0, gt=0.0, description="LoRA alpha (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the adapter input")
    target_modules: tuple[str, ...] = Field(
        ("q_proj", "v_proj"),
        min_length=1,
        strict=False,
        description="names of the linear layers that get adapters",
    )

    @property
    def scale(self) -> float:
        """The factor peft applies to ``B @ A``."""
        return self.alpha / self.r

    def peft_config(self):
        """The equivalent ``peft.LoraConfig`` (no bias, plain scaling)."""
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            bias="none",
        )


class TrainingSettings(Settings):
    """Local training (AdamW) and aggregation."""

    aggregator: Annotated[str, AfterValidator(_known_aggregator)] = Field(
        "fedavg", description="how accepted updates are combined: fedavg, ffa or flora"
    )
    learning_rate: float = Field(3e-3, gt=0.0, description="local AdamW learning rate")
    batch_size: int = Field(8, ge=1, description="dialogues per local step")
    max_len: int = Field(128, ge=8, description="tokens kept per dialogue")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay")
    max_grad_norm: float = Field(
        1.0, ge=0.0, description="clip each step's gradient norm to this; 0: no clipping"
    )
    cpu_threads: int = Field(
        0,
        ge=0,
        description="torch CPU threads for training and scoring; 0: this process's share of the "
        "CPUs it may use (its affinity mask divided by $FEDENV_PROCESSES). Update hashes "
        "reproduce for a given thread count: set it to get the same hashes on other machines",
    )
    grouped: Literal["auto", "on", "off"] = Field(
        "auto",
        description="train every participant, and score every coalition, in shared passes "
        "(one adapter per group of rows; equal to one at a time up to rounding); auto: on CUDA "
        "for models without dropout",
    )
    compile: bool = Field(
        False,
        description="run one-at-a-time training and merged coalition evaluation through "
        "torch.compile: the first round compiles (about 40 s on 2 CPU cores, 10 s with a warm "
        "$TORCHINDUCTOR_CACHE_DIR), later steps of the tiny preset run about 1.5x faster",
    )


class BenchmarkSettings(Settings):
    """The held-out benchmark the engine scores with."""

    dialogues_per_domain: int = Field(
        4, ge=1, description="held-out dialogues per organization domain"
    )
    batch_size: int = Field(32, ge=1, description="evaluation batch size")


class EngineConfig(Settings):
    """What a :class:`~fedenv.engine.federation.FederatedEngine` runs with."""

    lora: LoraSettings = Field(default_factory=LoraSettings, description="adapter settings")
    training: TrainingSettings = Field(
        default_factory=TrainingSettings, description="local training and aggregation"
    )
    seed: int = Field(0, ge=0, description="drives the adapter init and the clients' RNGs")
    device: DeviceName = Field(
        "auto", description="where the engine runs: auto keeps the model's device; cpu, cuda[:N]"
    )
    dtype: DtypeName = Field("auto", description="auto keeps the model's dtype; float32, ...")
