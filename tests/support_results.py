"""Synthetic comparisons for the report and verdict tests: five seeds with large seed effects."""

from __future__ import annotations

from fedenv.evaluation.play import METRICS, Comparison, RunResult, plan_comparison

SEEDS = (0, 1, 2, 3, 4)


def run_result(mechanism: str, seed: int, **values: float | None) -> RunResult:
    metrics: dict[str, float | None] = dict.fromkeys(METRICS, 1.0)
    metrics.update(values)
    return RunResult("tiny", mechanism, seed, metrics, [metrics], [], 1.0, None)


def synthetic(per_mechanism: dict[str, list[dict[str, float | None]]]) -> Comparison:
    plan = plan_comparison(["tiny"], list(per_mechanism), seeds=list(SEEDS))
    runs = [run_result(m, seed, **values) for m, seeds in per_mechanism.items()
            for seed, values in zip(SEEDS, seeds)]
    return Comparison(plan, runs)


# Common random numbers: each seed has its own level (a shared "world" effect), on top of which
# the mechanisms differ.  Seed effects are large, so unpaired CIs would overlap everywhere.
WORLD = [1.0, 3.0, 0.5, 2.5, 4.0]


def scores(shift: float, noise: tuple[float, ...] = (0.0,) * 5) -> list[dict[str, float]]:
    return [{"model/final_score": w + shift + e} for w, e in zip(WORLD, noise)]
