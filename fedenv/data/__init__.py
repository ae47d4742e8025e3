"""Training and benchmark data, the tokenizer and the base model.

This package's ``__init__`` gathers the dialogue records, the generator and the loader; the rest
are modules of their own: :mod:`~fedenv.data.tokenizer`, :mod:`~fedenv.data.encoding` (chat
template and loss mask), :mod:`~fedenv.data.packing`, :mod:`~fedenv.data.pretrain` and
:mod:`~fedenv.data.model` (the embedded base-model presets and their cache), and
:mod:`~fedenv.data.benchmark` (held-out scoring: NLL and fact accuracy as a 0-10 score).

- :mod:`fedenv.data.domains`: the synthetic worlds (domains, fact slots, value pools, phrasings);
- :mod:`fedenv.data.dialogues`: ``Message`` / ``Dialogue`` / ``FactProbe`` and the seeded generator;
- :mod:`fedenv.data.jsonl`: JSONL chat files for real data.
"""

from __future__ import annotations

from fedenv.data.dialogues import (
    ROLES,
    Dialogue,
    FactProbe,
    Message,
    benchmark_dialogues,
    generate_org_dialogues,
    public_corpus,
    root_dialogues,
)
from fedenv.data.domains import DOMAINS, PRIVATE_DOMAINS, PUBLIC_DOMAINS, World, make_world
from fedenv.data.jsonl import load_jsonl, save_jsonl

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
    "root_dialogues",
    "save_jsonl",
]
