"""Env step time: the default scenario, 2 to 16 organizations, each contribution method.

    python benchmarks/env_step.py              # every section (several minutes on 2 CPU cores)
    python benchmarks/env_step.py --quick      # fewer steps per figure
    python benchmarks/env_step.py --sections default episode

Sections:

- ``default``: the default scenario (4 organizations, "tiny" model, leave-one-out) under a
  seeded random policy: median / p90 ``env.step`` wall time, process CPU time, and each stage's
  share (training, scoring, ledgers, files), from ``env.round_log``'s timings.
- ``orgs``: 2, 4, 8, 16 organizations (domains cycled, everyone at level 1, leave-one-out).
- ``methods``: ``loo``, ``shapley``, ``tmc_shapley`` with 4 and 6 organizations (everyone at
  level 1); ``evals`` counts benchmark evaluations per step.
- ``episode``: one random-policy episode of the default scenario, rendered round by round,
  then ``python -m chains verify`` on its run folder.

The machine may be shared: CPU seconds (``cpu``) depend less on the neighbours than wall time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fedenv
from fedenv.data import DOMAINS

STAGES = ("train", "scoring", "ledgers", "files", "aggregate")


def scenario_with_orgs(n: int, **overrides) -> fedenv.Scenario:
    """The default scenario with ``n`` organizations over the domains, budgets out of reach."""
    base = fedenv.load_scenario("default")
    orgs = [
        {
            "name": f"org{i:02d}",
            "domain": DOMAINS[i % len(DOMAINS)],
            "data_size": 64 + 32 * (i % 4),
            "unit_cost": 0.5 + 0.25 * (i % 4),
            "budget": 1e9,
        }
        for i in range(n)
    ]
    contribution = overrides.pop("contribution", "loo")
    return base.with_overrides(organizations=orgs, contribution=contribution, **overrides)


def measure(scenario, *, steps: int, policy: str, seed: int = 0) -> dict:
    """Step ``steps`` times (resetting between episodes); timings from env.round_log."""
    with tempfile.TemporaryDirectory() as run_dir:
        env = fedenv.parallel_env(scenario, run_dir=run_dir)
        rng = np.random.default_rng(seed)
        walls, cpus, stages, evals = [], [], {s: [] for s in STAGES}, []
        env.reset(seed=seed)
        for _ in range(steps):
            if not env.agents:
                env.reset()
            if policy == "random":
                actions = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
            else:
                actions = dict.fromkeys(env.agents, 1)
            wall, cpu = time.perf_counter(), time.process_time()
            env.step(actions)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            record = env.round_log[-1]
            for stage in STAGES:
                stages[stage].append(record.timings.get(stage, 0.0))
            evals.append(record.evaluations)
        env.close()
    total = sum(walls)
    return {
        "median": statistics.median(walls),
        "p90": float(np.percentile(walls, 90)),
        "cpu": statistics.median(cpus),
        "shares": {s: sum(v) / total for s, v in stages.items()},
        "ledger_ms": 1000 * statistics.median(stages["ledgers"]),
        "evals": statistics.mean(evals),
    }


def row(label: str, m: dict) -> str:
    return (
        f"{label:<22} median {m['median']:6.3f} s  p90 {m['p90']:6.3f} s  "
        f"cpu {m['cpu']:6.3f} s  evals {m['evals']:5.1f}  ledgers {m['ledger_ms']:6.1f} ms "
        f"({100 * m['shares']['ledgers']:.1f}%)"
    )


def section_default(steps: int) -> None:
    m = measure(fedenv.load_scenario("default"), steps=steps, policy="random")
    print(f"## default scenario (4 orgs, tiny, loo), random policy, {steps} steps")
    print(row("default", m))
    print(
        "   shares of step time: "
        + ", ".join(f"{s} {100 * v:.1f}%" for s, v in m["shares"].items())
    )


def section_orgs(steps: int) -> None:
    print(f"## organizations (loo, everyone at level 1), {steps} steps each")
    base = None
    for n in (2, 4, 8, 16):
        m = measure(scenario_with_orgs(n), steps=steps, policy="all")
        base = base or m["median"]
        print(row(f"{n:2d} orgs", m) + f"  x{m['median'] / base:.1f}")


def section_methods(steps: int) -> None:
    print(f"## contribution methods (everyone at level 1), {steps} steps each")
    for n in (4, 6):
        for method in ("loo", "shapley", "tmc_shapley"):
            m = measure(scenario_with_orgs(n, contribution=method), steps=steps, policy="all")
            print(row(f"{n} orgs {method}", m))


def section_episode() -> None:
    print("## one random-policy episode of the default scenario (4 rounds)")
    with tempfile.TemporaryDirectory() as run_dir:
        env = fedenv.parallel_env("default", run_dir=run_dir, render_mode="ansi", max_rounds=4)
        env.reset(seed=0)
        rng = np.random.default_rng(1)
        while env.agents:
            env.step({a: int(rng.integers(env.action_space(a).n)) for a in env.agents})
            print(env.render())
        env.close()
        verify = subprocess.run(
            [sys.executable, "-m", "chains", "verify", run_dir],
            capture_output=True,
            text=True,
            check=False,
        )
        print(f"$ python -m chains verify <run folder>   (exit {verify.returncode})")
        print(verify.stdout.replace(run_dir, "<run>"), end="")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps per figure")
    parser.add_argument("--sections", nargs="+", default=["default", "orgs", "methods", "episode"])
    args = parser.parse_args()
    steps = 6 if args.quick else 20
    print(f"fedenv env_step benchmark  (torch threads: {__import__('torch').get_num_threads()})")
    if "default" in args.sections:
        section_default(steps)
    if "orgs" in args.sections:
        section_orgs(max(3, steps // 4))
    if "methods" in args.sections:
        section_methods(max(2, steps // 6))
    if "episode" in args.sections:
        section_episode()


if __name__ == "__main__":
    main()
