"""How well a method forgot: fact accuracy and NLL on the forget and retain sets, the global
score, and a loss-based membership-inference AUC.

- *forget set*: the benchmark's probes of the forgotten organization's domain (its private
  facts: no other organization's data states them, unless another organization shares its
  domain); *retain set*: every other domain's.  Accuracy and NLL are means over the domains of
  each set (:mod:`fedenv.data.benchmark`).
- *membership inference* (Yeom et al., 2018): the per-dialogue assistant-token NLL of every
  dialogue the organization trained on in the episode (``members``: the first
  ``ceil(data_share * n)`` of its data at the largest share of the levels it played) and of
  ``mia_non_member_ratio`` times as many unseen dialogues of the same domain and world
  (``non-members``, a stream no organization trains on); the AUC is the probability that a
  member has the lower loss (ties count half): 0.5 = nothing to infer.  Its standard error is
  DeLong's (DeLong, DeLong & Clarke-Pearson, 1988: the variance of the members' and the
  non-members' placement values), reported with the sample sizes.
- *distance to the oracle*: ``|score - oracle score|``, the mean over domains of
  ``|fact accuracy - oracle's|``, the forget set's, and the MIA AUC's, absolute and signed
  (method - oracle), with the signed gap's paired DeLong standard error (both models scored on
  the same dialogues, so what they share cancels).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import torch

from fedenv.data import Dialogue, generate_org_dialogues
from fedenv.data.benchmark import Benchmark, BenchmarkResult
from fedenv.engine.federation import FederatedEngine

DIGITS = 6


@dataclass(frozen=True)
class ModelMeasures:
    """One global model, measured."""

    global_score: float
    forget_fact_accuracy: float
    forget_nll: float
    retain_fact_accuracy: float
    retain_nll: float
    mia_auc: float
    mia_auc_se: float
    mia_members: int
    mia_non_members: int
    domain_fact_accuracy: Mapping[str, float]
    mia: MembershipScore | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "mia":
                continue
            if isinstance(value, Mapping):
                out[f.name] = dict(value)
            else:
                out[f.name] = value if isinstance(value, int) else _rounded(value)
        return out


def oracle_gaps(measures: ModelMeasures, oracle: ModelMeasures) -> dict[str, float]:
    """The distance of ``measures`` to the oracle's."""
    gaps = [
        abs(measures.domain_fact_accuracy[d] - oracle.domain_fact_accuracy[d])
        for d in oracle.domain_fact_accuracy
    ]
    return {
        "oracle_score_gap": _rounded(abs(measures.global_score - oracle.global_score)),
        "oracle_fact_accuracy_gap": _rounded(sum(gaps) / len(gaps)),
        "oracle_forget_accuracy_gap": _rounded(
            abs(measures.forget_fact_accuracy - oracle.forget_fact_accuracy)
        ),
        "oracle_mia_auc_gap": _rounded(abs(measures.mia_auc - oracle.mia_auc)),
        "oracle_mia_auc_signed_gap": _rounded(measures.mia_auc - oracle.mia_auc),
        "oracle_mia_auc_gap_se": _rounded(
            measures.mia.difference_se(oracle.mia)
            if measures.mia is not None and oracle.mia is not None
            else math.nan
        ),
    }


