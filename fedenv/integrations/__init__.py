"""fedenv with the RL libraries people already use, each behind an optional extra.

| module                               | extra      | what                                                  |
| ------------------------------------ | ---------- | ----------------------------------------------------- |
| :mod:`fedenv.integrations.rllib`     | ``rllib``  | RLlib's multi-agent PPO, env runners on Ray            |
| :mod:`fedenv.integrations.torchrl`   | ``torchrl``| TorchRL's PettingZoo wrapper, collector, MAPPO loss   |
| :mod:`fedenv.integrations.supersuit` | ``supersuit`` | why SuperSuit 3.11.0's vector envs cannot run it, and the SB3 path that does |

The env itself needs none of them: every library wraps ``fedenv.parallel_env(...)`` unchanged
(see :mod:`fedenv.fedorg` for the done semantics, masks and copies they rely on); these modules
only spare the boilerplate.  Recipes: docs/integrations.md.
"""
