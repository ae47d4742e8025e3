"""How much a state could be worth to an organization: round-aware vs one level for the episode.

    python benchmarks/state_value.py                         # default scenario, 12 episodes
    python benchmarks/state_value.py --episodes 24 --bins 3 --results runs/study/results.json

Every organization plays uniformly random levels for ``--episodes`` episodes (env seeds as a
training run's, ``agents.rollout.episode_seed``); each round's reward is credited to the level
*played* (``infos[org]["resource"]``: a level the budget cannot pay is played lower).  Per
organization it prints the mean reward per round of each level in each phase of the episode
(``--bins`` equal-width bins of ``round_fraction``, as ``q_learning``'s discretizer cuts it),
then two episode values:

- ``stationary``: the best single level played every round (what the stateless bandit can
  reach at best): ``max_a sum_t mean(phase(t), a)``;
- ``by phase``: the best level in each phase (what a learner observing the round can reach at
  best): ``sum_t max_a mean(phase(t), a)``.

Their difference is an upper bound of what observing the round can add against these
opponents (optimistic: the max of noisy means is biased upwards, and random opponents are not
the learnt ones).  With ``--results`` (a ``studies.learning`` results.json holding
``q_learning`` and ``q_learning_stateless``) it also prints the standard deviation of the two
learners' paired per-seed difference in greedy return and how many seeds a paired t-test would
need to detect the bound's mean over organizations at 5% with 80% power.  docs/agents.md uses it
to say why no state design was detected better than the bandit on the default scenario.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from gymnasium import spaces

# Run as a script, benchmarks/ is first on sys.path and benchmarks/chains.py would shadow the
# chains package: the repository root goes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fedenv
from agents.discretizer import BoxDiscretizer
from agents.rollout import episode_seed
from fedenv.evaluation.statistics import seeds_needed


def play_random(scenario: str, episodes: int, seed: int) -> tuple[list, int, int]:
    """(org, round, level played, reward) of every live organization in every round; the
    scenario's rounds per episode and actions per organization."""
    env = fedenv.parallel_env(scenario, device="cpu")
    rng = np.random.default_rng(seed)
    rows = []
    try:
        for episode in range(episodes):
            _, _ = env.reset(seed=episode_seed(seed, episode))
            while env.agents:
                actions = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
                _, rewards, _, _, infos = env.step(actions)
                for org, reward in rewards.items():
                    rows.append((org, infos[org]["round"], int(infos[org]["resource"]), reward))
        return rows, env.unwrapped.scenario.max_rounds, env.action_space(env.possible_agents[0]).n
    finally:
        env.close()


def phase_of(round_index: int, max_rounds: int, bins: int) -> int:
    """The bin of ``round_fraction`` (rounds played / max_rounds, a float32 observation) at the
    round's start, cut by the learner's own discretizer."""
    cut = BoxDiscretizer(spaces.Box(0.0, 1.0, (1,), np.float32), bins)
    return int(cut.bin_indices(np.float32([round_index / max_rounds]))[0])


def state_values(rows, max_rounds: int, levels: int, bins: int) -> dict[str, dict]:
    """Per organization: mean reward table (phase x level), stationary and by-phase values."""
    rewards: dict[str, dict[tuple[int, int], list[float]]] = defaultdict(lambda: defaultdict(list))
    for org, round_index, level, reward in rows:
        rewards[org][(phase_of(round_index, max_rounds, bins), level)].append(reward)
    rounds_in = np.bincount([phase_of(t, max_rounds, bins) for t in range(max_rounds)],
                            minlength=bins)
    out = {}
    for org, cells in rewards.items():
        mean = np.full((bins, levels), np.nan)
        count = np.zeros((bins, levels), dtype=int)
        for (phase, level), values in cells.items():
            mean[phase, level], count[phase, level] = np.mean(values), len(values)
        # Only levels seen in every phase have a stationary value; each phase's best is over the
        # levels seen in it (a phase where none was seen has no value: nan).
        complete = [a for a in range(levels) if not np.isnan(mean[:, a]).any()]
        stationary = max((float(np.sum(rounds_in * mean[:, a])) for a in complete), default=np.nan)
        best = np.where(np.isnan(mean), -np.inf, mean).max(axis=1)
        by_phase = float(np.sum(rounds_in * best)) if np.isfinite(best).all() else np.nan
        out[org] = {"mean": mean, "count": count, "stationary": stationary, "by_phase": by_phase}
    return out


def paired_sd(results: Path) -> tuple[float, int]:
    """SD and n of q_learning - q_learning_stateless greedy returns, paired by seed."""
    document = json.loads(results.read_text())
    diffs = []
    for seed in document["seeds"]:
        greedy = seed["greedy"]
        stateful, stateless = greedy["q_learning"], greedy["q_learning_stateless"]
        diffs.append(np.mean(list(stateful.values())) - np.mean(list(stateless.values())))
    return float(np.std(diffs, ddof=1)), len(diffs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bins", type=int, default=3, help="bins of round_fraction")
    parser.add_argument("--results", type=Path, help="a studies.learning results.json")
    args = parser.parse_args()
    if args.episodes < 1 or args.bins < 1:
        parser.error("--episodes and --bins must be >= 1")

    rows, max_rounds, levels = play_random(args.scenario, args.episodes, args.seed)
    values = state_values(rows, max_rounds, levels, args.bins)
    print(f"{args.scenario}: {args.episodes} random episodes, seed {args.seed}, "
          f"{args.bins} phases of {max_rounds} rounds; mean reward per round (n)")
    gains = []
    for org, v in values.items():
        print(f"\n{org}")
        print("phase  " + "  ".join(f"level {a:<9}" for a in range(levels)))
        for phase in range(args.bins):
            cells = [f"{v['mean'][phase, a]:+6.2f} ({v['count'][phase, a]:>3})"
                     if v["count"][phase, a] else f"{'-':>6} (  0)" for a in range(levels)]
            print(f"{phase:<5}  " + "  ".join(f"{c:<15}" for c in cells))
        gain = v["by_phase"] - v["stationary"]
        gains.append(gain)
        print(f"episode value: stationary {v['stationary']:+.2f}, by phase {v['by_phase']:+.2f},"
              f" gain {gain:+.2f}")
    known = [g for g in gains if np.isfinite(g)]
    bound = float(np.mean(known)) if known else float("nan")
    print(f"\nupper bound of the gain, mean over organizations: {bound:+.2f} per episode")
    if args.results:
        sd, n = paired_sd(args.results)
        print(f"q_learning - q_learning_stateless, paired over {n} seeds: SD {sd:.2f}; seeds a "
              f"paired t-test needs to detect {bound:.2f} (5%, 80% power): "
              f"{(seeds_needed(bound, sd) or 'over 100,000') if bound > 0 else 'no gain to detect'}")


if __name__ == "__main__":
    main()
