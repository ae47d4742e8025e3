"""Attacks x defences x mechanisms: the results table of docs/incentives.md.

    python -m studies.attacks                          # every bundled attack, every defence
    python -m studies.attacks --attacks free_rider,backdoor --defences none,default \\
        --seeds 0,1,2 --override max_rounds=3 --out runs/study-attacks
    python -m studies.attacks --from-results runs/study-attacks/attacks.json   # the table again

Each attack is a bundled scenario (``scenarios/attacks/<attack>.toml``); each defence a named
set of ``[defence]`` / ``[scoring]`` overrides (:data:`DEFENCES`). Every (attack, defence) pair
is one evaluate.py comparison (:mod:`fedenv.evaluation.play`) of ``--mechanisms`` over the same
seeds with the organizations' ``--policy``; the table shows each metric's mean and the half-width
of its 95% CI over seeds (Student t, as evaluate.py). Raw rows go to ``attacks.json`` in ``--out``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from agents.cli import comma_list, fail, parse, parse_overrides
from evaluate import AgentsPolicy
from fedenv.errors import ConfigError
from fedenv.evaluation.play import compare, plan_comparison
from fedenv.evaluation.report import ATTACK_COLUMNS, interval_cell, summarize_comparison
from fedenv.scenario import SCENARIO_DIR

PROG = "python -m studies.attacks"
OFF = {"defence.norm": "none", "defence.near_global": 0.0, "scoring.reject_negative": False}
DEFENCES: dict[str, dict[str, Any]] = {
    "none": OFF,
    "reject": {**OFF, "scoring.reject_negative": True},
    "default": {},
    "krum": {"defence.filters": ["krum"]},
    "fltrust": {"defence.filters": ["fltrust"]},
    "median": {"defence.aggregation": "median"},
    "reputation": {"defence.reputation": True},
}
"""Named defences: ``none`` (nothing: as before issue 9, without rejection), ``reject`` (only
contribution rejection, on the fixed-share accounting), ``default`` (the scenario's defaults:
normalize, the free-rider screen, rejection), and the default plus one robust defence."""
ATTACKS = tuple(sorted(p.stem for p in (SCENARIO_DIR / "attacks").glob("*.toml")))


@dataclass
class AttackStudyConfig:
    """Bundled attacks x named defences x mechanisms over common seeds."""

    attacks: Annotated[tuple[str, ...], comma_list(str)] = ATTACKS
    """bundled attack scenarios (scenarios/attacks/<name>.toml)"""
    defences: Annotated[tuple[str, ...], comma_list(str)] = tuple(DEFENCES)
    """named defences (none, reject, default, krum, fltrust, median, reputation)"""
    mechanisms: Annotated[tuple[str, ...], comma_list(str)] = ("shapley", "loo")
    """mechanisms compared in every cell"""
    seeds: Annotated[tuple[int, ...], comma_list(int)] = (0, 1, 2)
    """seeds (common to every cell)"""
    policy: str = "always_max"
    """the organizations' policy (agents' registry)"""
    train_episodes: int = 0
    """training episodes of a learning policy on each run's env"""
    override: tuple[str, ...] = ()
    """KEY=VALUE scenario overrides for every cell (e.g. max_rounds=3 model.preset=test)"""
    workers: int = 1
    """runs in parallel processes"""
    out: str = "runs/study-attacks"
    """output folder (attacks.json)"""
    from_results: str = ""
    """print the table of an earlier attacks.json instead of running"""


def run(config: AttackStudyConfig, out: Path) -> list[dict[str, Any]]:
    """Every (attack, defence) comparison; one row per (attack, defence, mechanism), written to
    ``out / "attacks.json"`` after each comparison (a stopped study keeps what it finished)."""
    overrides = parse_overrides(config.override)
    policy = AgentsPolicy(config.policy, config.train_episodes)
    rows = []
    for attack in config.attacks:
        for defence in config.defences:
            plan = plan_comparison(
                [SCENARIO_DIR / "attacks" / f"{attack}.toml"],
                config.mechanisms,
                config.seeds,
                overrides={**DEFENCES[defence], **overrides},
            )
            policy.check(plan.scenarios[0].org_names)
            summary = summarize_comparison(compare(plan, policy, workers=config.workers))
            for row in summary:
                rows.append({
                    "attack": attack,
                    "defence": defence,
                    "mechanism": row.mechanism,
                    "stats": {m: None if row.stats[m] is None else asdict(row.stats[m])
                              for _, m in ATTACK_COLUMNS},
                })
            (out / "attacks.json").write_text(
                json.dumps({"config": asdict(config), "rows": rows}, indent=1)
            )
            print(f"{attack} / {defence}: done", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of the rows (mean ± half-width of the 95% CI)."""
    from fedenv.evaluation.statistics import Interval

    header = ["attack", "defence", "mechanism", *(title for title, _ in ATTACK_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [
            interval_cell(None if row["stats"][m] is None else Interval(**row["stats"][m]))
            for _, m in ATTACK_COLUMNS
        ]
        lines.append("| " + " | ".join([row["attack"], row["defence"], row["mechanism"], *cells])
                     + " |")
    return "\n".join(lines) + "\n"


MAX_ATTACKER_SHARE = 0.05  # issue 9's bar: attackers' share of payouts with the best defence
MAX_HONEST_REJECTED = 0.10  # and honest organizations' false rejections


def best_defences(rows: list[dict[str, Any]]) -> str:
    """Per attack and mechanism, the defence that pays attackers the smallest share among those
    that reject at most 10% of honest updates (the smallest share overall when none does), and
    whether it meets both bars (means over seeds)."""

    def mean(row: dict[str, Any], metric: str) -> float:
        stat = row["stats"][metric]
        return 0.0 if stat is None else float(stat["mean"])

    share, honest = "attack/payout_share_malicious", "attack/honest_false_rejection"
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row["defence"] != "none":
            groups.setdefault((row["attack"], row["mechanism"]), []).append(row)
    lines = [
        "| attack | mechanism | best defence | to attackers | honest rejected | both bars met |",
        "|---|---|---|---|---|---|",
    ]
    for (attack, mechanism), group in groups.items():
        fair = [r for r in group if mean(r, honest) <= MAX_HONEST_REJECTED] or group
        best = min(fair, key=lambda r: (mean(r, share), mean(r, honest)))
        met = mean(best, share) <= MAX_ATTACKER_SHARE and mean(best, honest) <= MAX_HONEST_REJECTED
        lines.append(
            f"| {attack} | {mechanism} | {best['defence']} | {mean(best, share):.3f} | "
            f"{mean(best, honest):.3f} | {'yes' if met else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    config, _ = parse(AttackStudyConfig, argv, prog=PROG)
    if config.from_results:
        rows = json.loads(Path(config.from_results).read_text())["rows"]
        print(table(rows))
        print(best_defences(rows))
        return 0
    unknown = [d for d in config.defences if d not in DEFENCES]
    missing = [a for a in config.attacks if a not in ATTACKS]
    if unknown or missing:
        field, value = ("defences", unknown) if unknown else ("attacks", missing)
        known = DEFENCES if unknown else ATTACKS
        fail(PROG, field, f"unknown {value} (known: {', '.join(known)})")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        rows = run(config, out)
    except ConfigError as error:
        fail(PROG, error.field, error.problem)
    print(table(rows))
    print(best_defences(rows))
    print(f"results: {out / 'attacks.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
