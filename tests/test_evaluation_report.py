"""Aggregation over seeds, the printed table and verdict, the results files and the plots."""

from __future__ import annotations

import csv
import json
import math

import pytest

from fedenv.evaluation.play import METRICS, Comparison, RunResult, plan_comparison
from fedenv.evaluation.report import (
    Stats,
    SummaryRow,
    plot_summary,
    summarize,
    summarize_comparison,
    summary_table,
    t_quantile_975,
    verdict,
    write_results,
)


def test_t_quantiles_match_the_tables():
    assert t_quantile_975(2) == pytest.approx(4.303)
    assert t_quantile_975(30) == pytest.approx(2.042)
    assert t_quantile_975(40) == pytest.approx(2.0211, abs=1e-4)
    assert t_quantile_975(120) == pytest.approx(1.9799, abs=1e-4)
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_summarize_gives_mean_sample_std_and_a_95_percent_interval_from_three_values():
    stats = summarize([1.0, None, 2.0, 3.0])
    assert (stats.mean, stats.std, stats.n) == (2.0, 1.0, 3)
    assert stats.ci95 == pytest.approx(4.303 / math.sqrt(3))
    two = summarize([1.0, 3.0])
    assert two.ci95 is None and two.std == pytest.approx(math.sqrt(2))
    assert summarize([5.0]) == Stats(5.0, 0.0, 1, None)
    assert summarize([None, None]) is None


def _run(mechanism: str, seed: int, score: float, payout: float) -> RunResult:
    metrics = dict.fromkeys(METRICS, 0.0)
    metrics.update(
        {
            "model/final_score": score,
            "cost/total_payout": payout,
            "efficiency/gain_per_payout": 1.0 / payout if payout else None,
        }
    )
    return RunResult("tiny", mechanism, seed, metrics, [metrics], [], 1.0, None)


@pytest.fixture()
def comparison():
    plan = plan_comparison(["tiny"], ["shapley", "none"], seeds=[0, 1])
    runs = [
        _run("shapley", 0, 2.0, 10.0),
        _run("shapley", 1, 4.0, 20.0),
        _run("none", 0, 3.0, 0.0),
        _run("none", 1, 3.0, 0.0),
    ]
    return Comparison(plan, runs)


def test_rows_table_and_verdict(comparison):
    rows = summarize_comparison(comparison)
    assert [(r.scenario, r.mechanism) for r in rows] == [("tiny", "shapley"), ("tiny", "none")]
    assert rows[0].stats["model/final_score"].mean == 3.0
    assert rows[1].stats["efficiency/gain_per_payout"] is None
    table = summary_table(rows).splitlines()
    assert table[0].startswith("| scenario | mechanism | final score")
    assert "| tiny     | shapley   |  3.00 ± 1.4 |" in table[2]
    assert "n/a" in table[3]
    text = verdict(rows, has_attackers={"tiny": False})
    assert "best model: shapley, none (model/final_score = 3.00)" in text
    assert "most score gain per payout: shapley" in text
    assert "least paid to attackers: n/a (no malicious organizations" in text


def test_write_results_keeps_every_run_and_the_summary(comparison, tmp_path):
    rows = summarize_comparison(comparison)
    paths = write_results(comparison, rows, tmp_path / "out", {"policy": "random"})
    document = json.loads(paths["json"].read_text())
    assert document["config"] == {"policy": "random"}
    assert [(r["mechanism"], r["seed"]) for r in document["runs"]] == [
        ("shapley", 0),
        ("shapley", 1),
        ("none", 0),
        ("none", 1),
    ]
    assert document["runs"][2]["metrics"]["efficiency/gain_per_payout"] is None
    shapley = document["summary"][0]["metrics"]["model/final_score"]
    assert shapley == {"mean": 3.0, "std": pytest.approx(math.sqrt(2)), "n": 2, "ci95": None}
    with paths["csv"].open() as file:
        assert len(list(csv.DictReader(file))) == 4
    with paths["summary_csv"].open() as file:
        summary = list(csv.DictReader(file))
    assert len(summary) == 2 * len(METRICS)
    assert {r["n"] for r in summary if r["metric"] == "efficiency/gain_per_payout"} == {"2", "0"}


def test_plot_summary_draws_one_chart_per_metric(comparison, tmp_path):
    rows = summarize_comparison(comparison)
    rows += [SummaryRow("other", r.mechanism, r.stats) for r in rows]  # two scenarios, grouped
    paths = plot_summary(rows, tmp_path / "plots")
    assert sorted(p.name for p in paths) == sorted(m.replace("/", "_") + ".png" for m in METRICS)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
