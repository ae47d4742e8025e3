"""What ``calibrated_replay`` costs against ``retrain`` (the issue's target: <= 30%), in one run.

One episode is trained (every organization at ``--level`` for ``--rounds`` rounds), then the
two methods rebuild the global state without ``--org`` from that same trained state,
interleaved ``--repeats`` times (retrain, calibrated, calibrated, retrain, ...), so both see the
same load on a shared machine. Prints the median seconds of each and their ratio; ``--profile``
also prints where calibrated_replay's time goes (cProfile, cumulative).

    python benchmarks/unlearning_cost.py                        # default scenario, 10 rounds
    python benchmarks/unlearning_cost.py --scenario tiny --rounds 4 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import fedenv  # not benchmarks/chains.py: the folder is off the path
from agents.cli import parse_overrides
from fedenv.unlearning.methods import METHODS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--org", default="skyway")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--override", nargs="*", default=[], help="KEY=VALUE scenario overrides")
    args = parser.parse_args()
    overrides = parse_overrides(tuple(args.override))  # typed, as the study's
    with tempfile.TemporaryDirectory() as folder:
        env = fedenv.parallel_env(
            args.scenario,
            run_dir=Path(folder) / "run",
            **{"max_rounds": args.rounds + 1, **overrides},
        )
        env.reset(seed=args.seed)
        start = time.perf_counter()
        for _ in range(args.rounds):
            env.step({a: args.level for a in env.agents})
        print(f"trained {args.rounds} rounds in {time.perf_counter() - start:.1f} s")
        unlearner = env.unwrapped._unlearner
        record = unlearner.episode_record(args.org, env.unwrapped.round_log)
        engine = record.engine
        trained = engine.global_state()
        policy = unlearner.policy
        seconds: dict[str, list[float]] = {"retrain": [], "calibrated_replay": []}
        cpu: dict[str, list[float]] = {"retrain": [], "calibrated_replay": []}
        rebuilt = {}
        order = ["retrain", "calibrated_replay"]
        for repeat in range(args.repeats):
            for method in order if repeat % 2 == 0 else order[::-1]:
                engine.load_global_state(trained)
                start, start_cpu = time.perf_counter(), time.process_time()
                rebuilt[method] = METHODS[method](record, policy)
                seconds[method].append(time.perf_counter() - start)
                cpu[method].append(time.process_time() - start_cpu)
        if args.profile:
            engine.load_global_state(trained)
            profile = cProfile.Profile()
            profile.runcall(METHODS["calibrated_replay"], record, policy)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
        env.close()
    steps = {m: r.training_steps for m, r in rebuilt.items()}
    plan = rebuilt["calibrated_replay"].details
    medians = {m: statistics.median(s) for m, s in seconds.items()}
    cpu_medians = {m: statistics.median(s) for m, s in cpu.items()}
    print(
        f"first accepted round of {args.org}: {record.first_accepted}; "
        f"calibrated rounds {plan['calibrated_rounds']} at {plan['calibration_steps']} step(s) "
        f"(budget {plan['calibration_budget_steps']} steps: {policy.calibration_budget} of "
        f"{plan['retrain_training_steps']}) {plan.get('calibration_note', '')}"
    )
    for method, values in seconds.items():
        print(
            f"{method}: median {medians[method]:.2f} s wall over {[round(v, 2) for v in values]}, "
            f"{cpu_medians[method]:.2f} s CPU over {[round(v, 2) for v in cpu[method]]}"
        )
    wall = medians["calibrated_replay"] / medians["retrain"]
    process = cpu_medians["calibrated_replay"] / cpu_medians["retrain"]
    print(f"calibrated_replay / retrain: {wall:.3f} wall, {process:.3f} CPU (medians)")
    print(
        f"local training steps: retrain {steps['retrain']}, calibrated_replay "
        f"{steps['calibrated_replay']} ({steps['calibrated_replay'] / max(steps['retrain'], 1):.3f})"
    )


if __name__ == "__main__":
    main()
