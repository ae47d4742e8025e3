"""Training and benchmark data: one import for the dialogue records, the generator and the loader.

- :mod:`fedenv.domains`: the synthetic worlds (domains, fact slots, value pools, phrasings);
- :mod:`fedenv.dialogues`: ``Message`` / ``Dialogue`` / ``FactProbe`` and the seeded generator;
- :mod:`fedenv.jsonl`: JSONL chat files for real data.
"""

from __future__ import annotations

from fedenv.dialogues import (
    ROLES,
    Dialogue,
    FactProbe,
    Message,
    benchmark_dialogues,
    generate_org_dialogues,
    public_corpus,
)
from fedenv.domains import DOMAINS, PRIVATE_DOMAINS, PUBLIC_DOMAINS, World, make_world
from fedenv.jsonl import load_jsonl, save_jsonl

__all__ = [
    "DOMAINS",
    "PRIVATE_DOMAINS",
    "PUBLIC_DOMAINS",
    "ROLES",
    "Dialogue",
    "FactProbe",
    "Message",
    "World",
    "benchmark_dialogues",
    "generate_org_dialogues",
    "load_jsonl",
    "make_world",
    "public_corpus",
    "save_jsonl",
]
