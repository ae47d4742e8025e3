"""Seed derivation: every random stream of a run derives from one ``seed`` and a path.

``derive_seed(seed, *path)`` is a 32-bit seed, stable across processes, platforms and Python
versions (unlike ``hash()``): numpy's :class:`~numpy.random.SeedSequence` over the words of
``[seed, *path]``.  An integer part (>= 0) is its own 32-bit words; a string part is the
SHA-256 of its UTF-8 bytes, read as one integer.  For integer paths this is exactly
``agents.base.derive_seed`` (``agents/`` may not import fedenv, so it keeps its own copy of
the same rule; ``tests/test_seeding.py`` checks that the two agree).

The paths fedenv uses:

| path                                              | seeds                               |
| ------------------------------------------------- | ----------------------------------- |
| ``(engine seed, "lora-init")``                    | the initial global adapter          |
| ``(engine seed, "client", round seed, org)``      | one client's batch order and dropout |
| ``(engine seed, "fresh-adapter", digest)``        | FLoRA's re-initialized adapter      |
| ``(reset seed, "episode", index)``                | an episode (the env's ``reset``)    |
| ``(episode seed, "round", index)``                | a round's training                  |
| ``(round seed, "behaviour", org)``                | a malicious organization's update   |
| ``(episode seed, "scoring", index)``              | a round's Monte-Carlo Shapley draws |
| ``(run seed, "evaluation", index)``               | an evaluation episode of a comparison |
"""

from __future__ import annotations

import hashlib
import numbers

import numpy as np

SeedPart = int | str


def derive_seed(seed: int, *path: SeedPart) -> int:
    """The 32-bit seed of the stream named ``path`` under ``seed`` (see the module docstring)."""
    words = [_entropy(seed, "seed")]
    words += [_entropy(part, f"path[{i}]") for i, part in enumerate(path)]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def _entropy(part: object, where: str) -> int:
    if isinstance(part, str):
        return int.from_bytes(hashlib.sha256(part.encode("utf-8")).digest(), "big")
    if isinstance(part, numbers.Integral) and not isinstance(part, bool) and part >= 0:
        return int(part)
    raise ValueError(f"derive_seed: {where} must be an integer >= 0 or a string, got {part!r}")
