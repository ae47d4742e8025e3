"""fedenv with the RL libraries people already use, each behind an optional extra.

| module                               | extra      | what                                                  |
| ------------------------------------ | ---------- | ----------------------------------------------------- |
| :mod:`fedenv.integrations.rllib`     | ``rllib``  | RLlib's multi-agent PPO, env runners on Ray            |
| :mod:`fedenv.integrations.torchrl`   | ``torchrl``| TorchRL's PettingZoo wrapper, collector, MAPPO loss   |

The env itself needs none of them: every library wraps ``fedenv.parallel_env(...)`` unchanged
(see :mod:`fedenv.fedorg` for the done semantics, masks and copies they rely on); these modules
only spare the boilerplate.  SuperSuit 3.11.0's vector envs cannot drive fedenv (agents that
finish early, and a ``black_death_v3`` that misses the end of an episode; the ``supersuit`` extra
is there for tests/test_supersuit.py, which shows the clear error): SB3 goes through
``agents.sb3.ParallelEnvVecEnv``.  Recipes: docs/integrations.md.
"""
