"""TensorBoard tags of an episode, interval means, and whole-run totals per organization.

Tags (CleanRL / AI-Economist style, slash-namespaced):
per organization ``charts/episodic_return/<org>``, ``charts/participation/<org>``,
``charts/resource/<org>``, ``incentives/contribution/<org>``, ``incentives/payout/<org>``,
``costs/total/<org>``; global ``fl/global_score``, ``fl/domain_score/<domain>``,
``chain/public_height``, ``charts/epsilon``, ``losses/<metric>`` (``losses/td_error``).
The trainer adds ``charts/SPS`` and ``charts/episode``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.rollout import EpisodeRecord


def episode_scalars(record: EpisodeRecord) -> dict[str, float]:
    """Every TensorBoard scalar of one episode, by tag."""
    scalars: dict[str, float] = {}
    for org, rec in record.agents.items():
        scalars[f"charts/episodic_return/{org}"] = rec.episode_return
        scalars[f"charts/participation/{org}"] = rec.participation_rate
        scalars[f"charts/resource/{org}"] = rec.mean_resource
        for tag, value in (("incentives/contribution", rec.contribution),
                           ("incentives/payout", rec.payout), ("costs/total", rec.cost)):
            if value is not None:
                scalars[f"{tag}/{org}"] = value
    if record.global_score is not None:
        scalars["fl/global_score"] = record.global_score
    for domain, score in record.domain_scores.items():
        scalars[f"fl/domain_score/{domain}"] = score
    if record.public_height is not None:
        scalars["chain/public_height"] = record.public_height
    if record.epsilon is not None:
        scalars["charts/epsilon"] = record.epsilon
    for key, value in record.learn_metrics.items():
        scalars[f"losses/{key}"] = value
    return scalars


@dataclass
class ScalarWindow:
    """Scalars of the episodes since the last write; :meth:`means` averages them per tag."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, scalars: Mapping[str, float]) -> None:
        for tag, value in scalars.items():
            self.values.setdefault(tag, []).append(float(value))

    def means(self) -> dict[str, float]:
        return {tag: sum(v) / len(v) for tag, v in self.values.items() if v}

    def clear(self) -> None:
        self.values.clear()

    def state_dict(self) -> dict[str, Any]:
        return {tag: list(v) for tag, v in self.values.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.values = {tag: [float(x) for x in v] for tag, v in state.items()}


@dataclass
class OrgTotals:
    episodes: int = 0
    return_sum: float = 0.0
    rounds: int = 0
    participated: int = 0
    resource_sum: float = 0.0
    payout_sum: float | None = None


@dataclass
class RunTotals:
    """Per-organization totals over every training episode of a run (resumes included)."""

    orgs: dict[str, OrgTotals] = field(default_factory=dict)

    def add(self, record: EpisodeRecord) -> None:
        for org, rec in record.agents.items():
            t = self.orgs.setdefault(org, OrgTotals())
            t.episodes += 1
            t.return_sum += rec.episode_return
            t.rounds += rec.rounds
            t.participated += rec.participated
            t.resource_sum += rec.resource
            if rec.payout is not None:
                t.payout_sum = (t.payout_sum or 0.0) + rec.payout

    def rows(self) -> list[tuple[str, float, float, float, float | None]]:
        """(org, mean return, participation rate, mean resource, total payout) per org."""
        return [(org, t.return_sum / max(t.episodes, 1), t.participated / max(t.rounds, 1),
                 t.resource_sum / max(t.rounds, 1), t.payout_sum) for org, t in self.orgs.items()]

    def state_dict(self) -> dict[str, Any]:
        return {org: vars(t).copy() for org, t in self.orgs.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.orgs = {org: OrgTotals(**values) for org, values in state.items()}


def format_summary(totals: RunTotals, assignment: Mapping[str, str],
                   eval_returns: Mapping[str, float] | None = None) -> str:
    """A plain-text table: one row per organization."""
    header = ["organization", "algorithm", "mean return", "participation", "mean resource",
              "total payout"]
    if eval_returns is not None:
        header.append("greedy eval return")
    rows = [header]
    for org, mean_return, rate, resource, payout in totals.rows():
        row = [org, assignment.get(org, "?"), f"{mean_return:.4f}", f"{rate:.1%}",
               f"{resource:.2f}", "n/a" if payout is None else f"{payout:.4f}"]
        if eval_returns is not None:
            row.append(f"{eval_returns.get(org, float('nan')):.4f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if i > 1 else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
