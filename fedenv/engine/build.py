"""Building an engine on the shared base model and benchmark.

The base model and the benchmark are loaded once per process and shared by every engine built
from the same preset, seed and device (``functools.lru_cache``): a vectorized set of envs, or a test
suite, pays for them once.  Each engine gets its own copy of the base weights, because the
engine wraps its model with peft in place; for the embedded presets that copy takes
milliseconds.  The inputs are the engine's own settings (:mod:`fedenv.engine.settings`); a
scenario's engine is built by :func:`fedenv.scenario.engine.scenario_engine`.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence

from fedenv.data import Dialogue
from fedenv.data.benchmark import Benchmark
from fedenv.data.model import load_base
from fedenv.device import resolve_device
from fedenv.engine.federation import FederatedEngine
from fedenv.engine.settings import BenchmarkSettings, EngineConfig, ModelSettings


@functools.lru_cache(maxsize=4)
def shared_base(preset: str, seed: int, device: str, dtype: str):
    """``load_base`` once per process for each (preset, seed, device, dtype)."""
    return load_base(preset, device=device, dtype=dtype, seed=seed)


@functools.lru_cache(maxsize=8)
def shared_benchmark(
    preset: str,
    seed: int,
    device: str,
    dtype: str,
    domains: tuple[str, ...],
    dialogues_per_domain: int,
    max_len: int,
    batch_size: int,
) -> Benchmark:
    """The held-out benchmark over ``domains``, tokenized once per process."""
    _, tokenizer = shared_base(preset, seed, device, dtype)
    return Benchmark.generated(
        tokenizer,
        domains,
        dialogues_per_domain,
        seed,
        max_len=max_len,
        batch_size=batch_size,
        device=device,
    )


def build_engine(
    config: EngineConfig,
    model: ModelSettings,
    benchmark: BenchmarkSettings,
    datasets: Mapping[str, Sequence[Dialogue]],
    domains: Sequence[str],
) -> FederatedEngine:
    """A :class:`FederatedEngine` on ``model``'s shared base (on ``config.device``; ``auto`` picks
    CUDA when present) for the organizations' ``datasets``, scored on ``domains``."""
    device = str(resolve_device(config.device))
    key = (model.preset, config.seed, device, model.dtype)
    base, tokenizer = shared_base(*key)
    held_out = shared_benchmark(
        *key,
        tuple(dict.fromkeys(domains)),
        benchmark.dialogues_per_domain,
        config.training.max_len,
        benchmark.batch_size,
    )
    placed = config.model_copy(update={"device": device, "dtype": "auto"})
    return FederatedEngine(copy.deepcopy(base), tokenizer, datasets, held_out, placed)
