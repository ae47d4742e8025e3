"""Robust screens over the round's update changes: multi-Krum, FLTrust trust and FoolsGold.

Each works on the changes of the round's updates (flattened vectors, after the norm rule of
:mod:`fedenv.scoring.screening`) and returns what the defence stage needs to decide:

| screen      | returns                                                        | source |
| ----------- | -------------------------------------------------------------- | ------ |
| `krum`      | the ``n - f`` updates of lowest Krum score (multi-Krum): the score of ``i`` is the sum of squared distances to its ``n - f - 2`` nearest others | Blanchard et al., NeurIPS 2017 |
| `fltrust`   | trust ``max(0, cos(change_i, root change))`` per update         | Cao et al., NDSS 2021 |
| `foolsgold` | a weight in [0, 1] per update from the largest cosine similarity of its history (the sum of its changes so far) to another's, with pardoning and a logit of confidence ``kappa`` | Fung et al., RAID 2020 |

Krum needs at least one neighbour per score (``n >= f + 3``); with fewer updates it keeps them
all (its guarantee needs ``n > 2f + 2``). FoolsGold needs two histories to compare; one alone
keeps weight 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch


def krum_selection(changes: Mapping[str, torch.Tensor], byzantine: int) -> dict[str, float]:
    """The Krum score of each update, for the ones multi-Krum keeps (the others are left out);
    every update when there are too few to score (``n < f + 3``)."""
    orgs = sorted(changes)
    n = len(orgs)
    neighbours = n - byzantine - 2
    if neighbours < 1:
        return dict.fromkeys(orgs, 0.0)
    stacked = torch.stack([changes[o] for o in orgs]).double()
    distances = torch.cdist(stacked, stacked) ** 2
    scores = {}
    for i, org in enumerate(orgs):
        others = torch.cat([distances[i, :i], distances[i, i + 1 :]])
        scores[org] = float(others.sort().values[:neighbours].sum())
    kept = sorted(orgs, key=lambda o: (scores[o], o))[: n - byzantine]
    return {o: scores[o] for o in kept}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity (0 when either vector is zero)."""
    norms = float(a.norm()) * float(b.norm())
    return float(a.double() @ b.double()) / norms if norms > 0 else 0.0


def fltrust_trust(changes: Mapping[str, torch.Tensor], root: torch.Tensor) -> dict[str, float]:
    """``ReLU(cos(change, root change))`` per update (FLTrust's trust score)."""
    return {org: max(0.0, cosine(change, root)) for org, change in changes.items()}


def foolsgold_weights(histories: Mapping[str, torch.Tensor], confidence: float) -> dict[str, float]:
    """FoolsGold's weight of each history (Fung et al., Algorithm 1, on whole changes)."""
    orgs = sorted(histories)
    n = len(orgs)
    if n < 2:
        return dict.fromkeys(orgs, 1.0)
    cs = [[cosine(histories[a], histories[b]) if a != b else -math.inf for b in orgs] for a in orgs]
    top = [max(row) for row in cs]
    for i in range(n):  # pardoning: an honest client similar to a sybil keeps its weight
        for j in range(n):
            if i != j and top[j] > top[i] > 0:
                cs[i][j] *= top[i] / top[j]
    alpha = [min(1.0, max(0.0, 1.0 - max(row))) for row in cs]
    best = max(alpha)
    weights = {}
    for org, a in zip(orgs, alpha):
        a = min(a / best, 0.99) if best > 0 else 0.0
        logit = confidence * (math.log(a / (1.0 - a)) + 0.5) if a > 0 else 0.0
        weights[org] = min(1.0, max(0.0, logit))
    return weights
