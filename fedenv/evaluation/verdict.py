"""The verdict: each of the analyst's questions answered from paired comparisons, honestly.

A mechanism is named only when its paired difference to the reference is *detected*
(Holm-adjusted p < 0.05, its 95% interval excluding zero; :mod:`fedenv.evaluation.statistics`).
When the reference detectably beats some mechanisms and none beats it, the verdict says so.
Otherwise it says "no detectable difference at n seeds", with the largest observed difference
and the seeds a true difference of that size would need (80% power).  The attack question
compares the attackers' *share* of the payouts among the mechanisms that pay: a mechanism that
pays nobody is listed as such, never as the winner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fedenv.evaluation.report import DEFAULT_REFERENCE, SummaryRow, signed
from fedenv.evaluation.statistics import PairedComparison

# (question, metric, is larger better?)
QUESTIONS = (
    ("best model", "model/final_score", True),
    ("most score gain per payout", "efficiency/gain_per_payout", True),
    ("payouts most in line with contributions", "fairness/contribution_payout_corr", True),
    ("most equal payouts", "fairness/jain_payout", True),
    ("highest welfare", "welfare/total_reward", True),
    ("smallest share paid to attackers", "attack/payout_share_malicious", False),
)


def _difference_text(c: PairedComparison) -> str:
    d = c.difference
    assert d is not None
    return (f"{c.mechanism} {signed(d.mean)} [{signed(d.low, 2)}, {signed(d.high, 2)}] "
            f"vs {c.reference} ({c.test}-test, Holm p = {c.p_holm:.2g})")


def _answer(comparisons: Sequence[PairedComparison], larger_better: bool, reference: str,
            unpaid: Sequence[str] = ()) -> str:
    usable = [c for c in comparisons if c.difference is not None]
    if not usable:
        return "n/a (no seed where it applies to the reference and another mechanism)"
    n = max(c.n for c in usable)
    if n < 2:
        return "n/a (one seed: no interval; run more seeds)"

    def good(c: PairedComparison) -> float:
        return c.difference.mean if larger_better else -c.difference.mean  # type: ignore[union-attr]

    better = sorted((c for c in usable if c.detected and good(c) > 0), key=good, reverse=True)
    worse = [c for c in usable if c.detected and good(c) < 0]
    skipped = f"; pays nothing: {', '.join(unpaid)}" if unpaid else ""
    if better:
        text = f"{better[0].mechanism} ({_difference_text(better[0])})"
        if len(better) > 1:
            text += "; also better than the reference: " + ", ".join(
                c.mechanism for c in better[1:])
        return text + skipped
    if worse:
        return (f"{reference} (the reference): no mechanism beats it, and it beats "
                + ", ".join(f"{c.mechanism} ({_difference_text(c)})" for c in worse)
                + (f"; no detectable difference to the others at {n} seeds"
                   if len(worse) < len(usable) else "") + skipped)
    largest = max(usable, key=lambda c: abs(c.difference.mean))  # type: ignore[union-attr]
    need = largest.seeds_needed
    needs = ("no difference at all was observed" if need is None and largest.difference.mean == 0
             else f"a true difference of that size would need about {need:,} seeds for 80% power"
             if need is not None else "more than 100,000 seeds would be needed")
    return (f"no detectable difference at {n} seeds (largest: {_difference_text(largest)}; "
            f"{needs}){skipped}")


def verdict(
    rows: Sequence[SummaryRow],
    comparisons: Mapping[str, Mapping[str, Sequence[PairedComparison]]],
    *,
    has_attackers: Mapping[str, bool],
    reference: str = DEFAULT_REFERENCE,
) -> str:
    """Per scenario, each question's answer from the paired comparisons to ``reference``."""
    lines = []
    for scenario, by_metric in comparisons.items():
        lines.append(f"{scenario} (paired differences to {reference!r}, 95% CIs):")
        mine = {r.mechanism: r for r in rows if r.scenario == scenario}
        for question, metric, larger in QUESTIONS:
            if metric.startswith("attack/"):
                if not has_attackers.get(scenario, False):
                    lines.append(f"  {question}: n/a (no malicious organizations in the scenario)")
                    continue
                if mine[reference].stats[metric] is None:
                    lines.append(f"  {question}: n/a (the reference {reference!r} pays nothing; "
                                 f"compare attackers' shares with a --reference that pays)")
                    continue
                unpaid = [m for m, r in mine.items() if r.stats[metric] is None]
                answer = _answer(by_metric[metric], larger, reference, unpaid)
            else:
                answer = _answer(by_metric[metric], larger, reference)
            lines.append(f"  {question}: {answer}")
    return "\n".join(lines) + "\n"
