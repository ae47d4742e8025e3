"""One federated round, as the env plays it: train, publish, score, pay, aggregate, anchor.

:class:`RoundPlayer` holds the engine (:mod:`fedenv.scenario.engine`) and the run folder's ledgers
(:mod:`fedenv.ledgers`) and turns the round's resource levels into a typed
:class:`~fedenv.records.RoundOutcome` (one :class:`~fedenv.records.OrgOutcome` per organization).
The order of :meth:`RoundPlayer.play` is the design's "one step, as data flows":

1. participants train from the current global adapter (``engine.train_updates``);
2. each update's canonical bytes are written to the run folder, its hash is signed onto the
   public chain by the organization, the bytes go to its private data collection on its
   updates channel;
3. contributions are scored (coalition values from ``engine.evaluate_coalitions``, each
   coalition evaluated once); with ``scoring.reject_negative``, updates with a negative
   contribution are rejected, and all are if the rest would lower the global's score; the
   mechanism pays the accepted ones; the scoring transaction is endorsed and committed on the
   round's scoring channel (:mod:`fedenv.ledgers.layout`);
4. the accepted updates are committed as the new global state; its scores on each
   sub-consortium's domains go to the channels that carry ``benchmark``; its hash and the
   round's summary are anchored on the public chain, and the round's block is sealed;
5. rewards = payout + model value - costs (:mod:`fedenv.scoring.costs`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from fedenv.data.benchmark import BenchmarkResult
from fedenv.engine.federation import ClientUpdate, Participant
from fedenv.engine.lora import canonical_bytes
from fedenv.records import OrgOutcome, RoundOutcome
from fedenv.run_folder import RunFolder
from fedenv.scenario import Scenario
from fedenv.scenario.engine import scenario_engine
from fedenv.scoring.behaviours import TRAINS, craft_update
from fedenv.scoring.coalition_values import RoundCoalitionValues
from fedenv.scoring.contribution import MAX_EXACT_PLAYERS, contributions
from fedenv.scoring.costs import RoundCosts, round_costs
from fedenv.scoring.incentives import get_mechanism, payout_method
from fedenv.seeding import derive_seed

DIGITS = 6  # floats written to the ledgers are rounded to this many decimals


class _Stopwatch:
    """Wall-clock seconds per named stage (the outcome's ``timings``, never the infos)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


class RoundPlayer:
    """Plays the rounds of a scenario on its engine and ledgers."""

    def __init__(self, scenario: Scenario, run: RunFolder) -> None:
        self.scenario = scenario
        self.run = run
        self.ledgers = run.ledgers
        self.engine = scenario_engine(scenario)
        self.mechanism = get_mechanism(scenario.incentives.mechanism)
        self.orgs = {o.name: o for o in scenario.organizations}
        self.episode = -1
        self.episode_seed = 0
        self._base_result: BenchmarkResult | None = None
        self.global_result: BenchmarkResult | None = None

    _REBUILT = ("scenario", "run", "ledgers", "engine", "mechanism", "orgs")
    """What a player builds from its scenario and run folder: not part of :meth:`episode_state`."""

    def episode_state(self) -> dict[str, Any]:
        """Everything a copy of the player needs to continue the episode (picklable): its own
        fields (episode, seeds, benchmark results, ...) and the engine's global state."""
        state = {k: v for k, v in vars(self).items() if k not in self._REBUILT}
        state["engine"] = (self.engine.global_state(), self.engine.round)
        return state

    def restore_episode_state(self, state: Mapping[str, Any]) -> None:
        """Continue from another player's :meth:`episode_state` (same scenario, copied ledgers)."""
        state = dict(state)
        global_state, round_index = state.pop("engine")
        self.engine.restore_global_state(global_state, round_index)
        vars(self).update(state)

    def start_episode(self, seed: int, index: int) -> None:
        """Back to the base global state; anchor it; seed the episode's randomness."""
        self.engine.reset()
        if self._base_result is None:
            self._base_result = self.engine.evaluate_global()
        self.global_result = self._base_result
        self.episode_seed = derive_seed(seed, "episode", index)
        artifact = self.run.save_adapter(None, None, "base", self.engine.global_state_bytes())
        self.episode, _ = self.ledgers.start_episode(self.engine.global_digest, artifact)
        self.run.prune_adapters(self.episode)

    def play(self, index: int, levels: Mapping[str, int]) -> RoundOutcome:
        """Round ``index`` of the episode; ``levels[org]`` is the org's action (0 = sit out).

        The outcome has one :class:`~fedenv.records.OrgOutcome` per organization of
        ``levels``, in its order."""
        sc, ledgers, watch = self.scenario, self.ledgers, _Stopwatch()
        ledgers.tick()
        participants = {
            org: Participant(org, sc.level(k).local_steps, sc.level(k).data_share)
            for org, k in levels.items()
            if k
        }
        with watch("train"):
            updates = self._updates(participants, index)
        by_org = {u.org: u for u in updates}
        tx_ids: dict[str, list[str]] = {org: [] for org in levels}
        for update in updates:
            data = canonical_bytes(update.adapter)
            with watch("files"):
                artifact = self.run.save_adapter(self.episode, index, update.org, data)
            with watch("ledgers"):
                tx_ids[update.org] = [
                    ledgers.post_update(update.org, self.episode, index, update.digest, artifact),
                    *ledgers.store_private_update(
                        update.org, self.episode, index, data, participants=list(by_org)
                    ),
                ]

        before = self.global_result
        values = RoundCoalitionValues(self.engine, by_org, before)
        with watch("scoring"):
            contribution = self._contributions(values, index)
            accepted = self._accept(contribution, values)
            paid_on = self._payout_contributions(values, index, contribution)
        payouts = self.mechanism.payouts(
            {o: paid_on[o] for o in accepted},
            {o: by_org[o].num_examples for o in accepted},
            sc.incentives.reward_pool,
        )
        scoring_tx = None
        if updates:
            with watch("ledgers"):
                scoring_tx = ledgers.record_scoring(
                    self.episode,
                    index,
                    {
                        o: {
                            "digest": u.digest,
                            "level": levels[o],
                            "accepted": o in accepted,
                            "contribution": _rounded(contribution[o]),
                            "payout": _rounded(payouts.get(o, 0.0)),
                        }
                        for o, u in by_org.items()
                    },
                    pool=sc.incentives.reward_pool,
                )
        with watch("aggregate"):
            if accepted:
                self.engine.commit([by_org[o] for o in accepted])
                self.global_result = values.result(frozenset(accepted))
        after = self.global_result
        with watch("files"):
            artifact = self.run.save_adapter(
                self.episode, index, "global", self.engine.global_state_bytes()
            )
        summary = {
            "participants": sorted(by_org),
            "accepted": sorted(accepted),
            "contributions": {o: _rounded(c) for o, c in sorted(contribution.items())},
            "payouts": {o: _rounded(p) for o, p in sorted(payouts.items())},
            "global_score": _rounded(after.score),
            "scoring_tx": scoring_tx or "",
        }
        with watch("ledgers"):
            if updates:
                own_scores = {
                    o: _rounded(after.domains[s.domain].score) for o, s in self.orgs.items()
                }
                ledgers.record_benchmark(
                    self.episode, index, self.engine.global_digest, own_scores, list(by_org)
                )
            anchor_txs = ledgers.anchor_global(
                self.episode, index, self.engine.global_digest, summary, artifact
            )
            height = ledgers.seal()

        orgs = {
            org: self._org_outcome(org, k, before, after, contribution, payouts, accepted, tx_ids)
            for org, k in levels.items()
        }
        return RoundOutcome(
            episode=self.episode,
            round=index,
            max_rounds=sc.max_rounds,
            global_score=after.score,
            global_digest=self.engine.global_digest,
            domain_scores={d: r.score for d, r in after.domains.items()},
            public_height=height,
            scoring_tx=scoring_tx,
            scoring_channel=ledgers.scoring_channel,
            anchor_txs=tuple(anchor_txs),
            evaluations=values.evaluations,
            orgs=orgs,
            timings=watch.seconds,
        )

    def _org_outcome(
        self,
        org: str,
        level: int,
        before: BenchmarkResult,
        after: BenchmarkResult,
        contribution: Mapping[str, float],
        payouts: Mapping[str, float],
        accepted: Sequence[str],
        tx_ids: Mapping[str, Sequence[str]],
    ) -> OrgOutcome:
        """``org``'s costs, model value and reward (nothing of them when it sat out)."""
        sc, spec = self.scenario, self.orgs[org]
        if not level:  # sat out: no update, no transaction, nothing paid, owed or gained
            return OrgOutcome(
                domain=spec.domain,
                level=0,
                local_steps=0,
                contribution=0.0,
                payout=0.0,
                costs=RoundCosts(),
                model_value=0.0,
                reward=0.0,
                accepted=False,
                tx_ids=(),
            )
        costs = round_costs(
            spec.unit_cost,
            sc.level(level).compute,
            sc.costs,
            trains=TRAINS[spec.behaviour],
            ledger_fees=self.ledgers.round_fees.get(org, 0.0),
        )
        gain = after.domains[spec.domain].score - before.domains[spec.domain].score
        model_value = (
            sc.incentives.model_value_weight * gain
            + sc.incentives.collective_weight * (after.score - before.score)
        )
        payout = float(payouts.get(org, 0.0))
        return OrgOutcome(
            domain=spec.domain,
            level=level,
            local_steps=sc.level(level).local_steps,
            contribution=float(contribution.get(org, 0.0)),
            payout=payout,
            costs=costs,
            model_value=model_value,
            reward=payout + model_value - costs.total,
            accepted=org in accepted,
            tx_ids=tuple(tx_ids[org]),
        )

    def level_costs(self, org: str, level: int) -> RoundCosts:
        """The most a round at ``level`` can cost ``org`` (nothing at 0), known before the round:
        compute and communication exactly, ledger fees at their bound
        (:meth:`fedenv.ledgers.Ledgers.fee_bound`; the round charges the fees actually paid,
        which depend on who else takes part). The env's hard budgets (:mod:`fedenv.budgets`)
        check actions against this, so no round takes an organization past its budget."""
        if not level:
            return RoundCosts()
        spec = self.orgs[org]
        return round_costs(
            spec.unit_cost,
            self.scenario.level(level).compute,
            self.scenario.costs,
            trains=TRAINS[spec.behaviour],
            ledger_fees=self.ledgers.fee_bound(org),
        )

    def _updates(self, participants: Mapping[str, Participant], index: int) -> list[ClientUpdate]:
        """Honest training for the organizations that train; crafted updates for the others."""
        if not participants:
            return []
        behaviour = {org: self.orgs[org].behaviour for org in participants}
        trainers = [p for org, p in participants.items() if TRAINS[behaviour[org]]]
        round_seed = derive_seed(self.episode_seed, "round", index)
        trained = (
            {u.org: u for u in self.engine.train_updates(trainers, round_seed=round_seed)}
            if trainers
            else {}
        )
        if all(b == "honest" for b in behaviour.values()):
            return list(trained.values())
        global_adapter = self.engine.global_adapter
        return [
            craft_update(
                behaviour[org],
                org,
                global_adapter,
                trained.get(org),
                num_examples=self.engine.num_examples(p),
                local_steps=p.local_steps,
                seed=derive_seed(round_seed, "behaviour", org),
                trains_lora_a=self.engine.aggregator.trains_lora_a,
            )
            for org, p in participants.items()
        ]

    def _payout_contributions(
        self, values: RoundCoalitionValues, index: int, scored: dict[str, float]
    ) -> dict[str, float]:
        """The contributions the mechanism pays on: its own measure (``shapley`` or ``loo``) over
        the same cached coalition values when the scoring method is of another kind."""
        method = payout_method(
            self.mechanism,
            self.scenario.scoring.contribution,
            len(values.updates),
            MAX_EXACT_PLAYERS,
        )
        return scored if method is None else self._contributions(values, index, method)

    def _contributions(
        self, values: RoundCoalitionValues, index: int, method: str | None = None
    ) -> dict[str, float]:
        scoring = self.scenario.scoring
        rng = np.random.default_rng(derive_seed(self.episode_seed, "scoring", index))
        return contributions(
            method or scoring.contribution,
            sorted(values.updates),
            values,
            rng=rng,
            permutations=scoring.tmc_permutations,
            tolerance=scoring.tmc_tolerance,
        )

    def _accept(self, contribution: Mapping[str, float], values: RoundCoalitionValues) -> list[str]:
        """The rejection rule (``scoring.reject_negative``): updates with a negative contribution
        stay out, and nothing is committed if the rest would lower the global's score."""
        if not self.scenario.scoring.reject_negative:
            return list(values.updates)
        accepted = [o for o in values.updates if contribution[o] >= 0]
        if accepted and values(frozenset(accepted)) < values(frozenset()):
            return []
        return accepted


def _rounded(value: float) -> float:
    return round(float(value), DIGITS)
