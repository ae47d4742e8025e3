"""Checking the files a ledger names ("artifact" + "digest" in a payload) against their SHA-256.

An artifact name is a relative POSIX path inside the folder that holds the ledger: printable,
at most 1,024 characters, components of at most 255 bytes, no empty, "." or ".." component, no
NUL or backslash. It is opened one component at a time relative to that folder with
`O_NOFOLLOW`, so no symbolic link (inside the folder or out of it, or to itself) is ever
followed, and the file must be a regular file within the size bound; FIFOs and devices are
refused without being opened for blocking reads. Each failure is a `Problem` with a reason:
`artifact-path` (bad name, a link, not a regular file), `artifact-missing`, `artifact-size`,
`artifact-digest`, `artifact-unreadable`.

Pruning: a writer that deletes artifacts on purpose (fedenv keeps only the last K episodes'
adapters) first seals an `anchor` transaction whose payload is `{"event": "artifacts-pruned",
"prefixes": ["adapters/e00003/", ...], "digest": ...}`. An artifact under such a prefix, named
in a block before the record's, may then be missing: it is counted as pruned (a note naming the
records' blocks), not reported. One that is still there is checked like any other, and a
prefix that is not a safe relative folder (`name_problem`, ending in "/") prunes nothing.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from chains.report import Problem, VerifyLimits

__all__ = ["PRUNED_EVENT", "check_artifacts", "name_problem", "pruned_prefixes"]

PRUNED_EVENT = "artifacts-pruned"

_MAX_NAME = 1024
_MAX_COMPONENT_BYTES = 255
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def name_problem(name: object) -> str | None:
    """Why `name` cannot be an artifact path, or None when it can."""
    if not isinstance(name, str) or not name:
        return "an artifact name is a non-empty string"
    if len(name) > _MAX_NAME:
        return f"the name has {len(name)} characters; the limit is {_MAX_NAME}"
    if not name.isprintable() or "\\" in name:
        return "the name holds control characters, NUL or a backslash"
    if name.startswith("/"):
        return "the name is absolute; artifacts are relative to the ledger's folder"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return "the name has an empty, '.' or '..' component"
        try:
            size = len(part.encode("utf-8"))
        except UnicodeEncodeError:
            return "the name is not valid Unicode"
        if size > _MAX_COMPONENT_BYTES:
            return f"a component has {size} bytes; the limit is {_MAX_COMPONENT_BYTES}"
    return None


def _digest(root: Path, name: str, limit: int, deadline: float | None) -> tuple[str, str]:
    """(reason, detail) of a problem, or ("", hex digest) of the artifact's bytes."""
    parts = name.split("/")
    fds: list[int] = []
    try:
        fds.append(os.open(root, os.O_RDONLY | _DIRECTORY))
        for part in parts[:-1]:
            fds.append(os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fds[-1]))
        fd = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | _NONBLOCK, dir_fd=fds[-1])
        fds.append(fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "artifact-path", f"{name} is not a regular file"
        if info.st_size > limit:
            return "artifact-size", f"{name} has {info.st_size} bytes; the limit is {limit}"
        h, read = hashlib.sha256(), 0
        while chunk := os.read(fd, 1 << 20):
            if deadline is not None and time.monotonic() > deadline:
                return "timeout", f"{name}: verification ran past its time limit"
            read += len(chunk)
            if read > limit:
                return "artifact-size", f"{name} grew beyond {limit} bytes while being read"
            h.update(chunk)
        return "", h.hexdigest()
    except FileNotFoundError:
        return "artifact-missing", name
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            return "artifact-path", f"{name}: a link or not a folder (links are not followed)"
        return "artifact-unreadable", f"{name}: {exc.strerror or exc}"
    finally:
        for fd in reversed(fds):
            os.close(fd)


def pruned_prefixes(records: Iterable[tuple[int, object]]) -> list[tuple[int, str]]:
    """(block, prefix) of each valid prefix of the pruning records (block, prefixes)."""
    found = []
    for block, prefixes in records:
        if not isinstance(prefixes, list):
            continue
        for prefix in prefixes:
            if isinstance(prefix, str) and prefix.endswith("/") \
                    and name_problem(prefix[:-1]) is None:
                found.append((block, prefix))
    return found


def check_artifacts(root: Path, artifacts: Iterable[tuple[int, object, object]],
                    limits: VerifyLimits, deadline: float | None = None, *,
                    pruned: Iterable[tuple[int, object]] = (),
                    notes: list[str] | None = None) -> list[Problem]:
    """Problems of each (block, name, digest) named by a ledger whose folder is `root`;
    `pruned` are the (block, prefixes) of pruning records (see the module doc), and the count
    of artifacts they excuse goes to `notes`."""
    prefixes = pruned_prefixes(pruned)
    problems, excused, blocks = [], 0, set()
    for block, name, digest in artifacts:
        why = name_problem(name)
        if why is not None:
            problems.append(Problem(block, "artifact-path", f"{str(name)[:80]!r}: {why}"))
            continue
        assert isinstance(name, str)
        reason, found = _digest(root, name, limits.max_artifact_bytes, deadline)
        if reason == "artifact-missing":
            record = next((b for b, p in prefixes if b > block and name.startswith(p)), None)
            if record is not None:
                excused += 1
                blocks.add(record)
                continue
        if reason:
            problems.append(Problem(block, reason, found))
        elif found != digest:
            problems.append(Problem(block, "artifact-digest",
                                    f"{name}: sha256 {found}, ledger says {digest}"))
    if excused and notes is not None:
        shown = ", ".join(str(b) for b in sorted(blocks)[:10])
        notes.append(f"{excused} artifact(s) pruned on purpose (records in block(s) {shown}"
                     f"{', ...' if len(blocks) > 10 else ''}): their hashes stay on the ledger, "
                     f"their files are gone")
    return problems
