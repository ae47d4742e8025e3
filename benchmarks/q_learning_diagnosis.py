"""What one Q-learning run learnt, state by state: its Q-values beside the rewards it saw.

    python benchmarks/q_learning_diagnosis.py --seed 1                     # the default design
    python benchmarks/q_learning_diagnosis.py --seed 1 --continuation state --backoff 0   # Watkins
    python benchmarks/q_learning_diagnosis.py --scenario tiny --episodes 30

Trains every organization of the scenario with ``q_learning`` exactly as
``python -m studies.learning`` trains a seed (episode ``e`` resets with
``agents.rollout.episode_seed(seed, e)``), logging every transition, then prints per organization
and state (the bins of ``--state``): the Q-values the agent acts on, and the mean reward per
action with the number of transitions behind it; last, the greedy return on the study's
evaluation episodes.  docs/agents.md uses it to show why a state without the time misleads
Watkins's continuation (about 10 min for the default scenario on 2 idle cores).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

# Run as a script, benchmarks/ is first on sys.path and benchmarks/chains.py would shadow the
# chains package: the repository root goes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fedenv
from agents.q_learning import QLearningConfig
from agents.registry import AgentSettings, build_team, observation_fields
from agents.rollout import episode_seed, eval_seeds, evaluate, mean_returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=55)
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--state", nargs="*", default=list(QLearningConfig.state))
    parser.add_argument("--continuation", default=QLearningConfig.continuation)
    parser.add_argument("--backoff", type=float, default=QLearningConfig.backoff)
    parser.add_argument("--cpu-threads", type=int, default=1,
                        help="torch threads (results reproduce per thread count; the study's "
                             "workers use 1 on 2 cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.cpu_threads)
    config = QLearningConfig(state=tuple(args.state), continuation=args.continuation,
                             backoff=args.backoff)
    env = fedenv.parallel_env(args.scenario, store_adapters=False,
                              **{"training.cpu_threads": args.cpu_threads})
    orgs = list(env.possible_agents)
    team = build_team({a: "q_learning" for a in orgs},
                      {a: env.observation_space(a) for a in orgs},
                      {a: env.action_space(a) for a in orgs}, seed=args.seed,
                      settings=AgentSettings(q_learning=config,
                                             observation_fields=observation_fields(env)))
    # (org, state) -> action -> rewards seen
    rewards: dict[tuple[str, int], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    observations: dict[tuple[str, int], np.ndarray] = {}
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=episode_seed(args.seed, episode))
        while env.agents:
            actions = team.act({a: obs[a] for a in env.agents})
            next_obs, reward, terminated, truncated, _ = env.step(actions)
            for org, action in actions.items():
                state = team.policies[org].discretizer(obs[org])
                rewards[org, state][action].append(float(reward[org]))
                observations.setdefault((org, state), obs[org])
            team.learn(obs, actions, reward, next_obs, terminated, truncated)
            obs = next_obs
        team.end_episode()
        print(f"episode {episode + 1}/{args.episodes}", file=sys.stderr, flush=True)
    n_actions = env.action_space(orgs[0]).n
    print(f"{args.scenario}, seed {args.seed}, {args.episodes} episodes, state {args.state}, "
          f"continuation {args.continuation}, backoff {args.backoff}")
    print("| org | state (bins) | Q acted on, per action | mean reward per action (n) |")
    print("|---|---|---|---|")
    for org in orgs:
        agent = team.policies[org]
        for state in sorted({s for o, s in rewards if o == org}, reverse=True):
            bins = agent.discretizer.bin_indices(observations[org, state])[agent.discretizer.bins > 1]
            q = " ".join(f"{v:.2f}" for v in agent.q_values(observations[org, state]))
            seen = " ".join(f"{np.mean(rewards[org, state][a]):.2f} ({len(rewards[org, state][a])})"
                            if rewards[org, state][a] else "- (0)" for a in range(n_actions))
            print(f"| {org} | {bins.tolist()} | {q} | {seen} |")
    greedy = mean_returns(evaluate(env, team, eval_seeds(args.seed, args.eval_episodes)))
    print("greedy return: " + ", ".join(f"{o} {v:.2f}" for o, v in greedy.items())
          + f"; mean {np.mean(list(greedy.values())):.2f}")
    env.close()


if __name__ == "__main__":
    main()
