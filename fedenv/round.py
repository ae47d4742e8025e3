"""One federated round, as the env plays it: train, publish, defend, score, pay, aggregate, anchor.

:class:`RoundPlayer` holds the engine (:mod:`fedenv.scenario.engine`), the run folder's ledgers
(:mod:`fedenv.ledgers`) and the scenario's defences (:mod:`fedenv.scoring.defence`), and turns the
round's resource levels into a typed :class:`~fedenv.records.RoundOutcome` (one
:class:`~fedenv.records.OrgOutcome` per organization). The order of :meth:`RoundPlayer.play` is
the design's "one step, as data flows":

1. participants train from the current global adapter (``engine.train_updates``); attackers send
   what their behaviour crafts instead (:mod:`fedenv.scoring.attacks`);
2. each update's canonical bytes are written to the run folder, its hash is signed onto the
   public chain by the organization, the bytes go to its private data collection on its
   updates channel;
3. the defences screen the updates (integrity, free riders, the norm rule, the scenario's
   filters and reputation), and the round's game is played on the candidates
   (:mod:`fedenv.scoring.accounting`): updates whose contribution is below the benchmark's
   margin are rejected (``scoring.reject_negative``, ``scoring.reject_margin``), the rest's game
   is played once more, and the mechanism pays the accepted updates on that set; every decision, with its reasons, goes into the scoring transaction,
   endorsed and committed on the round's scoring channel (:mod:`fedenv.ledgers.layout`);
4. the accepted updates are committed as the new global state under the round's rule; its
   scores on each sub-consortium's domains go to the channels that carry ``benchmark``; its hash
   and the round's summary are anchored on the public chain, and the round's block is sealed;
   the data-poisoning attacks' measures are taken on it (:mod:`fedenv.scoring.attack_measures`);
5. rewards = payout + model value - costs (:mod:`fedenv.scoring.costs`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from fedenv.data import root_dialogues
from fedenv.data.benchmark import BenchmarkResult
from fedenv.engine.federation import ClientUpdate, Participant
from fedenv.engine.lora import canonical_bytes
from fedenv.records import OrgOutcome, RoundOutcome
from fedenv.run_folder import RunFolder
from fedenv.scenario import Scenario
from fedenv.scenario.engine import scenario_engine
from fedenv.scoring.accounting import settle
from fedenv.scoring.attack_measures import AttackMeasures
from fedenv.scoring.attacks import ATTACKS, craft_update, strength_of
from fedenv.scoring.costs import RoundCosts, round_costs
from fedenv.scoring.defence import Decision, RoundDefence
from fedenv.scoring.incentives import get_mechanism
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
        domains = list(dict.fromkeys(o.domain for o in scenario.organizations))
        defence = scenario.defence
        self.defence = RoundDefence(
            defence,
            self.engine,
            level_steps=[level.local_steps for level in scenario.resource_levels],
            root=[
                d
                for domain in domains
                for d in root_dialogues(domain, defence.root_dialogues, scenario.seed)
            ]
            if "fltrust" in defence.filters
            else (),
        )
        self.measures = AttackMeasures(
            self.engine,
            [
                (o.behaviour, o.domain, strength_of(o.behaviour, o.strength))
                for o in scenario.organizations
            ],
            seed=scenario.seed,
            max_len=scenario.training.max_len,
            batch_size=scenario.benchmark.batch_size,
        )
        self.episode = -1
        self.episode_seed = 0
        self._base_result: BenchmarkResult | None = None
        self._base_measures: dict[str, float] = {}
        self._measures: dict[str, float] = {}  # of the current global model
        self.global_result: BenchmarkResult | None = None

    _REBUILT = (
        "scenario", "run", "ledgers", "engine", "mechanism", "orgs", "defence", "measures"
    )
    """What a player builds from its scenario and run folder: not part of :meth:`episode_state`."""

    def episode_state(self) -> dict[str, Any]:
        """Everything a copy of the player needs to continue the episode (picklable): its own
        fields (episode, seeds, benchmark results, ...) and the engine's global state."""
        state = {k: v for k, v in vars(self).items() if k not in self._REBUILT}
        state["engine"] = (self.engine.global_state(), self.engine.round)
        state["defence"] = self.defence.episode_state()
        return state

    def restore_episode_state(self, state: Mapping[str, Any]) -> None:
        """Continue from another player's :meth:`episode_state` (same scenario, copied ledgers)."""
        state = dict(state)
        global_state, round_index = state.pop("engine")
        self.engine.restore_global_state(global_state, round_index)
        self.defence.restore_episode_state(state.pop("defence"))
        vars(self).update(state)

    def start_episode(self, seed: int, index: int) -> None:
        """Back to the base global state; anchor it; seed the episode's randomness."""
        self.engine.reset()
        self.defence.start_episode()
        if self._base_result is None:
            self._base_result = self.engine.evaluate_global()
            self._base_measures = self.measures.measure()
        self.global_result = self._base_result
        self._measures = self._base_measures
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
        round_seed = derive_seed(self.episode_seed, "round", index)
        with watch("train"):
            updates, trained = self._updates(participants, round_seed)
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
        with watch("scoring"):
            steps = {org: p.local_steps for org, p in participants.items()}
            screened = self.defence.screen(by_org, steps, seed=round_seed)
            settlement = settle(
                self.engine,
                screened.candidates,
                {o: screened.base_weight(o) for o in screened.candidates},
                screened.decisions,
                before,
                scoring=sc.scoring,
                mechanism=self.mechanism,
                make_rule=self.defence.rule,
                rng=lambda i: np.random.default_rng(
                    derive_seed(self.episode_seed, "scoring", index, *((i,) if i else ()))
                ),
            )
            decisions = screened.decisions
            reputations = self.defence.conclude(decisions)
        accepted = settlement.accepted
        payouts = self.mechanism.payouts(
            settlement.paid_on,
            {o: by_org[o].num_examples for o in accepted},
            sc.incentives.reward_pool,
        )
        if sc.defence.reputation:
            payouts = {o: p * screened.reputation[o] for o, p in payouts.items()}
        scoring_tx = None
        if updates:
            with watch("ledgers"):
                scoring_tx = ledgers.record_scoring(
                    self.episode,
                    index,
                    {
                        o: _scoring_row(u.digest, levels[o], decisions[o], payouts.get(o, 0.0))
                        | ({"reputation": reputations[o]} if reputations else {})
                        for o, u in by_org.items()
                    },
                    pool=sc.incentives.reward_pool,
                    reputation_decay=sc.defence.reputation_decay if reputations else None,
                )
        with watch("aggregate"):
            if accepted:
                self.engine.commit(
                    [screened.candidates[o] for o in accepted], rule=settlement.rule
                )
                self.global_result = settlement.result
        after = self.global_result
        with watch("measures"):
            if accepted:
                self._measures = self.measures.measure()
        with watch("files"):
            artifact = self.run.save_adapter(
                self.episode, index, "global", self.engine.global_state_bytes()
            )
        summary = {
            "participants": sorted(by_org),
            "accepted": sorted(accepted),
            "contributions": {o: _rounded(d.contribution) for o, d in sorted(decisions.items())},
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
            org: self._org_outcome(
                org,
                k,
                before,
                after,
                decisions.get(org),
                payouts.get(org, 0.0),
                reputations.get(org, screened.reputation.get(org, 1.0)),
                tx_ids[org],
                trains=org in trained,
            )
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
            evaluations=settlement.evaluations,
            orgs=orgs,
            timings=watch.seconds,
            attack_measures=dict(self._measures),
        )

    def _org_outcome(
        self,
        org: str,
        level: int,
        before: BenchmarkResult,
        after: BenchmarkResult,
        decision: Decision | None,
        payout: float,
        reputation: float,
        tx_ids: list[str],
        *,
        trains: bool,
    ) -> OrgOutcome:
        """``org``'s costs, model value and reward (nothing of them when it sat out)."""
        sc, spec = self.scenario, self.orgs[org]
        if not level or decision is None:  # sat out: no update, nothing paid, owed or gained
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
                reputation=reputation,
            )
        costs = round_costs(
            spec.unit_cost,
            sc.level(level).compute,
            sc.costs,
            trains=trains,
            ledger_fees=self.ledgers.round_fees.get(org, 0.0),
        )
        gain = after.domains[spec.domain].score - before.domains[spec.domain].score
        model_value = (
            sc.incentives.model_value_weight * gain
            + sc.incentives.collective_weight * (after.score - before.score)
        )
        return OrgOutcome(
            domain=spec.domain,
            level=level,
            local_steps=sc.level(level).local_steps,
            contribution=decision.contribution,
            payout=float(payout),
            costs=costs,
            model_value=model_value,
            reward=payout + model_value - costs.total,
            accepted=decision.accepted,
            tx_ids=tuple(tx_ids),
            weight=decision.weight,
            reasons=tuple(decision.reasons),
            reputation=reputation,
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
            trains=ATTACKS[spec.behaviour].trains,
            ledger_fees=self.ledgers.fee_bound(org),
        )

    def round_updates(
        self, participants: Mapping[str, Participant], index: int
    ) -> list[ClientUpdate]:
        """Round ``index``'s updates from the current global state, made as the round makes them
        (nothing is recorded; the unlearning oracle reruns rounds with it)."""
        return self._updates(participants, derive_seed(self.episode_seed, "round", index))[0]

    def _updates(
        self, participants: Mapping[str, Participant], round_seed: int
    ) -> tuple[list[ClientUpdate], set[str]]:
        """What every participant sends, and which of them trained (and pays compute): honest
        training for the organizations that train, crafted updates for the others, one training
        per sybil group (see :mod:`fedenv.scoring.attacks`)."""
        if not participants:
            return [], set()
        behaviour = {org: self.orgs[org].behaviour for org in participants}
        trainers: dict[str, Participant] = {}  # whose data trains -> the participant
        source: dict[str, str] = {}  # org -> whose training it sends
        trained_by: set[str] = set()
        for org, p in participants.items():
            if behaviour[org] == "sybil":
                owner = self.scenario.sybil_group(org)[0]
                if owner not in trainers:
                    trainers[owner] = Participant(owner, p.local_steps, p.data_share)
                    trained_by.add(org)
                source[org] = owner
            elif ATTACKS[behaviour[org]].trains:
                trainers[org], source[org] = p, org
                trained_by.add(org)
        trained = (
            {
                u.org: u
                for u in self.engine.train_updates(list(trainers.values()), round_seed=round_seed)
            }
            if trainers
            else {}
        )
        if all(b == "honest" for b in behaviour.values()):
            return list(trained.values()), trained_by
        global_adapter = self.engine.global_adapter
        return [
            craft_update(
                behaviour[org],
                org,
                global_adapter,
                trained.get(source.get(org, "")),
                strength=self.orgs[org].strength,
                num_examples=self.engine.num_examples(p),
                local_steps=p.local_steps,
                seed=derive_seed(round_seed, "behaviour", org),
                learning_rate=self.scenario.training.learning_rate,
                trains_lora_a=self.engine.aggregator.trains_lora_a,
            )
            for org, p in participants.items()
        ], trained_by


def _scoring_row(digest: str, level: int, decision: Decision, payout: float) -> dict:
    """One participant's row of the round's scoring record on the channel."""
    return {
        "digest": digest,
        "level": level,
        "accepted": decision.accepted,
        "contribution": _rounded(decision.contribution),
        "payout": _rounded(payout),
        "weight": _rounded(decision.weight),
        "reasons": list(decision.reasons),
    }


def _rounded(value: float) -> float:
    return round(float(value), DIGITS)
