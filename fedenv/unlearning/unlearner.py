"""Carrying out unlearning requests in an episode: check, request, purge, rebuild, measure, certify.

:class:`Unlearner` is what the env (:mod:`fedenv.fedorg`) holds: the scenario's scheduled
requests (``[[unlearning]]``) and those made at run time (``request``) become due at the start
of a round, and :meth:`Unlearner.apply` carries one out:

1. check it (unknown organization, unknown or incompatible method, already forgotten, never
   took part, adapters not stored): an :class:`~fedenv.errors.UnlearningError` (or
   ``ConfigError``) before anything is written;
2. the organization signs its request on the public chain, naming the files it erases;
3. its raw updates are purged from its private collection and its update files erased;
4. the method (:mod:`fedenv.unlearning.methods`) rebuilds the global state, and, with
   ``[unlearning_policy] oracle``, ``retrain`` too (the reference the others are measured by);
5. each model is measured (:mod:`fedenv.unlearning.measures`); the engine keeps the method's;
6. the certificate (:mod:`fedenv.unlearning.certificate`) goes to the channel and its hash to
   the public chain, in a block of its own.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fedenv.engine.lora import canonical_bytes
from fedenv.errors import ConfigError, UnknownOrganizationError, UnlearningError
from fedenv.ledgers import round_key
from fedenv.ledgers.forgetting import post_request, purge_updates, record_certificate
from fedenv.records import RoundOutcome
from fedenv.round import RoundPlayer
from fedenv.run_folder import adapter_path
from fedenv.scenario.engine import organization_data
from fedenv.scenario.unlearning import METHODS, method_problem
from fedenv.unlearning.certificate import (
    certificate_bytes,
    certificate_digest,
    certificate_file,
    certificate_key,
    timings_file,
)
from fedenv.unlearning.episode import EpisodeRecord, round_records
from fedenv.unlearning.journal import open_journal
from fedenv.unlearning.measures import MembershipProbe, ModelMeasures, measure, oracle_gaps
from fedenv.unlearning.methods import METHODS as RUN_METHOD

ORACLE = "retrain"


@dataclass(frozen=True)
class UnlearningOutcome:
    """One organization forgotten: the certificate, its transactions and the measures."""

    org: str
    method: str
    round: int
    certificate_digest: str
    certificate_file: str
    global_digest: str
    request_tx: str
    certificate_txs: tuple[str, str]  # (channel, public)
    clawback: float
    measures: Mapping[str, Any]
    timings: Mapping[str, float] = field(default_factory=dict)
    training_steps: Mapping[str, int] = field(default_factory=dict)  # method (and retrain's)
    details: Mapping[str, Any] = field(default_factory=dict)  # calibrated_replay's plan

    def info(self) -> dict[str, Any]:
        """The ``unlearning`` entry of the forgotten organization's infos."""
        return {
            "method": self.method,
            "certificate": self.certificate_digest,
            "global_digest": self.global_digest,
            "request_tx": self.request_tx,
            "clawback": self.clawback,
            **self.measures,
            **{f"seconds_{k}": v for k, v in self.timings.items()},
            **{f"training_steps_{k}": v for k, v in self.training_steps.items()},
            **self.details,
        }


