"""Q-learning state designs on the tiny scenario: greedy return after the test's protocol.

    python benchmarks/q_learning_designs.py                  # every design, seeds 0,1,2 (~3 min CPU)
    python benchmarks/q_learning_designs.py --seeds 0 1

Each design trains every organization of fedenv ``tiny`` (3 organizations, 3 rounds, tight
budgets) for 30 episodes (``agents.training.episode_seed``), then plays 5 greedy episodes on
``agents.training.eval_seeds``; the figure is the mean over organizations and episodes of the
episode return, per seed and averaged.  A cheap screen for designs, not the claim: the claim is
made on the default scenario by ``python -m studies.learning`` (docs/agents.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

# Run as a script, benchmarks/ is first on sys.path and benchmarks/chains.py would shadow the
# chains package: the repository root goes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fedenv
from agents.q_learning import QLearningConfig
from agents.registry import AgentSettings, build_team, observation_fields
from agents.rollout import episode_seed, eval_seeds, evaluate, mean_returns, run_episode

ROUND_BUDGET = ("round_fraction=5", "budget_fraction=3")
BUDGET = ("budget_fraction=3",)
WATKINS = {"continuation": "state", "backoff": 0.0}  # the default
STATE_FREE = {"continuation": "state_free"}
DESIGNS: dict[str, tuple[str, dict]] = {
    "budget 3, Watkins (the default)": ("q_learning", {"state": BUDGET, **WATKINS}),
    "budget 3, state-free continuation": ("q_learning", {"state": BUDGET, **STATE_FREE}),
    "budget 3, Watkins, backoff 10": ("q_learning", {"state": BUDGET, "backoff": 10.0}),
    "budget 3, state-free continuation, backoff 10": (
        "q_learning", {"state": BUDGET, **STATE_FREE, "backoff": 10.0}),
    "round 5 x budget 3, Watkins": ("q_learning", {"state": ROUND_BUDGET, **WATKINS}),
    "round 5 x budget 3, state-free continuation, backoff 10": (
        "q_learning", {"state": ROUND_BUDGET, **STATE_FREE, "backoff": 10.0}),
    "round 3, state-free continuation, backoff 10": (
        "q_learning", {"state": ("round_fraction=3",), **STATE_FREE, "backoff": 10.0}),
    "round 3, split test z 2": ("q_learning", {"state": ("round_fraction=3",), "split_z": 2.0}),
    "stateless (q_learning_stateless)": ("q_learning_stateless", {}),
    "random": ("random", {}),
}


def greedy_return(env, algorithm: str, seed: int, episodes: int, **settings) -> float:
    agents = env.possible_agents
    team = build_team({a: algorithm for a in agents},
                      {a: env.observation_space(a) for a in agents},
                      {a: env.action_space(a) for a in agents}, seed=seed,
                      settings=AgentSettings(q_learning=QLearningConfig(**settings),
                                             observation_fields=observation_fields(env)))
    for episode in range(episodes):
        run_episode(env, team, seed=episode_seed(seed, episode))
        team.end_episode()
    returns = mean_returns(evaluate(env, team, eval_seeds(seed, 5)))
    return float(np.mean(list(returns.values())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS),
                        metavar="DESIGN", help="the designs to run (default: all)")
    args = parser.parse_args()
    env = fedenv.parallel_env("tiny", device="cpu", store_adapters=False)
    print(f"| design | {' | '.join(f'seed {s}' for s in args.seeds)} | mean |")
    print(f"|---|{'---|' * len(args.seeds)}---|")
    for name in args.designs:
        algorithm, settings = DESIGNS[name]
        values = [greedy_return(env, algorithm, s, args.episodes, **settings) for s in args.seeds]
        print(f"| {name} | {' | '.join(f'{v:.2f}' for v in values)} | {np.mean(values):.2f} |",
              flush=True)
    env.close()


if __name__ == "__main__":
    main()
