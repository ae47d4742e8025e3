"""The federated LoRA engine: one base model, one global adapter, rounds of training and aggregation.

A round (:meth:`FederatedEngine.run_round`):

1. every participant trains from the current global adapter on its own pre-tokenized data for its
   ``local_steps`` AdamW steps (batch order and dropout seeded from ``(seed, round_seed, org)``),
   and returns a :class:`ClientUpdate`: its adapter, its example count and the adapter's digest;
   one participant after another, or all in shared passes (``training.grouped``,
   :mod:`fedenv.engine.batched_training`), optionally through ``torch.compile``
   (``training.compile``, :mod:`fedenv.engine.compiled`);
2. the updates are validated (finite, shaped like the global, digest matches, known and distinct
   organizations), once per update and global state (:mod:`fedenv.engine.verified`), and sorted
   by digest, so their order does not matter;
3. the aggregator (``fedavg``, ``ffa`` or ``flora``, see :mod:`fedenv.engine.aggregators`) combines them,
   weighted by example count, into the new global state.

Any subset of a round's updates can be scored without committing it
(:meth:`FederatedEngine.evaluate_coalition`): the subset's aggregate is applied as dense weight
changes ``W + scale * B @ A`` on the adapted modules, the benchmark runs with the LoRA layers
switched off, and the base weights are copied back from a snapshot, bit for bit, so leave-one-out
and Shapley values need no retraining; the round keeps its coalitions' values (one cache, in the
round). :meth:`FederatedEngine.evaluate_coalitions` scores many coalitions at once, in grouped
passes where that pays (GPUs, :mod:`fedenv.engine.coalitions`).

The global state is the global adapter and, for aggregators that fold their aggregate into the
base weights (``flora``), the accumulated dense change of every adapted module. Its canonical
bytes and SHA-256 (:attr:`FederatedEngine.global_digest`) identify the global model.

Run ``python -m fedenv.engine --orgs 4 --rounds 5`` for a demo (:mod:`fedenv.engine.demo`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from fedenv.data import Dialogue
from fedenv.device import cpu_threads, place_model
from fedenv.engine.aggregators import (
    AggregationRule,
    aggregate_under_rule,
    get_aggregator,
)
from fedenv.engine.batched_training import BatchedTrainer
from fedenv.engine.coalitions import CoalitionEvaluator
from fedenv.engine.compiled import CompiledCall
from fedenv.engine.global_state import (
    BASE_DELTA_SUFFIX,
    join_global_state,
    next_global_state,
    split_global_state,
)
from fedenv.engine.local_training import (
    LocalTrainer,
    TokenizedDataset,
    TrainingJob,
    attach_lora,
)
from fedenv.engine.lora import (
    LORA_B_SUFFIX,
    Adapter,
    adapter_digest,
    canonical_bytes,
    clone_adapter,
    fresh_adapter,
    lora_modules,
    validate_adapter,
)
from fedenv.engine.multi_lora import lora_layers, use_grouped
from fedenv.engine.rounds import ClientUpdate, Participant, RoundResult, check_participants
from fedenv.engine.settings import EngineConfig
from fedenv.engine.verified import VerifiedUpdates
from fedenv.errors import (
    ConfigError,
    InvalidUpdateError,
    NoParticipantsError,
    UnknownOrganizationError,
)
from fedenv.seeding import derive_seed

if TYPE_CHECKING:
    from fedenv.data.benchmark import Benchmark, BenchmarkResult

__all__ = [
    "BASE_DELTA_SUFFIX",
    "ClientUpdate",
    "EngineConfig",
    "FederatedEngine",
    "Participant",
    "RoundResult",
]


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
        model = place_model(model, config.device, config.dtype)
        self.device = next(model.parameters()).device
        self.num_threads = training.cpu_threads or None
        if self.num_threads is None and self.device.type == "cpu":
            self.num_threads = cpu_threads()
        self.model, parameters = attach_lora(model, config.lora)
        self._modules = lora_modules(parameters)
        layers = lora_layers(self.model, self._modules)
        self._compiled = CompiledCall(self.model, enabled=training.compile)
        self._evaluator = CoalitionEvaluator(
            self.model,
            layers,
            benchmark,
            scale=config.lora.scale,
            threads=self.threads,
            forward=self._compiled,
        )
        self.grouped_default = use_grouped(training.grouped, self.model, config.lora)
        self._initial = fresh_adapter(
            {k: p.detach() for k, p in parameters.items()}, derive_seed(config.seed, "lora-init")
        )
        trainable = [
            k
            for k in sorted(parameters)
            if self.aggregator.trains_lora_a or k.endswith(LORA_B_SUFFIX)
        ]
        adamw = {
            "lr": training.learning_rate,
            "weight_decay": training.weight_decay,
            "max_grad_norm": training.max_grad_norm or None,
        }
        self._trainer = LocalTrainer(
            self.model, parameters, trainable, forward=self._compiled, **adamw
        )
        self._batched_trainer = BatchedTrainer(
            self.model,
            layers,
            trainable,
            scale=config.lora.scale,
            pad_id=tokenizer.pad_token_id or 0,
            **adamw,
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
        self._global_result: BenchmarkResult | None = None
        self._verified = VerifiedUpdates(
            self._initial, self.orgs, self.aggregator, lambda: self._global
        )
        self.reset()

    @contextlib.contextmanager
    def threads(self) -> Iterator[None]:
        """Run with ``num_threads`` torch CPU threads, restoring the caller's setting after.

        Every computation of the engine runs under it, and so does the env's whole step
        (:mod:`fedenv.fedorg`): merging, hashing and defences included. A piece left on torch's
        process default (one thread per CPU) oversubscribes the CPUs as soon as two env processes
        share them, and OpenMP's spinning threads then burn several times the CPU time."""
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
                m: torch.zeros_like(w, dtype=torch.float32)
                for m, w in self._evaluator.original.items()
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
        return clone_adapter(join_global_state(self._global, self._base_delta))

    def load_global_state(self, state: Mapping[str, torch.Tensor]) -> str:
        """Make ``state`` (as :meth:`global_state` returns it, e.g. read back from a run folder)
        the global state; returns its digest.  It must have the global state's keys and shapes;
        a bad state raises :class:`InvalidUpdateError` and changes nothing."""
        adapter, base_delta = split_global_state(state)
        validate_adapter(adapter, self._initial, source="global state")
        if set(base_delta) != set(self._base_delta) or any(
            base_delta[m].shape != d.shape for m, d in self._base_delta.items()
        ):
            raise InvalidUpdateError("global state: its merged base changes do not fit the model")
        self._global = {
            k: adapter[k].to(self._initial[k].device, self._initial[k].dtype).clone()
            for k in self._initial
        }
        self._base_delta = {m: base_delta[m].float().clone() for m in self._base_delta}
        self._install()
        return self._global_digest

    @property
    def initial_adapter(self) -> Adapter:
        """A clone of the seeded adapter every episode starts from (and ``flora`` re-seeds)."""
        return clone_adapter(self._initial)

    @property
    def lora_parameters(self) -> dict[str, torch.nn.Parameter]:
        """The live LoRA parameters by adapter key (the global adapter outside a call)."""
        return dict(self._trainer.parameters)

    @property
    def trainable_keys(self) -> frozenset[str]:
        """The adapter keys local training changes (every ``lora_B``, and ``lora_A`` unless the
        aggregator freezes it)."""
        return self._trainer.trainable_keys

    def dataset(self, org: str) -> TokenizedDataset:
        """``org``'s tokenized training data."""
        if org not in self._data:
            raise UnknownOrganizationError(org, self.orgs)
        return self._data[org]

    def global_state_bytes(self) -> bytes:
        """Canonical bytes of :meth:`global_state` (run folders, ledgers)."""
        return canonical_bytes(self.global_state())

    def restore_global_state(self, state: Mapping[str, torch.Tensor], round: int) -> None:
        """Make ``state`` (what :meth:`global_state` returned, maybe in another process) the
        global state after ``round`` committed rounds: a copied env continues from it."""
        adapter = {k: v for k, v in state.items() if not k.endswith(BASE_DELTA_SUFFIX)}
        deltas = {
            k[: -len(BASE_DELTA_SUFFIX)]: v for k, v in state.items() if k.endswith(BASE_DELTA_SUFFIX)
        }
        if set(adapter) != set(self._initial) or set(deltas) != set(self._base_delta):
            raise ConfigError("state", "is not a global state of this engine (other keys)")
        self._global = {k: adapter[k].to(self._initial[k]).clone() for k in self._initial}
        self._base_delta = {m: deltas[m].to(d).clone() for m, d in self._base_delta.items()}
        self.round = round
        self._install()

    def _install(self) -> None:
        """Make the live model the global model; refresh the digest; drop stale evaluations."""
        self._trainer.load(self._global)
        self._evaluator.install_base(self._base_delta)
        self._global_digest = adapter_digest(self.global_state())
        self._global_result = None
        self._verified.forget()

    # ----------------------------------------------------------------- training

    def num_examples(self, participant: Participant) -> int:
        """How many of its examples ``participant`` trains on: ``ceil(data_share * n)``."""
        return max(1, math.ceil(participant.data_share * len(self._data[participant.org])))

    def _job(self, participant: Participant, round_seed: int) -> TrainingJob:
        return TrainingJob(
            self._data[participant.org],
            self.num_examples(participant),
            participant.local_steps,
            derive_seed(self.config.seed, "client", round_seed, participant.org),
        )

    def batch_lengths(self, participant: Participant, *, round_seed: int) -> list[list[int]]:
        """Real tokens of each row of each of ``participant``'s local steps in the round that
        ``train_updates`` would run with ``round_seed`` (for FLOP counts)."""
        job = self._job(participant, round_seed)
        return job.data.lengths[job.batch_order(self.config.training.batch_size)].tolist()

    def train_updates(
        self,
        participants: Sequence[Participant],
        *,
        round_seed: int,
        grouped: bool | None = None,
    ) -> list[ClientUpdate]:
        """Train every participant from the current global adapter; nothing is committed.

        A pure function of (global state, participants, ``round_seed``, config): the same inputs
        give the same update digests. ``grouped``: train all participants in shared passes
        (:mod:`fedenv.engine.batched_training`) instead of one after another; ``None`` picks
        :attr:`grouped_default` (``training.grouped``). Both give the same updates up to rounding."""
        participants = check_participants(participants, self.orgs)
        if not isinstance(round_seed, int) or isinstance(round_seed, bool) or round_seed < 0:
            raise ConfigError("round_seed", f"must be an integer >= 0, got {round_seed!r}")
        trainer = self._batched_trainer if self._grouped(grouped) else self._trainer
        jobs = [self._job(p, round_seed) for p in participants]
        # Training needs autograd whatever the caller runs under: RL libraries step envs inside
        # torch.no_grad() (TorchRL's collectors) or inference mode.
        with self.threads(), torch.inference_mode(False), torch.enable_grad():
            trained = trainer.train_jobs(self._global, jobs, self.config.training.batch_size)
        updates = []
        for participant, (adapter, loss, spent) in zip(participants, trained):
            update = ClientUpdate.create(
                participant.org,
                adapter,
                num_examples=self.num_examples(participant),
                local_steps=participant.local_steps,
                train_loss=loss,
                seconds=spent,
            )
            with contextlib.suppress(InvalidUpdateError):  # diverged: fails when used
                self._verified.trust(update)
            updates.append(update)
        return updates

    def _grouped(self, grouped: bool | None) -> bool:
        if grouped is None:
            return self.grouped_default
        return use_grouped("on" if grouped else "off", self.model, self.config.lora, "grouped")

    # ----------------------------------------------------------------- aggregation

    def _aggregate(
        self, checked: list[tuple[ClientUpdate, Adapter]], rule: AggregationRule | None = None
    ) -> Adapter:
        """The aggregate of checked updates (see :class:`VerifiedUpdates`) under ``rule``
        (default: data-size weights normalized over them)."""
        return aggregate_under_rule(
            self.aggregator,
            self._global,
            [a for _, a in checked],
            orgs=[update.org for update, _ in checked],
            num_examples=[update.num_examples for update, _ in checked],
            rule=rule,
        )

    def commit(
        self, updates: Sequence[ClientUpdate], *, rule: AggregationRule | None = None
    ) -> str:
        """Aggregate ``updates`` under ``rule`` into the new global state; returns its digest.

        Every update is validated first: a rejected commit leaves the global state unchanged."""
        if not updates:
            raise NoParticipantsError("commit needs at least one update")
        with self.threads():
            aggregate = self._aggregate(self._verified.check(updates), rule)
            self._global, self._base_delta = next_global_state(
                self.aggregator,
                aggregate,
                self._base_delta,
                scale=self.config.lora.scale,
                initial=self._initial,
                seed=self.config.seed,
            )
            self.round += 1
            self._install()
        return self._global_digest

    # ----------------------------------------------------------------- evaluation

    def evaluate_global(self) -> BenchmarkResult:
        """Benchmark of the current global model (kept until the global state changes, so a
        round's "after" is the next round's "before")."""
        if self._global_result is None:
            self._global_result = self.evaluate_coalition(())
        return self._global_result

    def evaluate_coalition(self, updates: Sequence[ClientUpdate]) -> BenchmarkResult:
        """Benchmark of the aggregate of ``updates`` (the global model if empty), not committed.

        Exactly what :meth:`evaluate_global` returns after ``commit(updates)``; the model is left
        bit-identical. Every call evaluates: a round keeps its coalitions' values itself."""
        return self.evaluate_coalitions([updates], grouped=False)[0]

    def evaluate_coalitions(
        self,
        coalitions: Sequence[Sequence[ClientUpdate]],
        *,
        grouped: bool | None = None,
        rule: AggregationRule | None = None,
    ) -> list[BenchmarkResult]:
        """:meth:`evaluate_coalition` of each coalition, aggregated under ``rule`` (as
        :meth:`commit` would). ``grouped``: all of them in shared passes
        (:meth:`CoalitionEvaluator.grouped`), equal up to rounding; ``None`` picks
        :attr:`grouped_default`. Every update is validated before anything is evaluated."""
        grouped = self._grouped(grouped)
        with self.threads():
            checked = [self._verified.check(updates) for updates in coalitions]
            adapters = [self._aggregate(c, rule) if c else self._global for c in checked]
            if grouped:
                return self._evaluator.grouped(adapters)
            return [self._evaluator.merged(adapter) for adapter in adapters]

    def evaluate_global_on(self, benchmark: Benchmark) -> BenchmarkResult:
        """``benchmark`` (another held-out set than the engine's) on the current global model."""
        with self.threads():
            return benchmark.evaluate(self.model, forward=self._compiled)

    def tokenize(self, dialogues: Sequence[Dialogue], *, source: str) -> TokenizedDataset:
        """``dialogues`` tokenized as an organization's are (for :meth:`train_reference`)."""
        return TokenizedDataset.build(
            self.tokenizer,
            dialogues,
            max_len=self.config.training.max_len,
            device=self.device,
            source=source,
        )

    def train_reference(self, data: TokenizedDataset, local_steps: int, *, seed: int) -> Adapter:
        """An adapter trained from the current global one on ``data`` (the consortium's own
        dialogues, e.g. FLTrust's root set) for ``local_steps`` steps, as a participant trains;
        nothing is committed."""
        job = TrainingJob(data, len(data), local_steps, derive_seed(self.config.seed, "ref", seed))
        with self.threads():
            [(adapter, _, _)] = self._trainer.train_jobs(
                self._global, [job], self.config.training.batch_size
            )
        return adapter

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
        check_participants(participants, self.orgs)
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
