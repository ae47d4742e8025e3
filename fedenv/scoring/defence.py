"""The round's defence stage: which updates go on to scoring, rescaled how, weighed how much.

:meth:`RoundDefence.screen` takes the round's updates and decides, for each participant, in this
order (every rejection and every down-weighting becomes a reason in its :class:`Decision`, which
the round records on the consortium channel):

1. **integrity**: an update with NaN or infinite values, or not shaped like the global adapter,
   is rejected (``non_finite``, ``invalid``) and never evaluated or aggregated;
2. **near-global**: an update that moves the model by less than ``near_global`` of its level's
   norm budget is a free rider, exact or hidden under noise (``near_global``);
3. **norm rule** (``norm``): every update is rescaled to ``norm_bound`` x its level's budget
   (``normalize``), or only shrunk to it (``clip``), or left as sent (``none``);
   :mod:`fedenv.scoring.screening` explains the budget;
4. **filters**, in the order given: ``krum`` keeps multi-Krum's ``n - f`` (the others are
   rejected), ``fltrust`` multiplies each weight by its trust and rejects trust 0, ``foolsgold``
   multiplies each weight by its FoolsGold weight and rejects weight 0 (:mod:`fedenv.scoring.robust`);
   FLTrust's root update is trained each round on the consortium's root set
   (:func:`fedenv.data.dialogues.root_dialogues`), FoolsGold's histories are kept per episode;
5. **reputation** (``reputation``): each weight is multiplied by the organization's reputation
   (:mod:`fedenv.scoring.reputation`), and so is its payout.

The candidates that remain go to :func:`fedenv.scoring.accounting.settle` with their base weights
(data size x the defences' factors), which scores them on the set that is aggregated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from fedenv.data import Dialogue
from fedenv.engine.aggregators import AggregationRule
from fedenv.engine.federation import ClientUpdate, FederatedEngine
from fedenv.engine.lora import validate_adapter
from fedenv.errors import InvalidUpdateError
from fedenv.scoring.reputation import INITIAL, next_reputation
from fedenv.scoring.robust import fltrust_trust, foolsgold_weights, krum_selection
from fedenv.scoring.screening import (
    change_vector,
    measured_change,
    non_finite,
    norm_rule_scale,
    rescaled,
    trained_keys,
)
from fedenv.scoring.settings import DefenceSettings

DIGITS = 6  # reputations are kept as the channel holds them


@dataclass
class Decision:
    """What the defences and the accounting decided about one participant's update."""

    accepted: bool = True
    reasons: list[str] = field(default_factory=list)  # rejections and down-weightings, in order
    factor: float = 1.0  # the defences' weight factors, multiplied
    norm_scale: float = 1.0  # what the norm rule multiplied its change by
    contribution: float = 0.0  # its last measured contribution (0: never scored)
    weight: float = 0.0  # its share of the aggregate (0: rejected)

    def reject(self, reason: str) -> None:
        self.accepted = False
        self.reasons.append(reason)

    def weigh(self, factor: float, reason: str) -> None:
        self.factor *= factor
        self.reasons.append(reason)


@dataclass
class Screened:
    """The outcome of :meth:`RoundDefence.screen`."""

    decisions: dict[str, Decision]  # every participant
    candidates: dict[str, ClientUpdate]  # the ones still in, as rescaled by the norm rule
    reputation: dict[str, float]  # every participant's reputation before the round

    def base_weight(self, org: str) -> float:
        """Data size x the defences' factors: the weight settlement normalizes."""
        return self.candidates[org].num_examples * self.decisions[org].factor


