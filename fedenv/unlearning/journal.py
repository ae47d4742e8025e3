"""The unlearning journal: what lets an unlearning killed half-way be carried out again in its
own run folder, to the same certificate.

Before its first write to a ledger, :meth:`fedenv.unlearning.unlearner.Unlearner.apply` writes
``unlearning/<key>-journal.json`` (canonical JSON): the request (episode, organization, method,
round), the forgotten organization's updates it erases (round, round key, digest, file: read
before any file is erased) and the public chain's height when it started.  Every later step is
idempotent: the request and certificate records already committed on the public chain, the
purges and the certificate already on the channel are found with their tx ids
(:mod:`fedenv.ledgers.forgetting`); erased files stay erased; the new global state, the
certificate and its file are recomputed, deterministically, to the same bytes.

The same request applied again in the folder (the step repeated from the env's state saved
before it: :meth:`fedenv.fedorg.FedOrgParallelEnv.reopen`) reads the journal instead of the erased
files; if the public chain has grown past the journal's height, the unlearning's block was
sealed before the kill, so the logical clock is not advanced and nothing is sealed again.  A
journal of another request under the same key is refused, naming the file.  Resuming in place
needs the sqlite public chain (Ethereum anchors are mined one by one, and its log is not
searched for them): on Ethereum a journal found is refused too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from chains.canonical import canonical_json
from fedenv.errors import UnlearningError
from fedenv.run_folder import RunFolder
from fedenv.unlearning.certificate import FOLDER

FORMAT = "fedenv-unlearning-journal/1"


def journal_file(key: str) -> str:
    return f"{FOLDER}/{key}-journal.json"


def open_journal(
    run: RunFolder,
    key: str,
    request: Mapping[str, Any],
    removed: Callable[[], list[dict]],
    *,
    public_height: int,
    resumable: bool,
) -> tuple[dict, bool]:
    """``(journal, resumed)``: the journal of ``key`` found in ``run`` (checked to be of the same
    ``request``), or a new one with ``removed()`` written now (``resumed`` False)."""
    name = journal_file(key)
    if not (run.path / name).is_file():
        journal = {
            "format": FORMAT,
            "request": dict(request),
            "removed": removed(),
            "public_height": public_height,
        }
        run.write(name, canonical_json(journal, what="unlearning journal"))
        return journal, False
    try:
        journal = json.loads(run.read(name))
        found = journal["request"] if journal.get("format") == FORMAT else None
    except (ValueError, KeyError, TypeError) as exc:
        raise UnlearningError(f"{run.path / name}: not an unlearning journal ({exc})") from None
    if found != dict(request):
        raise UnlearningError(
            f"{run.path / name}: an unlearning {found} was started here, not {dict(request)}"
        )
    if not resumable:
        raise UnlearningError(
            f"{run.path / name}: this unlearning was started and killed; resuming it in place "
            "needs the sqlite public chain ([ledger] public = 'sqlite')"
        )
    return journal, True