@dataclass(frozen=True)
class MembershipScore:
    """The members' and non-members' per-dialogue NLL under one model, and what follows."""

    members: tuple[float, ...]
    non_members: tuple[float, ...]

    def _placements(self) -> tuple[torch.Tensor, torch.Tensor]:
        """DeLong's placement values: per member, the share of non-members with a higher loss
        (ties half); per non-member, the share of members with a lower one."""
        m = torch.tensor(self.members, dtype=torch.float64)[:, None]
        n = torch.tensor(self.non_members, dtype=torch.float64)[None, :]
        wins = (m < n).double() + 0.5 * (m == n).double()
        return wins.mean(dim=1), wins.mean(dim=0)

    @property
    def auc(self) -> float:
        return float(self._placements()[0].mean())

    @property
    def se(self) -> float:
        """DeLong's standard error of :attr:`auc` (nan with fewer than 2 of either)."""
        return self.difference_se(None)

    def difference_se(self, other: MembershipScore | None) -> float:
        """DeLong's standard error of ``self.auc - other.auc`` for two models scored on the same
        dialogues (paired: their covariance is taken off); ``other`` None: of ``self.auc``."""
        if len(self.members) < 2 or len(self.non_members) < 2:
            return math.nan
        v10, v01 = self._placements()
        if other is not None:
            if (len(other.members), len(other.non_members)) != (len(v10), len(v01)):
                raise ValueError("paired AUCs need the same members and non-members")
            o10, o01 = other._placements()
            v10, v01 = v10 - o10, v01 - o01
        variance = v10.var() / len(v10) + v01.var() / len(v01)
        return float(variance.clamp(min=0.0).sqrt())


class MembershipProbe:
    """Per-dialogue NLL of members and non-members, scored on the live global model."""

    def __init__(
        self, engine: FederatedEngine, members: Sequence[Dialogue], non_members: Sequence[Dialogue]
    ) -> None:
        self.engine = engine
        self.count = (len(members), len(non_members))
        dialogues = {f"m{i}": [d] for i, d in enumerate(members)}
        dialogues.update({f"n{i}": [d] for i, d in enumerate(non_members)})
        self.benchmark = Benchmark(
            engine.tokenizer,
            dialogues,
            max_len=engine.config.training.max_len,
            device=engine.device,
        )

    @classmethod
    def for_org(
        cls,
        engine: FederatedEngine,
        dialogues: Sequence[Dialogue],
        org: str,
        *,
        seed: int,
        members: int,
        non_member_ratio: int,
        quality: float,
    ) -> MembershipProbe:
        """``org``'s first ``members`` training dialogues (those it trained on) against
        ``non_member_ratio`` times as many unseen dialogues of its domain."""
        n = max(1, min(members, len(dialogues)))
        trained = list(dialogues[:n])
        domain = trained[0].domain
        unseen = generate_org_dialogues(
            domain, non_member_ratio * n, seed, org=f"{org}~unseen", quality=quality
        )
        return cls(engine, trained, unseen)

    def score(self) -> MembershipScore:
        """The per-dialogue NLL of members and non-members on the engine's current global model."""
        result = self.benchmark.evaluate(self.engine.model)
        return MembershipScore(
            tuple(result.domains[f"m{i}"].nll for i in range(self.count[0])),
            tuple(result.domains[f"n{i}"].nll for i in range(self.count[1])),
        )


def measure(
    result: BenchmarkResult, forget_domains: Sequence[str], probe: MembershipProbe
) -> ModelMeasures:
    """The measures of the engine's current global model, whose benchmark is ``result``."""
    retain = [d for d in result.domains if d not in forget_domains]
    mia = probe.score()
    return ModelMeasures(
        global_score=result.score,
        forget_fact_accuracy=_mean(result, forget_domains, "fact_accuracy"),
        forget_nll=_mean(result, forget_domains, "nll"),
        retain_fact_accuracy=_mean(result, retain, "fact_accuracy"),
        retain_nll=_mean(result, retain, "nll"),
        mia_auc=mia.auc,
        mia_auc_se=mia.se,
        mia_members=len(mia.members),
        mia_non_members=len(mia.non_members),
        domain_fact_accuracy={d: _rounded(r.fact_accuracy) for d, r in result.domains.items()},
        mia=mia,
    )


def _mean(result: BenchmarkResult, domains: Sequence[str], field: str) -> float:
    values = [getattr(result.domains[d], field) for d in domains]
    return sum(values) / len(values) if values else math.nan


def _rounded(value: float) -> float:
    return round(float(value), DIGITS)
