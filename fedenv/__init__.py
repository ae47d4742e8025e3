"""fedenv: organizations deciding how to take part in federated LoRA fine-tuning of a language
model, as a PettingZoo environment with a verifiable public ledger and permissioned channels.

    import fedenv
    env = fedenv.parallel_env("default")   # or "tiny", a TOML path, or a Scenario; **overrides
    aec = fedenv.env("default")            # the AEC version
    observations, infos = env.reset(seed=0)

The env is ``fedorg_v0`` (:mod:`fedenv.fedorg_v0`; its documentation page is the docstring of
:mod:`fedenv.fedorg`).  ``import fedenv`` stays light: torch, transformers and the ledgers load
when the first env is built.

The parts, one sub-package each: :mod:`fedenv.engine` (the federated LoRA engine),
:mod:`fedenv.data` (dialogues, tokenizer, base model), :mod:`fedenv.scoring` (benchmark,
contributions, incentives, costs, attacks, defences), :mod:`fedenv.evaluation` (what evaluate.py runs);
the env, one round (:mod:`fedenv.round`) and its typed outcome (:mod:`fedenv.records`), scenarios,
ledgers and run folders sit at the top; :mod:`fedenv.seeding` (the one seed-derivation rule),
:mod:`fedenv.device` and :mod:`fedenv.errors` at the bottom.
"""

from __future__ import annotations

from fedenv.fedorg import OBS_FIELDS, FedOrgParallelEnv
from fedenv.fedorg_v0 import env, parallel_env, raw_env
from fedenv.scenario import Scenario, load_scenario

__all__ = [
    "OBS_FIELDS",
    "FedOrgParallelEnv",
    "Scenario",
    "env",
    "load_scenario",
    "parallel_env",
    "raw_env",
]
