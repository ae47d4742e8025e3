"""How well a method forgot: fact accuracy and NLL on the forget and retain sets, the global
score, and a loss-based membership-inference AUC.

- *forget set*: the benchmark's probes of the forgotten organization's domain (its private
  facts: no other organization's data states them, unless another organization shares its
  domain); *retain set*: every other domain's.  Accuracy and NLL are means over the domains of
  each set (:mod:`fedenv.data.benchmark`).
- *membership inference* (Yeom et al., 2018): the per-dialogue assistant-token NLL of the
  organization's first training dialogues (``members``: trained on at every resource level) and
  of as many unseen dialogues of the same domain and world (``non-members``, a stream no
  organization trains on); the AUC is the probability that a member has the lower loss (ties
  count half): 0.5 = nothing to infer.
- *distance to the oracle*: ``|score - oracle score|`` and the mean over domains of
  ``|fact accuracy - oracle's|``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

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
    domain_fact_accuracy: Mapping[str, float]

    def as_dict(self) -> dict:
        return {
            k: (dict(v) if isinstance(v, Mapping) else _rounded(v)) for k, v in asdict(self).items()
        }


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
    }


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
        count: int,
        min_share: float,
        quality: float,
    ) -> MembershipProbe:
        """``org``'s first training dialogues (those every resource level trains on) against
        unseen dialogues of its domain."""
        n = max(1, min(count, math.floor(min_share * len(dialogues))))
        members = list(dialogues[:n])
        domain = members[0].domain
        unseen = generate_org_dialogues(domain, n, seed, org=f"{org}~unseen", quality=quality)
        return cls(engine, members, unseen)

    def auc(self) -> float:
        """The AUC of "lower loss = member" on the engine's current global model."""
        result = self.benchmark.evaluate(self.engine.model)
        members = [result.domains[f"m{i}"].nll for i in range(self.count[0])]
        others = [result.domains[f"n{i}"].nll for i in range(self.count[1])]
        wins = sum((m < o) + 0.5 * (m == o) for m in members for o in others)
        return wins / (len(members) * len(others))


def measure(
    result: BenchmarkResult, forget_domains: Sequence[str], probe: MembershipProbe
) -> ModelMeasures:
    """The measures of the engine's current global model, whose benchmark is ``result``."""
    retain = [d for d in result.domains if d not in forget_domains]
    return ModelMeasures(
        global_score=result.score,
        forget_fact_accuracy=_mean(result, forget_domains, "fact_accuracy"),
        forget_nll=_mean(result, forget_domains, "nll"),
        retain_fact_accuracy=_mean(result, retain, "fact_accuracy"),
        retain_nll=_mean(result, retain, "nll"),
        mia_auc=probe.auc(),
        domain_fact_accuracy={d: _rounded(r.fact_accuracy) for d, r in result.domains.items()},
    )


def _mean(result: BenchmarkResult, domains: Sequence[str], field: str) -> float:
    values = [getattr(result.domains[d], field) for d in domains]
    return sum(values) / len(values) if values else math.nan


def _rounded(value: float) -> float:
    return round(float(value), DIGITS)
