"""The unlearning check of ``python -m chains verify <run folder>`` (a ``chains.verify`` plugin).

For every ``unlearning-certificate`` anchored on the run's (verified) public chain:

- the certificate file must hash to the anchored digest (``unlearning-digest``);
- every file it names (the base state, each round's starting state and remaining updates, the
  new global state) must hash to the digest it gives (``unlearning-digest``, naming the file), and the forgotten
  organization's update files must be gone (``unlearning-not-erased``);
- for ``exact_replay``, the new global state is recomputed from the base and the remaining
  updates as the rounds committed them (:func:`fedenv.unlearning.replay.replay_rounds`: the
  defences' norm rule, the round's aggregation rule with the certificate's shares, the engine's
  own transition) and its digest must be the certificate's (``unlearning-replay``).

Registered in ``pyproject.toml`` under ``[project.entry-points."chains.verify"]``; ``chains``
itself never imports fedenv or torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from chains.report import Problem
from chains.verify_plugins import Anchored
from fedenv.engine.global_state import split_global_state
from fedenv.engine.lora import adapter_digest
from fedenv.ledgers.forgetting import CERTIFICATE
from fedenv.unlearning.replay import (
    CommitRule,
    ReplayRound,
    StoredUpdate,
    load_adapter,
    replay_rounds,
    stored_update,
)


def check(folder: Path, anchors: Sequence[Anchored]) -> list[Problem]:
    """The problems of every unlearning certificate anchored in ``folder``'s public chain."""
    problems: list[Problem] = []
    for anchor in anchors:
        if anchor.payload.get("event") == CERTIFICATE:
            problems.extend(_check_certificate(folder, anchor))
    return problems


def _read(
    folder: Path, name: object, digest: object, height: int
) -> tuple[bytes | None, Problem | None]:
    if not isinstance(name, str) or name.startswith("/") or ".." in name.split("/"):
        return None, Problem(
            height, "unlearning-file", f"{str(name)[:80]!r} is not a run-folder path"
        )
    path = folder / name
    if path.is_symlink() or not path.is_file():
        return None, Problem(height, "unlearning-file", f"{name} is missing or not a regular file")
    data = path.read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != digest:
        return None, Problem(
            height, "unlearning-digest", f"{name}: sha256 {found}, expected {digest}"
        )
    return data, None


def _check_certificate(folder: Path, anchor: Anchored) -> list[Problem]:
    height = anchor.height
    data, problem = _read(
        folder, anchor.payload.get("artifact"), anchor.payload.get("digest"), height
    )
    if problem:
        return [problem]
    name = anchor.payload["artifact"]
    try:
        certificate = json.loads(data)
        removed, replay = certificate["removed"], certificate["replay"]
        base, new = certificate["base"], certificate["global"]
    except (ValueError, KeyError, TypeError) as exc:
        return [Problem(height, "unlearning-certificate", f"{name}: {exc!r}")]
    problems = [
        Problem(
            height,
            "unlearning-not-erased",
            f"{r['artifact']}: {certificate['org']}'s update is still there",
        )
        for r in removed
        if (folder / r["artifact"]).exists()
    ]
    _, problem = _read(folder, new["artifact"], new["digest"], height)
    if problem:
        problems.append(problem)
    if certificate["method"] != "exact_replay":
        return problems
    base_data, problem = _read(folder, base["artifact"], base["digest"], height)
    if problem:
        problems.append(problem)
    try:
        rule = CommitRule(**certificate["commit_rule"])
        rounds = []
        for step in replay:
            start, updates = _replay_round(folder, step, height, problems)
            rounds.append(ReplayRound(start, updates))
    except (KeyError, TypeError, ValueError) as exc:
        return [*problems, Problem(height, "unlearning-certificate", f"{name}: {exc!r}")]
    if problems:
        return problems
    start = load_adapter(base_data)
    state = replay_rounds(rule, start, rounds, initial=split_global_state(start)[0])
    recomputed = adapter_digest(state)
    if recomputed != new["digest"]:
        problems.append(
            Problem(
                height,
                "unlearning-replay",
                f"{name}: replaying its updates gives {recomputed}, the certificate says {new['digest']}",
            )
        )
    return problems


def _replay_round(
    folder: Path, step: dict, height: int, problems: list[Problem]
) -> tuple[dict, list[StoredUpdate]]:
    """One round of a certificate's ``replay``: its start and updates, read and checked (the
    problems found are appended to ``problems``)."""
    start_data, problem = _read(folder, step["start"]["artifact"], step["start"]["digest"], height)
    if problem:
        problems.append(problem)
    updates = []
    for update in step["updates"]:
        data, problem = _read(folder, update["artifact"], update["digest"], height)
        if problem:
            problems.append(problem)
            continue
        updates.append(
            stored_update(
                update["org"],
                data,
                update["num_examples"],
                update["local_steps"],
                update["share"],
            )
        )
    start = split_global_state(load_adapter(start_data))[0] if start_data is not None else {}
    return start, updates
