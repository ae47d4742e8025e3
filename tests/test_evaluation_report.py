"""Aggregation over seeds, the paired comparisons, the printed tables, the files."""

from __future__ import annotations

import csv
import json

import pytest
from support_results import scores, synthetic

from fedenv.evaluation.play import METRICS
from fedenv.evaluation.plots import plot_summary
from fedenv.evaluation.report import (
    SummaryRow,
    paired_comparisons,
    summarize_comparison,
    summary_table,
    write_results,
)


def test_tables_show_95_percent_intervals_not_standard_deviations():
    comparison = synthetic({"equal": scores(0.0), "shapley": scores(0.5)})
    rows = summarize_comparison(comparison)
    stats = rows[0].stats["model/final_score"]
    assert stats.method == "t" and stats.n == 5
    assert stats.half_width == pytest.approx(2.776 * stats.std / 5**0.5, rel=1e-3)
    table = summary_table(rows).splitlines()
    assert table[0].startswith("| scenario | mechanism | final score")
    assert f"2.20 ± {stats.half_width:.2g}" in table[2]


def test_write_results_keeps_runs_summary_and_paired_comparisons(tmp_path):
    comparison = synthetic({"equal": scores(0.0),
                              "none": [{"efficiency/gain_per_payout": None}] * 5})
    rows = summarize_comparison(comparison)
    comparisons = paired_comparisons(rows, "equal")
    paths = write_results(comparison, rows, tmp_path / "out", {"policy": "random"}, comparisons)
    document = json.loads(paths["json"].read_text())
    assert document["config"] == {"policy": "random"}
    assert [(r["mechanism"], r["seed"]) for r in document["runs"]][:2] == [("equal", 0),
                                                                          ("equal", 1)]
    summary = document["summary"][0]["metrics"]["model/final_score"]
    assert summary["n"] == 5 and summary["method"] == "t" and summary["low"] < summary["high"]
    paired = document["paired"]["tiny"]["model/final_score"][0]
    assert paired["mechanism"] == "none" and paired["reference"] == "equal"
    with paths["summary_csv"].open() as file:
        summary_rows = list(csv.DictReader(file))
    assert len(summary_rows) == 2 * len(METRICS)
    assert {"ci95_low", "ci95_high", "ci_method"} <= set(summary_rows[0])
    with paths["paired_csv"].open() as file:
        paired_rows = list(csv.DictReader(file))
    assert len(paired_rows) == len(METRICS)
    gain = next(r for r in paired_rows if r["metric"] == "efficiency/gain_per_payout")
    assert gain["n"] == "0" and gain["difference"] == ""


def test_plot_summary_draws_one_chart_per_metric(tmp_path):
    rows = summarize_comparison(synthetic({"equal": scores(0.0), "none": scores(1.0)}))
    rows += [SummaryRow("other", r.mechanism, r.stats, r.values) for r in rows]
    paths = plot_summary(rows, tmp_path / "plots")
    assert sorted(p.name for p in paths) == sorted(m.replace("/", "_") + ".png" for m in METRICS)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
