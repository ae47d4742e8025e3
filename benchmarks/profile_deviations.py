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

docs/agents.md uses it to say why the mean greedy return of independent learners on the default
scenario rewards some learning misses (an organization that gives up a profitable share of the
pool raises the mean).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

# Run as a script, benchmarks/ is first on sys.path and benchmarks/chains.py would shadow the
# chains package: the repository root goes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.base import Policy
from agents.q_learning import QLearningConfig
from agents.rollout import episode_seed, eval_seeds, evaluate, run_episode
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
    from studies.learning import _team

    torch.set_num_threads(1)  # as each of the study's two workers
    env = fedenv.parallel_env(scenario, store_adapters=False, **{"training.cpu_threads": 1})
    try:
        team = _team(env, algorithm, seed, q_learning)
        for episode in range(episodes):
            run_episode(env, team, seed=episode_seed(seed, episode))
            team.end_episode()
        seeds = eval_seeds(seed, eval_episodes)
        names = list(env.possible_agents)

        def returns(policies: Team) -> dict[str, float]:
            records = evaluate(env, policies, seeds)
            return {o: float(np.mean([r.agents[o].episode_return for r in records]))
                    for o in names}

        # Greedy play breaks ties with each policy's own generator: every evaluation starts from
        # the trained team's state, so each row's others play exactly as in the learnt profile.
        learnt = returns(copy.deepcopy(team))
        rows = []
        for org in orgs or names:
            if org not in names:
                raise ValueError(f"--orgs: unknown organization {org!r} (the scenario has {names})")
            for level in range(env.action_space(org).n):
                policies = copy.deepcopy(team.policies)
                policies[org] = FixedLevel(env.observation_space(org), env.action_space(org),
                                           seed=seed, level=level)
                rows.append((org, level, returns(Team(policies, team.assignment))))
        return learnt, rows
    finally:
        env.close()


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
    args = parser.parse_args(argv)
    q_learning = QLearningConfig(gamma=args.gamma, state=tuple(args.state))
    learnt, rows = deviations(args.scenario, args.seed, args.algo, q_learning,
                              episodes=args.episodes, eval_episodes=args.eval_episodes,
                              orgs=args.orgs)
    state = " ".join(args.state) if args.algo == "q_learning" else "()"
    print(f"{args.scenario}, seed {args.seed}, {args.algo} (gamma {args.gamma}, state {state}), "
          f"{args.episodes} training episodes, {args.eval_episodes} greedy episodes")
    print("learnt profile: " + ", ".join(f"{o} {v:+.2f}" for o, v in learnt.items())
          + f"; mean {np.mean(list(learnt.values())):+.2f}")
    print(f"{'deviator':<12}{'level':>6}{'own return':>12}{'mean':>9}   others")
    for org, level, got in rows:
        others = ", ".join(f"{o} {v:+.2f}" for o, v in got.items() if o != org)
        print(f"{org:<12}{level:>6}{got[org]:>+12.2f}{np.mean(list(got.values())):>+9.2f}   {others}")


if __name__ == "__main__":
    main()