class Unlearner:
    """The unlearning requests of one env's episodes, carried out on its round player."""

    def __init__(self, player: RoundPlayer) -> None:
        self.player = player
        self.scenario = player.scenario
        self.policy = self.scenario.unlearning_policy
        self.start_episode()

    def start_episode(self) -> None:
        self.pending: dict[str, str] = {}  # org -> method, made at run time
        self.forgotten: dict[str, UnlearningOutcome] = {}
        self._probes: dict[tuple[str, int], MembershipProbe] = {}

    def episode_state(self) -> dict[str, Any]:
        """The episode's requests and forgotten organizations (an env copy carries them)."""
        return {"pending": dict(self.pending), "forgotten": dict(self.forgotten)}

    def restore_episode_state(self, state: Mapping[str, Any]) -> None:
        self.pending, self.forgotten = dict(state["pending"]), dict(state["forgotten"])

    # --- requests -----------------------------------------------------------------------------
    def check(self, org: str, method: str, outcomes: Sequence[RoundOutcome]) -> None:
        """Raise unless forgetting ``org`` with ``method`` can be carried out after ``outcomes``."""
        names = self.scenario.org_names
        if org not in names:
            raise UnknownOrganizationError(org, names)
        problem = method_problem(method, self.scenario.training.aggregator)
        if problem:
            raise ConfigError("method", problem)
        if org in self.forgotten or org in self.pending:
            raise UnlearningError(f"{org!r} is already forgotten in this episode")
        if not any(row.level for o in outcomes for name, row in o.orgs.items() if name == org):
            raise UnlearningError(
                f"{org!r} never took part in this episode: there is nothing to forget"
            )
        if not self.player.run.store_adapters:
            raise UnlearningError(
                "unlearning reads the stored updates (to replay them, and for the digests its "
                "certificate removes): create the env with store_adapters=True"
            )

    def request(self, org: str, method: str, outcomes: Sequence[RoundOutcome]) -> None:
        """Forget ``org`` with ``method`` at the start of the next round (checked now)."""
        self.check(org, method, outcomes)
        self.pending[org] = method

    def due(self, round_index: int) -> list[tuple[str, str]]:
        """The requests to apply at the start of round ``round_index``: the scenario's, then
        those made at run time (in the order they were made)."""
        scheduled = [(r.org, r.method) for r in self.scenario.unlearning if r.round == round_index]
        return scheduled + [(o, m) for o, m in self.pending.items() if o not in dict(scheduled)]

    # --- carrying one out ---------------------------------------------------------------------
    def apply(
        self, org: str, method: str, outcomes: Sequence[RoundOutcome], round_index: int
    ) -> UnlearningOutcome:
        """Forget ``org`` now (see the module docstring); the engine keeps the new state."""
        self.pending.pop(org, None)
        self.check(org, method, outcomes)
        player, ledgers, run = self.player, self.player.ledgers, self.player.run
        engine, episode = player.engine, player.episode
        record = self.episode_record(org, outcomes)
        key = certificate_key(episode, org)
        previous = engine.global_digest
        before = self._measure(org, record)

        request = {"episode": episode, "org": org, "method": method, "round": round_index}
        journal, _ = open_journal(
            run,
            key,
            request,
            lambda: self._removed(record, org),
            public_height=ledgers.public.height,
            resumable=hasattr(ledgers.public, "find_anchor"),
        )
        removed = journal["removed"]
        sealed = ledgers.public.height > journal["public_height"]  # killed after the seal
        if not sealed:
            ledgers.tick()
        erased = [r["artifact"] for r in removed]
        request_tx = post_request(ledgers, org, request, erased)
        purge_txs = purge_updates(ledgers, org, [r["round_key"] for r in removed])
        for artifact in erased:
            run.erase(artifact)

        timings: dict[str, float] = {}
        steps: dict[str, int] = {}
        oracle = None
        if self.policy.oracle and method != ORACLE:
            current = engine.global_state()
            start = time.perf_counter()
            oracle_state = RUN_METHOD[ORACLE](record, self.policy)
            timings[ORACLE] = time.perf_counter() - start
            steps[ORACLE] = oracle_state.training_steps
            engine.load_global_state(oracle_state.state)
            oracle = self._measure(org, record)
            engine.load_global_state(current)
        start = time.perf_counter()
        rebuilt = RUN_METHOD[method](record, self.policy)
        timings[method] = time.perf_counter() - start
        steps[method] = rebuilt.training_steps
        engine.load_global_state(rebuilt.state)
        after = self._measure(org, record)
        if oracle is None and method == ORACLE and self.policy.oracle:
            oracle, timings[ORACLE] = after, timings[method]
        player.global_result = engine.evaluate_global()

        measures: dict[str, Any] = {"before": before.as_dict(), "after": after.as_dict()}
        if oracle is not None:
            measures["oracle"] = oracle.as_dict()
            measures.update(oracle_gaps(after, oracle))
        clawback = (
            round(sum(o.orgs[org].payout for o in outcomes if org in o.orgs), 6)
            if self.policy.clawback
            else 0.0
        )
        data = canonical_bytes(engine.global_state())
        artifact = run.save_adapter(episode, round_index, f"unlearned-{org}", data)
        base = record.global_file(-1)
        fields = {
            "key": key,
            "episode": episode,
            "org": org,
            "method": method,
            "round": round_index,
            "request_tx": request_tx,
            "purge_txs": purge_txs,
            "removed": removed,
            "commit_rule": record.commit_rule.fields(),
            "base": {"digest": _file_digest(run, base), "artifact": base},
            "replay": self._replay_plan(record),
            "previous_global": previous,
            "global": {"digest": engine.global_digest, "artifact": artifact},
            "clawback": clawback,
            "measures": measures,
        }
        certificate = certificate_bytes(fields)
        file = run.write(certificate_file(key), certificate)
        channel_tx, public_tx = record_certificate(ledgers, org, key, certificate, file)
        run.write(timings_file(key), json.dumps(timings, indent=2, sort_keys=True).encode())
        if not sealed:
            ledgers.seal()
        outcome = UnlearningOutcome(
            org=org,
            method=method,
            round=round_index,
            certificate_digest=certificate_digest(certificate),
            certificate_file=file,
            global_digest=engine.global_digest,
            request_tx=request_tx,
            certificate_txs=(channel_tx, public_tx),
            clawback=clawback,
            measures=_flat(measures),
            timings=timings,
            training_steps=steps,
            details=dict(rebuilt.details),
        )
        self.forgotten[org] = outcome
        return outcome

    def compare(
        self, org: str, methods: Sequence[str], outcomes: Sequence[RoundOutcome]
    ) -> dict[str, dict[str, Any]]:
        """What each of ``methods`` would make of forgetting ``org`` now, measured against the
        ``retrain`` oracle, without recording or erasing anything: the engine's global state is
        restored afterwards.  ``{"before": measures, "retrain": {...}, method: {"measures",
        "gaps", "seconds", "training_steps", "details"}}`` (for studies: one trained episode,
        every method)."""
        for method in methods:
            problem = method_problem(method, self.scenario.training.aggregator)
            if problem:
                raise ConfigError("method", problem)
        engine = self.player.engine
        record = self.episode_record(org, outcomes)
        current = engine.global_state()
        results: dict[str, dict[str, Any]] = {
            "before": {"measures": self._measure(org, record).as_dict()}
        }
        oracle = None
        try:
            for method in (ORACLE, *[m for m in methods if m != ORACLE]):
                engine.load_global_state(current)
                start = time.perf_counter()
                rebuilt = RUN_METHOD[method](record, self.policy)
                seconds = time.perf_counter() - start
                engine.load_global_state(rebuilt.state)
                measures = self._measure(org, record)
                oracle = oracle or measures
                results[method] = {
                    "measures": measures.as_dict(),
                    "gaps": oracle_gaps(measures, oracle),
                    "seconds": seconds,
                    "training_steps": rebuilt.training_steps,
                    "details": dict(rebuilt.details),
                }
        finally:
            engine.load_global_state(current)
        return results

    def episode_record(self, org: str | None, outcomes: Sequence[RoundOutcome]) -> EpisodeRecord:
        """The episode so far with ``org`` to forget (None: nobody) besides those forgotten."""
        starts = {
            o.round: adapter_path(self.player.episode, o.round, f"unlearned-{o.org}")
            for o in self.forgotten.values()
        }
        return EpisodeRecord(
            self.player, round_records(outcomes), org, tuple(self.forgotten), starts
        )

    def _removed(self, record: EpisodeRecord, org: str) -> list[dict]:
        """``org``'s updates of the episode: round, round key, digest and file."""
        removed = []
        for index in record.took_part():
            artifact = record.update_file(index, org)
            removed.append(
                {
                    "round": index,
                    "round_key": round_key(record.episode, index),
                    "digest": _file_digest(record.run, artifact),
                    "artifact": artifact,
                }
            )
        return removed

    def _replay_plan(self, record: EpisodeRecord) -> list[dict]:
        plan = record.replay_plan()
        for step in plan:
            step["start"] = {
                "artifact": step["start"],
                "digest": _file_digest(record.run, step["start"]),
            }
            for update in step["updates"]:
                update["digest"] = _file_digest(record.run, update["artifact"])
        return plan

    def _measure(self, org: str, record: EpisodeRecord) -> ModelMeasures:
        """The engine's global model measured for forgetting ``org``: the membership inference's
        members are every dialogue ``org`` trained on in ``record``'s rounds (the largest data
        share of the levels it played)."""
        engine = self.player.engine
        members = max(
            record.num_examples(org, r.levels[org]) for r in record.rounds if org in r.levels
        )
        if (org, members) not in self._probes:
            spec = next(o for o in self.scenario.organizations if o.name == org)
            self._probes[org, members] = MembershipProbe.for_org(
                engine,
                organization_data(spec, self.scenario.seed),
                org,
                seed=self.scenario.seed,
                members=members,
                non_member_ratio=self.policy.mia_non_member_ratio,
                quality=spec.quality,
            )
        domain = next(o.domain for o in self.scenario.organizations if o.name == org)
        return measure(engine.evaluate_global(), [domain], self._probes[org, members])


def _file_digest(run, relative: str) -> str:
    return hashlib.sha256(run.read(relative)).hexdigest()


def _flat(measures: Mapping[str, Any]) -> dict[str, Any]:
    """``after``'s measures at the top, the rest (before, oracle, gaps) prefixed."""
    flat = {k: v for k, v in measures["after"].items() if k != "domain_fact_accuracy"}
    for name in ("before", "oracle"):
        for k, v in measures.get(name, {}).items():
            if k != "domain_fact_accuracy":
                flat[f"{name}_{k}"] = v
    flat.update({k: v for k, v in measures.items() if k.startswith("oracle_")})
    return flat


__all__ = ["METHODS", "Unlearner", "UnlearningOutcome"]
