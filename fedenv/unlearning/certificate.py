"""The unlearning certificate: what was forgotten, how, and what came of it, as canonical JSON.

The certificate of forgetting ``org`` in episode ``e`` (key ``e<episode>-unlearn-<org>``) is
written to ``unlearning/<key>.json`` in the run folder, recorded on the organization's updates
channel (``federation.certify``, endorsed under the channel's policy) and its SHA-256 anchored
on the public chain (:mod:`fedenv.ledgers.forgetting`).  Fields:

| field | meaning |
| --- | --- |
| ``format`` | :data:`FORMAT` |
| ``key``, ``episode``, ``org``, ``method`` | what was forgotten, how |
| ``round`` | the round at whose start it was applied (rounds ``0..round-1`` were played) |
| ``request_tx`` | the organization's signed request on the public chain |
| ``purge_txs`` | its purge transactions on its updates channel |
| ``removed`` | ``[{"round", "round_key", "digest", "artifact"}]``: its updates, erased |
| ``commit_rule`` | what a replay needs besides the files: ``aggregator``, ``lora_scale``, ``seed``, ``learning_rate`` (the norm budget's), the defences' ``norm``, ``norm_bound``, ``statistic`` and ``trim`` (:class:`fedenv.unlearning.replay.CommitRule`) |
| ``base`` | ``{"digest", "artifact"}``: the episode's base state |
| ``replay`` | ``[{"round", "start": {"digest", "artifact"}, "updates": [{"org", "artifact", "digest", "num_examples", "local_steps", "share"}]}]``: per round, the state it started from and the accepted updates that remain with their shares (renormalized where the organization had one): ``exact_replay`` commits exactly these |
| ``previous_global``, ``global`` | the global state's digest before; ``{"digest", "artifact"}`` after |
| ``clawback`` | the payouts clawed back (0 without ``clawback``) |
| ``measures`` | :mod:`fedenv.unlearning.measures` of the model before, after and (``oracle``) of ``retrain``'s, and the gaps |

Wall-clock times are not in it (they differ from run to run; the certificate's hash must not):
they go to ``unlearning/<key>-timings.json`` and the infos.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from chains.canonical import canonical_json

FORMAT = "fedenv-unlearning-certificate/2"
FOLDER = "unlearning"


def certificate_key(episode: int, org: str) -> str:
    return f"e{episode:05d}-unlearn-{org}"


def certificate_file(key: str) -> str:
    return f"{FOLDER}/{key}.json"


def timings_file(key: str) -> str:
    return f"{FOLDER}/{key}-timings.json"


def certificate_bytes(fields: Mapping[str, Any]) -> bytes:
    """Canonical JSON of a certificate (``format`` added)."""
    return canonical_json({"format": FORMAT, **fields}, what="unlearning certificate")


def certificate_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
