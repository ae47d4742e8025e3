"""Text rendering of a round: one row per organization, as ``env.render()`` returns it."""

from __future__ import annotations

from fedenv.records import RoundOutcome

COLUMNS = ("org", "action", "contribution", "payout", "cost", "reward", "score")


def round_table(outcome: RoundOutcome | None) -> str:
    """The table of one round (an ``env.round_log`` record), or a line saying none was played.

    ``score`` is the global model's score on the organization's own domain after the round."""
    if outcome is None:
        return "fedorg_v0: no round played yet (call reset() and step())\n"
    rows = [COLUMNS]
    for org, row in outcome.orgs.items():
        status = "" if row.accepted or not row.participated else " rejected"
        rows.append(
            (
                org,
                f"{row.level}{status}" if row.participated else "0 (out)",
                f"{row.contribution:+.4f}",
                f"{row.payout:.3f}",
                f"{row.costs.total:.3f}",
                f"{row.reward:+.3f}",
                f"{outcome.domain_score(org):.3f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    title = (
        f"episode {outcome.episode} round {outcome.round + 1}/{outcome.max_rounds}  "
        f"global score {outcome.global_score:.3f}  "
        f"public ledger height {outcome.public_height}"
    )
    lines = [title]
    for i, r in enumerate(rows):
        lines.append(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))
            )
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
