"""Is a learnt greedy profile an equilibrium, and what does each organization's choice cost the others?

    python benchmarks/profile_deviations.py --seed 3 --algo q_learning_stateless --gamma 0
    python benchmarks/profile_deviations.py --seed 3 --state round_fraction=3 --gamma 0 --orgs citycare

Trains the learners of one seed exactly as ``python -m studies.learning --workers 2`` does (same
env, team, training episode seeds and one torch thread: the greedy returns reproduce the study's
``seed-N.json`` to the digit), then plays the same greedy evaluation episodes with one
organization at a time replaced by a fixed level (0 = sits out, the others held at their learnt
greedy policies). Per organization and level it prints that organization's own return and the
mean over organizations (the study's "greedy return"):

- an own return above the learnt profile's says the organization's learnt choice is not a best
  response among fixed levels (a learning miss);
- a mean that moves the other way says what an organization's own interest does to the
  collective measure.

``--summarize LOG [LOG ...]`` reads such printouts (one per learner and seed) and prints each
organization's gap to its best fixed level (best fixed level's return minus the learnt one;
negative where a state-dependent policy beats every fixed level), and, for two learners run on
the same seeds, the paired difference of their summed gaps with its 95% CI
(``fedenv.evaluation.statistics``): which learner comes closer to a best response, whatever
profile the learners settle into.

    python benchmarks/profile_deviations.py --summarize benchmarks/logs/profile_deviations_*.txt

docs/agents.md uses it to say why the mean greedy return of independent learners on the default
scenario rewards some learning misses (an organization that gives up a profitable share of the
pool raises the mean).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Run as a script, benchmarks/ is first on sys.path and benchmarks/chains.py would shadow the
# chains package: the repository root goes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.base import Policy
from agents.q_learning import QLearningConfig
from agents.rollout import episode_seed, eval_seeds, run_episode
from agents.team import Team


class FixedLevel(Policy):
    """Always plays one action (0 sits out)."""

    def __init__(self, observation_space, action_space, *, seed: int, level: int) -> None:
        super().__init__(observation_space, action_space, seed=seed)
        self.level = level

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        return self.level


def deviations(scenario: str, seed: int, algorithm: str, q_learning: QLearningConfig, *,
               episodes: int, eval_episodes: int, orgs: list[str] | None = None,
               ) -> tuple[dict[str, float], list[tuple[str, int, dict[str, float]]]]:
    """(the learnt greedy profile's returns per organization, and for each deviating organization
    and level the returns with that organization held at that level)."""
    import torch

    import fedenv
    from studies.learning import _greedy_returns, _team

    torch.set_num_threads(1)  # as each of the study's two workers
    env = fedenv.parallel_env(scenario, store_adapters=False, **{"training.cpu_threads": 1})
    try:
        names = list(env.possible_agents)
        for org in orgs or ():  # refused before the training, not after it
            if org not in names:
                raise ValueError(f"--orgs: unknown organization {org!r} (the scenario has {names})")
        team = _team(env, algorithm, seed, q_learning)
        for episode in range(episodes):
            run_episode(env, team, seed=episode_seed(seed, episode))
            team.end_episode()
        seeds = eval_seeds(seed, eval_episodes)
        # Greedy play breaks ties with each policy's own generator: every evaluation starts from
        # the trained team's state, so each row's others play exactly as in the learnt profile.
        learnt = _greedy_returns(env, copy.deepcopy(team), seeds)
        rows = []
        for org in orgs or names:
            for level in range(env.action_space(org).n):
                policies = copy.deepcopy(team.policies)
                policies[org] = FixedLevel(env.observation_space(org), env.action_space(org),
                                           seed=seed, level=level)
                rows.append((org, level,
                             _greedy_returns(env, Team(policies, team.assignment), seeds)))
        return learnt, rows
    finally:
        env.close()


def printout(header: str, learnt: dict[str, float],
             rows: Sequence[tuple[str, int, dict[str, float]]]) -> str:
    """What :func:`main` prints (and :func:`read_log` reads): the header, the learnt profile and
    a line per deviator and level."""
    lines = [header, "learnt profile: " + ", ".join(f"{o} {v:+.2f}" for o, v in learnt.items())
             + f"; mean {np.mean(list(learnt.values())):+.2f}",
             f"{'deviator':<12}{'level':>6}{'own return':>12}{'mean':>9}   others"]
    for org, level, got in rows:
        others = ", ".join(f"{o} {v:+.2f}" for o, v in got.items() if o != org)
        lines.append(f"{org:<12}{level:>6}{got[org]:>+12.2f}"
                     f"{np.mean(list(got.values())):>+9.2f}   {others}")
    return "\n".join(lines)


HEADER = re.compile(r"^\S+, seed (?P<seed>\d+), (?P<algo>\S+) \(gamma [^,]+, state (?P<state>[^)]*\)?)\)")
ROW = re.compile(r"^(?P<org>\S+)\s+(?P<level>\d+)\s+(?P<own>[-+]\d+\.\d+)\s+[-+]\d+\.\d+")


def read_log(text: str) -> tuple[str, int, dict[str, float], dict[str, dict[int, float]]]:
    """(learner, seed, learnt returns per organization, own return per deviator and level) of one
    printout of :func:`main`."""
    lines = text.splitlines()
    header = HEADER.match(lines[0]) if lines else None
    if header is None or len(lines) < 2 or not lines[1].startswith("learnt profile: "):
        raise ValueError("not a profile_deviations printout (no header and learnt profile)")
    algo, state = header["algo"], header["state"]
    learner = algo if algo != "q_learning" else f"q_learning ({state})"
    learnt = {}
    for part in lines[1].removeprefix("learnt profile: ").split(";")[0].split(", "):
        org, value = part.rsplit(" ", 1)
        learnt[org] = float(value)
    own: dict[str, dict[int, float]] = {}
    for line in lines[3:]:
        row = ROW.match(line)
        if row:
            own.setdefault(row["org"], {})[int(row["level"])] = float(row["own"])
    return learner, int(header["seed"]), learnt, own


def summarize(paths: Sequence[Path]) -> str:
    """Each learner's per-seed gaps to the best fixed level, and two learners' paired difference."""
    from fedenv.evaluation.statistics import mean_interval, paired_test

    gaps: dict[str, dict[int, dict[str, float]]] = {}
    for path in paths:
        try:
            learner, seed, learnt, own = read_log(Path(path).read_text())
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        gaps.setdefault(learner, {})[seed] = {
            org: max(levels.values()) - learnt[org] for org, levels in own.items()}
    out = ["learner, seed: gap to the best fixed level per organization (sum)"]
    for learner, seeds in sorted(gaps.items()):
        for seed, by_org in sorted(seeds.items()):
            each = ", ".join(f"{org} {gap:+.2f}" for org, gap in by_org.items())
            out.append(f"{learner}, seed {seed}: {each} ({sum(by_org.values()):+.2f})")
    if len(gaps) == 2:
        (a, seeds_a), (b, seeds_b) = sorted(gaps.items())
        common = sorted(set(seeds_a) & set(seeds_b))
        diffs = [sum(seeds_a[s].values()) - sum(seeds_b[s].values()) for s in common]
        if len(common) > 1:
            interval = mean_interval(diffs)
            test, p = paired_test(diffs)
            out.append(f"{a} minus {b}, summed gap, {len(common)} seeds: {interval.mean:+.2f} "
                       f"[{interval.low:+.2f}, {interval.high:+.2f}] ({test}, p {p:.3g})")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--algo", default="q_learning")
    parser.add_argument("--episodes", type=int, default=55)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--gamma", type=float, default=QLearningConfig.gamma)
    parser.add_argument("--state", nargs="*", default=list(QLearningConfig.state))
    parser.add_argument("--orgs", nargs="*", default=None, help="organizations to deviate (all)")
    parser.add_argument("--summarize", nargs="+", type=Path, default=None,
                        help="printouts of this script to summarize instead of running")
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize(args.summarize))
        return
    q_learning = QLearningConfig(gamma=args.gamma, state=tuple(args.state))
    learnt, rows = deviations(args.scenario, args.seed, args.algo, q_learning,
                              episodes=args.episodes, eval_episodes=args.eval_episodes,
                              orgs=args.orgs)
    state = " ".join(args.state) if args.algo == "q_learning" else "()"
    print(printout(f"{args.scenario}, seed {args.seed}, {args.algo} (gamma {args.gamma}, state "
                   f"{state}), {args.episodes} training episodes, {args.eval_episodes} greedy "
                   "episodes", learnt, rows))


if __name__ == "__main__":
    main()
