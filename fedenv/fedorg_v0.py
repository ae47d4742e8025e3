"""``fedorg_v0``: the versioned env module, as PettingZoo names its environments.

    from fedenv import fedorg_v0
    env = fedorg_v0.parallel_env("default")

The implementation and its documentation page are :mod:`fedenv.fedorg`; a change of the env's
spaces, rewards or dynamics gets a new version module, so results name the env they came from.
"""

from __future__ import annotations

from fedenv.fedorg import env, parallel_env, raw_env

__all__ = ["env", "parallel_env", "raw_env"]
