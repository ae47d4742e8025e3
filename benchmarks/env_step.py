"""Env step time: the default scenario, 2 to 16 organizations, contribution methods, processes.

    python benchmarks/env_step.py                      # every section (minutes on 2 CPU cores)
    python benchmarks/env_step.py --quick              # fewer steps per figure
    python benchmarks/env_step.py --sections default scale --baseline main --compile

Every figure is measured in worker processes (``--worker`` mode of this file) that each hold one
env and step it on command, so two code versions can be compared on the same machine at the same
time: with ``--baseline REF`` the git revision ``REF`` is exported to a temporary folder and a
second worker runs it; the two are stepped alternately, one step each, with the same seed and the
same actions, so a busy neighbour slows both alike and their ratio holds. ``--compile`` adds this
tree with ``training.compile = true`` (its compilation happens in the untimed warm-up steps).

Sections:

- ``default``: the default scenario (4 organizations, "tiny" model, leave-one-out) under a
  seeded random policy: median / p90 ``env.step`` wall time, and each stage's share
  (training, scoring, ledgers, files) from ``env.round_log``'s timings.
- ``scale``: 16 organizations, everyone at level 1 (the ledgers' share at scale).
- ``orgs``: 2, 4, 8, 16 organizations (domains cycled, everyone at level 1, leave-one-out).
- ``methods``: ``loo``, ``shapley``, ``tmc_shapley`` with 4 and 6 organizations.
- ``processes``: env steps per second of one env process on 1 thread and on its share of the
  CPUs, and of two env processes side by side on theirs (``FEDENV_PROCESSES=2``: one thread each
  on 2 cores), on the ``tiny`` and ``default`` scenarios.
- ``episode``: one random-policy episode of the default scenario, rendered, then
  ``python -m chains verify`` on its run folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
TREE_VARIABLE = "FEDENV_BENCH_TREE"  # the source tree a worker imports fedenv from
STAGES = ("train", "scoring", "ledgers", "files", "aggregate")


# ----------------------------------------------------------------------------- the worker side


def scenario_with_orgs(n: int, **overrides):
    """The default scenario with ``n`` organizations over the domains, budgets out of reach."""
    import fedenv
    from fedenv.data import DOMAINS

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
    return fedenv.load_scenario("default").with_overrides(
        organizations=orgs, contribution=contribution, **overrides
    )


def _timings(record) -> dict:
    timings = record["timings"] if isinstance(record, dict) else record.timings
    return {stage: float(timings.get(stage, 0.0)) for stage in STAGES}


def _evaluations(record) -> int:
    return int(record["evaluations"] if isinstance(record, dict) else record.evaluations)


def worker() -> None:
    """Answer JSON commands on stdin, one line each: ``env``, ``step``, ``steps``, ``close``."""
    sys.path.insert(0, os.environ.get(TREE_VARIABLE, str(REPO)))
    import numpy as np

    import fedenv

    env, rng, policy, run_dir = None, None, "random", None
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "env":
            run_dir = tempfile.TemporaryDirectory()
            spec, overrides = command["scenario"], command.get("overrides", {})
            if isinstance(spec, int):
                scenario = scenario_with_orgs(spec, **overrides)
            else:
                scenario = fedenv.load_scenario(spec, **overrides)
            env = fedenv.parallel_env(scenario, run_dir=run_dir.name)
            policy, rng = command["policy"], np.random.default_rng(command["seed"])
            env.reset(seed=command["seed"])
            reply = {"file": fedenv.__file__}
        elif command["cmd"] in ("step", "steps"):
            records = []
            start = time.perf_counter()
            for _ in range(command.get("n", 1)):
                if not env.agents:
                    env.reset()
                if policy == "random":
                    actions = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
                else:
                    actions = dict.fromkeys(env.agents, 1)
                wall, cpu = time.perf_counter(), time.process_time()
                env.step(actions)
                record = env.round_log[-1]
                records.append(
                    {
                        "wall": time.perf_counter() - wall,
                        "cpu": time.process_time() - cpu,
                        "timings": _timings(record),
                        "evaluations": _evaluations(record),
                    }
                )
            reply = {"records": records, "elapsed": time.perf_counter() - start}
        else:
            env.close()
            run_dir.cleanup()
            return
        print(json.dumps(reply), flush=True)


# ----------------------------------------------------------------------------- the driver side


class Worker:
    """One env in a worker process, importing fedenv from ``tree``."""

    def __init__(self, tree: Path, *, processes: int = 1) -> None:
        env = {**os.environ, TREE_VARIABLE: str(tree), "FEDENV_PROCESSES": str(processes)}
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")])
        self.process = subprocess.Popen(
            [sys.executable, str(HERE), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def send(self, **command) -> None:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited with {self.process.wait()}")
        return json.loads(line)

    def ask(self, **command) -> dict:
        self.send(**command)
        return self.receive()

    def close(self) -> None:
        self.send(cmd="close")
        self.process.wait(timeout=60)


def summary(records: list[dict]) -> dict:
    walls = [r["wall"] for r in records]
    total = sum(walls)
    ordered = sorted(walls)
    return {
        "median": statistics.median(walls),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "cpu": statistics.median(r["cpu"] for r in records),
        "shares": {s: sum(r["timings"][s] for r in records) / total for s in STAGES},
        "ledger_ms": 1000 * statistics.median(r["timings"]["ledgers"] for r in records),
        "evals": statistics.mean(r["evaluations"] for r in records),
    }


def row(label: str, m: dict) -> str:
    return (
        f"{label:<22} median {m['median']:6.3f} s  p90 {m['p90']:6.3f} s  "
        f"cpu {m['cpu']:6.3f} s  evals {m['evals']:5.1f}  ledgers {m['ledger_ms']:6.1f} ms "
        f"({100 * m['shares']['ledgers']:.1f}%)"
    )


def shares(m: dict) -> str:
    return ", ".join(f"{s} {100 * v:.1f}%" for s, v in m["shares"].items())


Variant = tuple[Path, dict]  # (source tree, scenario overrides)


def compare(variants: dict[str, Variant], scenario, policy: str, steps: int, warmup: int = 2):
    """Step one env per variant alternately (same seed, same actions); a summary per variant.
    The warm-up steps (not timed) include any compilation."""
    workers = {name: Worker(tree) for name, (tree, _) in variants.items()}
    try:
        for name, w in workers.items():
            overrides = variants[name][1]
            w.ask(cmd="env", scenario=scenario, policy=policy, seed=0, overrides=overrides)
            w.ask(cmd="steps", n=warmup)
        records = {name: [] for name in workers}
        for _ in range(steps):
            for name, w in workers.items():
                records[name].extend(w.ask(cmd="step")["records"])
    finally:
        for w in workers.values():
            w.close()
    return {name: summary(r) for name, r in records.items()}


def print_comparison(title: str, results: dict[str, dict]) -> None:
    print(title)
    for name, m in results.items():
        print(row(name, m))
        print(f"   shares of step time: {shares(m)}")
    first = next(iter(results))
    for name, m in list(results.items())[1:]:
        print(
            f"   {name} / {first}: median x{m['median'] / results[first]['median']:.2f}, "
            f"cpu x{m['cpu'] / results[first]['cpu']:.2f}"
        )


def steps_per_second(tree: Path, scenario: str, processes: int, threads: int, steps: int) -> float:
    """Env steps per second of ``processes`` env processes side by side (``FEDENV_PROCESSES``
    tells each how many there are; ``threads`` 0 lets each take its share of the CPUs)."""
    workers = [Worker(tree, processes=processes) for _ in range(processes)]
    try:
        for w in workers:
            overrides = {"training.cpu_threads": threads}
            w.ask(cmd="env", scenario=scenario, policy="random", seed=0, overrides=overrides)
            w.ask(cmd="steps", n=2)
        start = time.perf_counter()
        for w in workers:
            w.send(cmd="steps", n=steps)
        for w in workers:
            w.receive()
        return processes * steps / (time.perf_counter() - start)
    finally:
        for w in workers:
            w.close()


def section_processes(trees: dict[str, Path], steps: int) -> None:
    cpus = len(os.sched_getaffinity(0))
    print(
        f"## env processes side by side on {cpus} CPUs, {steps} steps per process "
        f"({5 * steps} on tiny), steps/s"
    )
    tree = trees["this tree"]
    for scenario, n in (("tiny", 5 * steps), ("default", steps)):  # tiny: ~1 s runs are noise
        one_thread = steps_per_second(tree, scenario, 1, 1, n)
        alone = steps_per_second(tree, scenario, 1, 0, n)
        pair = steps_per_second(tree, scenario, 2, 0, n)
        print(
            f"{scenario:<8} 1 process, 1 thread {one_thread:5.2f}   1 process, its share "
            f"({cpus} threads) {alone:5.2f}   2 processes, their share ({max(1, cpus // 2)} "
            f"each) {pair:5.2f} (x{pair / alone:.2f} of one, x{pair / one_thread:.2f} of one "
            "on 1 thread)"
        )


def section_episode() -> None:
    sys.path.insert(0, str(REPO))
    import numpy as np

    import fedenv

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
            cwd=REPO,
        )
        print(f"$ python -m chains verify <run folder>   (exit {verify.returncode})")
        print(verify.stdout.replace(run_dir, "<run>"), end="")


def export_tree(ref: str, into: str) -> Path:
    """``git archive ref`` of this repository, unpacked into ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return Path(into)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps per figure")
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["default", "scale", "orgs", "methods", "processes", "episode"],
    )
    parser.add_argument("--baseline", help="git revision to compare with, step by step")
    parser.add_argument(
        "--compile", action="store_true", help="also step this tree with training.compile on"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    steps = 6 if args.quick else 20
    with tempfile.TemporaryDirectory() as baseline_dir:
        trees = {"this tree": REPO}
        variants: dict[str, Variant] = {"this tree": (REPO, {})}
        if args.compile:
            variants["compiled"] = (REPO, {"training.compile": True})
        if args.baseline:
            trees["baseline"] = export_tree(args.baseline, baseline_dir)
            variants["baseline"] = (trees["baseline"], {})
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"fedenv env_step benchmark: {len(os.sched_getaffinity(0))} CPUs, load average "
            f"{load:.2f} at the start; baseline: {args.baseline or 'none'}"
        )
        if "default" in args.sections:
            results = compare(variants, "default", "random", steps)
            print_comparison(f"## default scenario, random policy, {steps} steps each", results)
        if "scale" in args.sections:
            results = compare(variants, 16, "all", max(3, steps // 3))
            print_comparison("## 16 organizations (loo, everyone at level 1)", results)
        if "orgs" in args.sections:
            print(f"## organizations (loo, everyone at level 1), {max(3, steps // 4)} steps each")
            first = None
            for n in (2, 4, 8, 16):
                m = compare({"this tree": (REPO, {})}, n, "all", max(3, steps // 4))["this tree"]
                first = first or m["median"]
                print(row(f"{n:2d} orgs", m) + f"  x{m['median'] / first:.1f}")
        if "methods" in args.sections:
            print(f"## contribution methods (everyone at level 1), {max(2, steps // 6)} steps each")
            for n in (4, 6):
                for method in ("loo", "shapley", "tmc_shapley"):
                    scenario = {"orgs": n, "contribution": method}
                    m = compare_method(scenario, max(2, steps // 6))
                    print(row(f"{n} orgs {method}", m))
        if "processes" in args.sections:
            section_processes(trees, steps)
        if "episode" in args.sections:
            section_episode()


def compare_method(spec: dict, steps: int) -> dict:
    worker_ = Worker(REPO)
    try:
        worker_.ask(
            cmd="env",
            scenario=spec["orgs"],
            policy="all",
            seed=0,
            overrides={"contribution": spec["contribution"]},
        )
        worker_.ask(cmd="steps", n=1)
        return summary(worker_.ask(cmd="steps", n=steps)["records"])
    finally:
        worker_.close()


if __name__ == "__main__":
    main()
