"""The federated LoRA engine: one base model, one global adapter, rounds of training and aggregation.

A round (:meth:`FederatedEngine.run_round`):

1. every participant trains from the current global adapter on its own pre-tokenized data for its
   ``local_steps`` AdamW steps (batch order and dropout seeded from ``(seed, round_seed, org)``),
   and returns a :class:`ClientUpdate`: its adapter, its example count and the adapter's digest;
2. the updates are validated (finite, shaped like the global, digest matches, known and distinct
   organizations) and sorted by digest, so their order does not matter;
3. the aggregator (``fedavg``, ``ffa`` or ``flora``, see :mod:`fedenv.engine.aggregators`) combines them,
   weighted by example count, into the new global state.

Any subset of a round's updates can be scored without committing it
(:meth:`FederatedEngine.evaluate_coalition`): the subset's aggregate is applied as dense weight
changes ``W + scale * B @ A`` on the adapted modules, the benchmark runs with the LoRA layers
switched off, and the base weights are copied back from a snapshot, bit for bit. Results are cached
per (global state, multiset of update digests), so leave-one-out and Shapley values need no
retraining and no repeated evaluation.

The global state is the global adapter and, for aggregators that fold their aggregate into the
base weights (``flora``), the accumulated dense change of every adapted module. Its canonical
bytes and SHA-256 (:attr:`FederatedEngine.global_digest`) identify the global model.

Run ``python -m fedenv.engine --orgs 4 --rounds 5`` for a demo (:mod:`fedenv.engine.demo`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from fedenv.data import Dialogue
from fedenv.device import resolve_device, resolve_dtype
from fedenv.engine.aggregators import get_aggregator
from fedenv.engine.local_training import LocalTrainer, TokenizedDataset, attach_lora
from fedenv.engine.lora import (
    LORA_B_SUFFIX,
    Adapter,
    adapter_digest,
    canonical_bytes,
    clone_adapter,
    dense_deltas,
    fresh_adapter,
    lora_modules,
    validate_adapter,
)
from fedenv.engine.rounds import ClientUpdate, Participant, RoundResult, positive_int
from fedenv.engine.settings import EngineConfig
from fedenv.errors import (
    ConfigError,
    InvalidUpdateError,
    NoParticipantsError,
    UnknownOrganizationError,
)
from fedenv.seeding import derive_seed

if TYPE_CHECKING:
    from fedenv.data.benchmark import Benchmark, BenchmarkResult

__all__ = ["ClientUpdate", "EngineConfig", "FederatedEngine", "Participant", "RoundResult"]

BASE_DELTA_SUFFIX = ".base_layer.weight_delta"  # global-state key of a module's merged change
# Parameters: below this, a CPU engine whose training.cpu_threads is 0 runs on one thread, so its
# update hashes do not depend on the machine's core count (hashes reproduce per thread count).
# One thread is not the fastest: on the default scenario (2 cores) 2 threads took 0.94 s a step
# and 1 thread 1.19 s, which is why scenarios/default.toml sets cpu_threads = 2.
SINGLE_THREAD_BELOW = 50_000_000


class FederatedEngine:
    """Holds one peft-wrapped base model and the global LoRA state; trains, scores and commits.

    ``model`` is wrapped with peft in place (its target modules gain LoRA layers). Outside a
    call, the live model *is* the global model: its LoRA parameters hold the global adapter and
    its base weights the merged changes (``flora``). ``datasets`` maps organization ids to
    their training dialogues, tokenized once here.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        datasets: Mapping[str, Sequence[Dialogue]],
        benchmark: Benchmark,
        config: EngineConfig | None = None,
    ) -> None:
        self.config = config = EngineConfig() if config is None else config
        if not isinstance(config, EngineConfig):
            raise ConfigError("config", f"must be an EngineConfig, got {type(config).__name__}")
        if not datasets:
            raise ConfigError("datasets", "needs at least one organization")
        for org in datasets:
            if not isinstance(org, str) or not org:
                raise ConfigError(
                    "datasets", f"organization ids must be non-empty strings, got {org!r}"
                )
        training = config.training
        self.aggregator = get_aggregator(training.aggregator)
        self.benchmark = benchmark
        self.tokenizer = tokenizer
        model = _place(model, config.device, config.dtype)
        self.device = next(model.parameters()).device
        self.num_threads = training.cpu_threads or None
        small = sum(p.numel() for p in model.parameters()) < SINGLE_THREAD_BELOW
        if self.num_threads is None and self.device.type == "cpu" and small:
            self.num_threads = 1
        self.model, parameters = attach_lora(model, config.lora)
        self._modules = lora_modules(parameters)
        self._base_weights = {
            m: self.model.get_submodule(m).base_layer.weight for m in self._modules
        }
        self._base_original = {m: w.detach().clone() for m, w in self._base_weights.items()}
        self._initial = fresh_adapter(
            {k: p.detach() for k, p in parameters.items()}, derive_seed(config.seed, "lora-init")
        )
        trainable = [
            k
            for k in sorted(parameters)
            if self.aggregator.trains_lora_a or k.endswith(LORA_B_SUFFIX)
        ]
        self._trainer = LocalTrainer(
            self.model,
            parameters,
            trainable,
            lr=training.learning_rate,
            weight_decay=training.weight_decay,
            max_grad_norm=training.max_grad_norm or None,
        )
        self._data = {
            org: TokenizedDataset.build(
                tokenizer,
                dialogues,
                max_len=training.max_len,
                device=self.device,
                source=f"datasets[{org!r}]",
            )
            for org, dialogues in datasets.items()
        }
        self.orgs: tuple[str, ...] = tuple(self._data)
        self._cache: dict[tuple, BenchmarkResult] = {}
        self.reset()

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """Run with ``num_threads`` torch CPU threads, restoring the caller's setting after."""
        previous = torch.get_num_threads()
        if self.num_threads is None or self.num_threads == previous:
            yield
            return
        torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    # ----------------------------------------------------------------- global state

    def reset(self) -> None:
        """Back to the initial global state: the seeded adapter, the original base weights."""
        self._global = clone_adapter(self._initial)
        self._base_delta: dict[str, torch.Tensor] = {}
        if self.aggregator.folds_into_base:
            self._base_delta = {
                m: torch.zeros_like(w, dtype=torch.float32) for m, w in self._base_original.items()
            }
        self.round = 0
        self._install()

    @property
    def global_adapter(self) -> Adapter:
        """A clone of the global adapter."""
        return clone_adapter(self._global)

    @property
    def global_digest(self) -> str:
        """SHA-256 of :meth:`global_state_bytes`."""
        return self._global_digest

    def global_state(self) -> Adapter:
        """The global adapter plus, for ``flora``, every module's merged change (cloned)."""
        state = clone_adapter(self._global)
        state.update({m + BASE_DELTA_SUFFIX: d.clone() for m, d in self._base_delta.items()})
        return state

    def global_state_bytes(self) -> bytes:
        """Canonical bytes of :meth:`global_state` (run folders, ledgers)."""
        return canonical_bytes(self.global_state())

    def _install(self) -> None:
        """Make the live model the global model; refresh the digest; drop stale evaluations."""
        self._trainer.load(self._global)
        self._restore_base_weights()
        self._global_digest = adapter_digest(self.global_state())
        self._cache.clear()

    def _restore_base_weights(self) -> None:
        with torch.no_grad():
            for module, weight in self._base_weights.items():
                if module in self._base_delta:
                    weight.copy_(self._base_original[module].float() + self._base_delta[module])
                else:
                    weight.copy_(self._base_original[module])

    # ----------------------------------------------------------------- training

    def num_examples(self, participant: Participant) -> int:
        """How many of its examples ``participant`` trains on: ``ceil(data_share * n)``."""
        return max(1, math.ceil(participant.data_share * len(self._data[participant.org])))

    def train_updates(
        self, participants: Sequence[Participant], *, round_seed: int
    ) -> list[ClientUpdate]:
        """Train every participant from the current global adapter; nothing is committed.

        A pure function of (global state, participants, ``round_seed``, config): the same inputs
        give the same update digests."""
        participants = self._check_participants(participants)
        if not isinstance(round_seed, int) or isinstance(round_seed, bool) or round_seed < 0:
            raise ConfigError("round_seed", f"must be an integer >= 0, got {round_seed!r}")
        updates = []
        with self._threads():
            try:
                for participant in participants:
                    start = time.perf_counter()
                    num_examples = self.num_examples(participant)
                    adapter, loss = self._trainer.train(
                        self._global,
                        self._data[participant.org],
                        num_examples=num_examples,
                        steps=participant.local_steps,
                        batch_size=self.config.training.batch_size,
                        seed=derive_seed(self.config.seed, "client", round_seed, participant.org),
                    )
                    updates.append(
                        ClientUpdate.create(
                            participant.org,
                            adapter,
                            num_examples=num_examples,
                            local_steps=participant.local_steps,
                            train_loss=loss,
                            seconds=time.perf_counter() - start,
                        )
                    )
            finally:
                self._trainer.load(self._global)
        return updates

    def _check_participants(self, participants: Sequence[Participant]) -> list[Participant]:
        participants = list(participants)
        if not participants:
            raise NoParticipantsError("a round needs at least one participant")
        seen = set()
        for participant in participants:
            if not isinstance(participant, Participant):
                raise ConfigError(
                    "participants", f"expected Participant, got {type(participant).__name__}"
                )
            participant.check()
            if participant.org not in self._data:
                raise UnknownOrganizationError(participant.org, self.orgs)
            if participant.org in seen:
                raise ConfigError("participants", f"organization {participant.org!r} appears twice")
            seen.add(participant.org)
        return participants

    # ----------------------------------------------------------------- aggregation

    def _check_updates(self, updates: Sequence[ClientUpdate]) -> list[ClientUpdate]:
        """Validate every update before anything is touched; sort them by digest."""
        seen = set()
        for update in updates:
            if not isinstance(update, ClientUpdate):
                raise InvalidUpdateError(f"expected ClientUpdate, got {type(update).__name__}")
            if update.org not in self._data:
                raise UnknownOrganizationError(update.org, self.orgs)
            source = f"update from {update.org!r}"
            if update.org in seen:
                raise InvalidUpdateError(f"{source}: more than one update from this organization")
            seen.add(update.org)
            if not positive_int(update.num_examples):
                raise InvalidUpdateError(
                    f"{source}: num_examples must be a positive integer, got {update.num_examples!r}"
                )
            validate_adapter(update.adapter, self._initial, source=source)
            if adapter_digest(update.adapter) != update.digest:
                raise InvalidUpdateError(
                    f"{source}: digest does not match the adapter's canonical bytes"
                )
            self.aggregator.check_update(
                self._global, self._on_device(update.adapter), source=source
            )
        return sorted(updates, key=lambda u: (u.digest, u.num_examples, u.org))

    def _on_device(self, adapter: Adapter) -> Adapter:
        return {
            k: adapter[k].to(device=self.device, dtype=self._initial[k].dtype)
            for k in self._initial
        }

    def _aggregate(self, updates: list[ClientUpdate]) -> Adapter:
        adapters = [self._on_device(update.adapter) for update in updates]
        return self.aggregator.aggregate(self._global, adapters, [u.num_examples for u in updates])

    def _total_deltas(self, adapter: Adapter) -> dict[str, torch.Tensor]:
        """Dense change of every adapted module: merged changes plus ``scale * B @ A``."""
        deltas = dense_deltas(adapter, self.config.lora.scale)
        return {
            m: self._base_delta[m] + d if m in self._base_delta else d for m, d in deltas.items()
        }

    def commit(self, updates: Sequence[ClientUpdate]) -> str:
        """Aggregate ``updates`` into the new global state; returns its digest.

        Every update is validated first: a rejected commit leaves the global state unchanged."""
        if not updates:
            raise NoParticipantsError("commit needs at least one update")
        aggregate = self._aggregate(self._check_updates(updates))
        base_delta = self._base_delta
        if self.aggregator.folds_into_base:  # merge B @ A into the base; restart from fresh LoRA
            deltas = dense_deltas(aggregate, self.config.lora.scale)
            base_delta = {m: d + deltas[m] for m, d in self._base_delta.items()}
            fresh_seed = derive_seed(self.config.seed, "fresh-adapter", adapter_digest(aggregate))
            new_global = fresh_adapter(self._initial, fresh_seed)
        else:
            new_global = {k: aggregate[k].to(self._initial[k].dtype) for k in self._initial}
        self._global, self._base_delta = new_global, base_delta
        self.round += 1
        self._install()
        return self._global_digest

    # ----------------------------------------------------------------- evaluation

    def evaluate_global(self) -> BenchmarkResult:
        """Benchmark of the current global model (cached until the global state changes)."""
        return self.evaluate_coalition(())

    def evaluate_coalition(self, updates: Sequence[ClientUpdate]) -> BenchmarkResult:
        """Benchmark of the aggregate of ``updates`` (the global model if empty), not committed.

        The model is left bit-identical. Results are cached per (global digest, update digests)."""
        checked = self._check_updates(updates)
        key = (self._global_digest, tuple((u.digest, u.num_examples) for u in checked))
        if key not in self._cache:
            adapter = self._aggregate(checked) if checked else self._global
            self._cache[key] = self._evaluate_deltas(self._total_deltas(adapter))
        return copy.deepcopy(self._cache[key])

    def _evaluate_deltas(self, deltas: Mapping[str, torch.Tensor]) -> BenchmarkResult:
        try:
            with torch.no_grad():
                for module, weight in self._base_weights.items():
                    weight.copy_(self._base_original[module].float() + deltas[module])
            self.model.eval()
            with self._threads(), self.model.disable_adapter():
                return self.benchmark.evaluate(self.model)
        finally:
            self._restore_base_weights()

    # ----------------------------------------------------------------- rounds

    def run_round(
        self,
        participants: Sequence[Participant],
        *,
        round_seed: int | None = None,
        evaluate: bool = True,
    ) -> RoundResult:
        """Train every participant, commit the aggregate, and benchmark before and after.

        ``round_seed`` defaults to the round index."""
        index = self.round
        self._check_participants(participants)
        clock = [time.perf_counter()]
        before = self.evaluate_global() if evaluate else None
        clock.append(time.perf_counter())
        updates = self.train_updates(
            participants, round_seed=index if round_seed is None else round_seed
        )
        clock.append(time.perf_counter())
        digest = self.commit(updates)
        clock.append(time.perf_counter())
        after = self.evaluate_global() if evaluate else None
        clock.append(time.perf_counter())
        stages = ("evaluate_before", "train", "aggregate", "evaluate_after")
        timings = {stage: clock[i + 1] - clock[i] for i, stage in enumerate(stages)}
        timings["round"] = clock[-1] - clock[0]
        return RoundResult(index, updates, digest, before, after, timings)


def _place(model: torch.nn.Module, device: str, dtype: str) -> torch.nn.Module:
    """Move ``model`` to the configured device and dtype ("auto" keeps what it has)."""
    target = next(model.parameters()).device if device == "auto" else resolve_device(device)
    if dtype == "auto":
        return model.to(device=target)
    return model.to(device=target, dtype=resolve_dtype(dtype, target))