class RoundDefence:
    """The defences of one env (see the module docstring); ``level_steps`` are the local steps of
    the resource levels, ``root`` the consortium's root set (FLTrust)."""

    def __init__(
        self,
        settings: DefenceSettings,
        engine: FederatedEngine,
        *,
        level_steps: Sequence[int],
        root: Sequence[Dialogue] = (),
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.root_steps = settings.root_steps or max(level_steps)
        self._root_data = (
            engine.tokenize(root, source="defence.root_dialogues")
            if "fltrust" in settings.filters
            else None
        )
        self.histories: dict[str, torch.Tensor] = {}  # FoolsGold: sum of each org's changes
        self.reputations: dict[str, float] = {}

    def start_episode(self) -> None:
        """Forget the last episode's histories and reputations."""
        self.histories.clear()
        self.reputations.clear()

    def episode_state(self) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """What the episode has taught the defences (for a copy of the env)."""
        return {o: h.clone() for o, h in self.histories.items()}, dict(self.reputations)

    def restore_episode_state(self, state: tuple[dict, dict]) -> None:
        """Continue from another env's :meth:`episode_state`."""
        histories, reputations = state
        self.histories = {o: h.clone() for o, h in histories.items()}
        self.reputations = dict(reputations)

    def rule(self, shares: Mapping[str, float] | None) -> AggregationRule:
        """How the accepted updates combine: ``shares`` under the mean, or the statistic."""
        return AggregationRule.for_defence(self.settings.aggregation, self.settings.trim, shares)

    def screen(
        self, updates: Mapping[str, ClientUpdate], steps: Mapping[str, int], *, seed: int
    ) -> Screened:
        """Decide about every update (``steps[org]``: the local steps of its level)."""
        settings, engine = self.settings, self.engine
        start = engine.global_adapter
        keys = trained_keys(start, engine.aggregator.trains_lora_a)
        decisions = {org: Decision() for org in updates}
        candidates: dict[str, ClientUpdate] = {}
        changes: dict[str, torch.Tensor] = {}
        for org in sorted(updates):
            update, decision = updates[org], decisions[org]
            problem = non_finite(update)
            if problem is not None:
                decision.reject(f"non_finite: {problem}")
                continue
            try:
                validate_adapter(update.adapter, start, source=org)
            except InvalidUpdateError as error:
                decision.reject(f"invalid: {error}")
                continue
            change, norm, budget = measured_change(
                update,
                start,
                keys,
                steps=steps[org],
                learning_rate=engine.config.training.learning_rate,
                trains_lora_a=engine.aggregator.trains_lora_a,
            )
            if norm < settings.near_global * budget:
                decision.reject(
                    f"near_global: moved the model by {norm:.4g}, {norm / budget:.3g} of its "
                    f"norm budget {budget:.4g}"
                )
                continue
            scale = norm_rule_scale(settings.norm, settings.norm_bound, norm, budget)
            if scale != 1.0:
                decision.norm_scale = scale
                decision.reasons.append(
                    f"norm: change x{scale:.4g} to {settings.norm_bound:g} x its budget "
                    f"{budget:.4g}"
                )
            candidates[org] = rescaled(update, start, keys, scale)
            changes[org] = change * scale
        for name in settings.filters:
            self._filter(name, changes, decisions, start, keys, seed)
        reputation = {org: self.reputations.get(org, INITIAL) for org in updates}
        if settings.reputation:
            for org in changes:
                if reputation[org] < 1.0:
                    decisions[org].weigh(reputation[org], f"reputation: x{reputation[org]:.4g}")
        return Screened(
            decisions, {o: candidates[o] for o in sorted(changes)}, reputation
        )

    def _filter(
        self,
        name: str,
        changes: dict[str, torch.Tensor],
        decisions: dict[str, Decision],
        start,
        keys: list[str],
        seed: int,
    ) -> None:
        """Apply screen ``name`` to the candidates' ``changes`` (rejected ones are removed)."""
        if not changes:
            return
        if name == "krum":
            kept = krum_selection(changes, self.settings.krum_byzantine)
            for org in sorted(set(changes) - set(kept)):
                decisions[org].reject(
                    f"krum: not among the {len(kept)} of lowest score (multi-Krum, "
                    f"f={self.settings.krum_byzantine})"
                )
                del changes[org]
            return
        if name == "fltrust":
            root = self.engine.train_reference(self._root_data, self.root_steps, seed=seed)
            root_update = ClientUpdate.create("root", root, num_examples=1, local_steps=1)
            factors = fltrust_trust(changes, change_vector(root_update, start, keys))
            label = "trust (cosine to the root update)"
        else:
            for org, change in changes.items():
                self.histories[org] = self.histories.get(org, 0) + change
            history = {org: self.histories[org] for org in changes}
            factors = foolsgold_weights(history, self.settings.foolsgold_confidence)
            label = "FoolsGold weight"
        for org, factor in sorted(factors.items()):
            if factor <= 0.0:
                decisions[org].reject(f"{name}: {label} 0")
                del changes[org]
            elif factor < 1.0:
                decisions[org].weigh(factor, f"{name}: {label} {factor:.4g}")

    def conclude(self, decisions: Mapping[str, Decision]) -> dict[str, float]:
        """Every participant's reputation after the round (kept for the next round); empty when
        the reputation defence is off."""
        if not self.settings.reputation:
            return {}
        for org, decision in decisions.items():
            previous = self.reputations.get(org, INITIAL)
            self.reputations[org] = round(
                next_reputation(previous, decision.accepted, self.settings.reputation_decay),
                DIGITS,
            )
        return {org: self.reputations[org] for org in decisions}
