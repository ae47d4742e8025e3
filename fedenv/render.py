"""Text rendering of a round: one row per organization, as ``env.render()`` returns it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COLUMNS = ("org", "action", "contribution", "payout", "cost", "reward", "score")


def round_table(record: Mapping[str, Any] | None) -> str:
    """The table of one ``env.round_log`` record (or a line saying no round was played)."""
    if record is None:
        return "fedorg_v0: no round played yet (call reset() and step())\n"
    rows = [COLUMNS]
    for org, row in record["orgs"].items():
        action = row["resource"]
        status = "" if not row["participated"] else ("" if row["accepted"] else " rejected")
        rows.append(
            (
                org,
                f"{action}{status}" if action else "0 (out)",
                f"{row['contribution']:+.4f}",
                f"{row['payout']:.3f}",
                f"{row['cost_total']:.3f}",
                f"{row['reward']:+.3f}",
                f"{row['domain_score']:.3f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    title = (
        f"episode {record['episode']} round {record['round'] + 1}/{record['max_rounds']}  "
        f"global score {record['global_score']:.3f}  "
        f"public ledger height {record['public_height']}"
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
