"""Tidy outputs: one row per (run, episode, round, organization), and loaders into pandas.

:func:`org_rows` flattens a comparison's records (:class:`fedenv.records.RoundOutcome`, one
:class:`~fedenv.records.OrgOutcome` per live organization) into the long format analysts load
into pandas, R or a spreadsheet; :func:`write_tidy` writes it as ``orgs.csv`` and, with the
optional ``analysis`` extra (pandas + pyarrow), ``orgs.parquet``.  Columns, in order:

| column | meaning |
| --- | --- |
| ``scenario`` | the base scenario (for a sweep, the scenario the cell was made from) |
| ``cell`` | the run's scenario name (a sweep's cell: ``default[lora.r=4]``; else the scenario) |
| *swept keys* | one column per ``--sweep`` key (``lora.r``), the cell's value (JSON text) |
| ``mechanism``, ``seed``, ``episode``, ``round`` | the run, its evaluation episode, the 0-based round |
| ``org``, ``action`` | the organization and its action (0 = sat out, k = resource level k) |
| ``participated``, ``accepted`` | it took part; its update went into the global model |
| ``contribution``, ``payout`` | its measured contribution (score points) and what it was paid |
| ``cost_compute``, ``cost_communication``, ``cost_ledger``, ``costs`` | its costs (``costs`` = total) |
| ``model_value``, ``reward`` | the model's value to it, and its reward |
| ``global_score``, ``own_domain_score`` | the global model's score after the round, overall and on the org's domain |
| ``domain_score/<domain>`` | the global model's score on each domain after the round |

An organization that is done (out of budget) has no rows for the rounds after it.
:func:`load` reads an output folder back as pandas DataFrames.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedenv.evaluation.play import Comparison

ORG_COLUMNS = (
    "mechanism", "seed", "episode", "round", "org", "action", "participated", "accepted",
    "contribution", "payout", "cost_compute", "cost_communication", "cost_ledger", "costs",
    "model_value", "reward", "global_score", "own_domain_score",
)


def org_rows(comparison: Comparison, cells: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every (run, episode, round, organization) of ``comparison`` as a flat dict; ``cells``:
    the sweep's ``{cell scenario name: Cell}`` (adds the swept keys)."""
    cells = cells or {}
    keys = list(next(iter(cells.values())).keys) if cells else []
    domains = sorted({d for r in comparison.runs for e in r.episodes for rnd in e.rounds
                      for d in rnd.domain_scores})
    rows = []
    for run in comparison.runs:
        cell = cells.get(run.scenario)
        head: dict[str, Any] = {"scenario": cell.scenario if cell else run.scenario,
                                "cell": run.scenario}
        head.update({k: json.dumps(cell.keys[k]) if cell else "" for k in keys})
        for e, episode in enumerate(run.episodes):
            for rnd in episode.rounds:
                scores = {f"domain_score/{d}": rnd.domain_scores.get(d) for d in domains}
                for org, o in rnd.orgs.items():
                    rows.append({
                        **head, "mechanism": run.mechanism, "seed": run.seed, "episode": e,
                        "round": rnd.round, "org": org, "action": o.level,
                        "participated": o.participated, "accepted": o.accepted,
                        "contribution": o.contribution, "payout": o.payout,
                        "cost_compute": o.costs.compute,
                        "cost_communication": o.costs.communication,
                        "cost_ledger": o.costs.ledger, "costs": o.costs.total,
                        "model_value": o.model_value, "reward": o.reward,
                        "global_score": rnd.global_score,
                        "own_domain_score": rnd.domain_scores[o.domain], **scores,
                    })
    return rows


def has_parquet() -> bool:
    """Whether pandas and pyarrow (the ``analysis`` extra) are installed."""
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_tidy(comparison: Comparison, out: str | Path,
               cells: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """``<out>/orgs.csv``, and ``<out>/orgs.parquet`` when :func:`has_parquet`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = org_rows(comparison, cells)
    columns = list(rows[0]) if rows else ["scenario", "cell", *ORG_COLUMNS]
    paths = {"orgs_csv": out / "orgs.csv"}
    with paths["orgs_csv"].open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    if has_parquet():
        import pandas as pd

        paths["orgs_parquet"] = out / "orgs.parquet"
        pd.DataFrame(rows, columns=columns).to_parquet(paths["orgs_parquet"], index=False)
    return paths


@dataclass
class Results:
    """An evaluate.py output folder as DataFrames (``grid`` is ``None`` without a sweep)."""

    orgs: Any  # one row per (run, episode, round, organization): see the module doc
    runs: Any  # results.csv: one row per run, one column per metric
    summary: Any  # summary.csv: mean and 95% CI per (scenario, mechanism, metric)
    paired: Any  # paired.csv: difference to the reference per (scenario, metric, mechanism)
    grid: Any = None  # grid.csv: a sweep's cells


def load(out_dir: str | Path) -> Results:
    """Read an ``evaluate.py`` output folder into pandas DataFrames (needs pandas; Parquet is
    read when present, which keeps the column types)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "fedenv.evaluation.load needs pandas, the optional 'analysis' extra: "
            "pip install 'fedenv[analysis]'"
        ) from None
    out = Path(out_dir)
    if not (out / "results.json").is_file():
        raise FileNotFoundError(f"{out} is not an evaluate.py output folder (no results.json)")
    parquet = out / "orgs.parquet"
    orgs = (pd.read_parquet(parquet) if parquet.is_file() and has_parquet()
            else pd.read_csv(out / "orgs.csv"))

    def table(name: str) -> Any:
        return pd.read_csv(out / name) if (out / name).is_file() else None

    return Results(orgs, table("results.csv"), table("summary.csv"), table("paired.csv"),
                   table("grid.csv"))
