"""fedenv: organizations deciding how to take part in federated LoRA fine-tuning of a language
model, as a PettingZoo environment with a verifiable public ledger and permissioned channels.

    import fedenv
    env = fedenv.parallel_env("default")   # or "tiny", a TOML path, or a Scenario; **overrides
    aec = fedenv.env("default")            # the AEC version
    observations, infos = env.reset(seed=0)

``fedenv.env`` is the env module (``fedenv.env.OBS_FIELDS``, its docstring is the env's
documentation page) and, called, the AEC constructor.  ``import fedenv`` stays light: torch,
transformers and the ledgers load when the first env is built.
"""

from __future__ import annotations

from fedenv import env
from fedenv.env import OBS_FIELDS, FedOrgParallelEnv, parallel_env
from fedenv.scenario import Scenario, load_scenario

__all__ = ["OBS_FIELDS", "FedOrgParallelEnv", "Scenario", "env", "load_scenario", "parallel_env"]
