"""Building a scenario's federation: the shared base model, the organizations' data, the benchmark.

The base model and the benchmark are loaded once per process and shared by every env built from
the same preset, seed and device (``functools.lru_cache``): a vectorized set of envs, or a test
suite, pays for them once.  Each engine gets its own copy of the base weights, because the
engine wraps its model with peft in place; for the embedded presets that copy takes
milliseconds.
"""

from __future__ import annotations

import copy
import functools

from fedenv.data import Dialogue, generate_org_dialogues, load_jsonl
from fedenv.data.benchmark import Benchmark
from fedenv.data.model import load_base
from fedenv.device import resolve_device
from fedenv.engine.federation import EngineConfig, FederatedEngine
from fedenv.engine.lora import LoraSettings
from fedenv.scenario import Organization, Scenario


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


def organization_data(org: Organization, seed: int) -> list[Dialogue]:
    """``org``'s training dialogues: its JSONL file (first ``data_size``), or generated ones."""
    if org.data_path:
        return load_jsonl(org.data_path)[: org.data_size]
    return generate_org_dialogues(
        org.domain, org.data_size, seed, org=org.name, quality=org.quality
    )


def build_engine(scenario: Scenario) -> FederatedEngine:
    """A :class:`FederatedEngine` for ``scenario``, on the shared base model and benchmark."""
    device = str(resolve_device(scenario.device))
    key = (scenario.model.preset, scenario.seed, device, scenario.model.dtype)
    model, tokenizer = shared_base(*key)
    domains = tuple(dict.fromkeys(o.domain for o in scenario.organizations))
    benchmark = shared_benchmark(
        *key,
        domains,
        scenario.benchmark.dialogues_per_domain,
        scenario.training.max_len,
        scenario.benchmark.batch_size,
    )
    lora = scenario.lora
    config = EngineConfig(
        lora=LoraSettings(
            r=lora.r, alpha=lora.alpha, dropout=lora.dropout, target_modules=lora.target_modules
        ),
        aggregator=scenario.training.aggregator,
        lr=scenario.training.learning_rate,
        batch_size=scenario.training.batch_size,
        max_len=scenario.training.max_len,
        seed=scenario.seed,
        device=device,
        dtype=scenario.model.dtype,
        num_threads=scenario.training.cpu_threads or None,
    )
    datasets = {o.name: organization_data(o, scenario.seed) for o in scenario.organizations}
    return FederatedEngine(copy.deepcopy(model), tokenizer, datasets, benchmark, config)
