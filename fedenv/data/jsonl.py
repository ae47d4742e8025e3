"""JSON Lines chat files: one dialogue per line, ``{"messages": [{"role": r, "content": c}, ...]}``.

Rules, checked on every line (a violation raises :class:`DataFormatError` naming file, line and
problem; no line is ever dropped):

- the line is a JSON object with a ``messages`` list of at least one message;
- each message is an object with exactly the keys ``role`` (``system``/``user``/``assistant``) and
  ``content`` (a string);
- a ``system`` message may only come first; at least one message is an ``assistant`` turn;
- an optional top-level ``domain`` is a string; other top-level keys (ids, metadata) are ignored.

Blank (whitespace-only) lines hold no record and are passed over, as most JSONL readers do; a file
with no dialogue at all is an error. Files are UTF-8 (a leading byte-order mark is accepted).

Bounded input: a line longer than :data:`MAX_LINE_BYTES` (1 MiB) is refused, naming its line,
before it is read in full or parsed (a dialogue past ``max_len`` tokens is cut anyway, and
:mod:`fedenv.data.encoding` cuts long dialogues before tokenizing them); ``max_dialogues``
stops reading once that many dialogues are in.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fedenv.data.dialogues import ROLES, Dialogue, Message
from fedenv.errors import DataFormatError

MAX_LINE_BYTES = 1 << 20


def parse_record(record: Any) -> Dialogue:
    """A dialogue from one decoded JSON value; ``ValueError``/``TypeError`` name the problem."""
    if not isinstance(record, dict):
        raise TypeError(f"expected a JSON object, got {type(record).__name__}")
    if "messages" not in record:
        raise ValueError('missing key "messages"')
    raw = record["messages"]
    if not isinstance(raw, list) or not raw:
        raise ValueError('"messages" must be a non-empty list')
    domain = record.get("domain", "")
    if not isinstance(domain, str):
        raise TypeError(f'"domain" must be a string, got {type(domain).__name__}')
    messages = []
    for i, msg in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise TypeError(f"{where} must be an object, got {type(msg).__name__}")
        missing = {"role", "content"} - msg.keys()
        if missing:
            raise ValueError(f"{where} is missing {', '.join(sorted(missing))}")
        extra = msg.keys() - {"role", "content"}
        if extra:
            raise ValueError(f"{where} has unsupported keys: {', '.join(sorted(extra))}")
        role, content = msg["role"], msg["content"]
        if role not in ROLES:
            raise ValueError(f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise TypeError(f"{where}.content must be a string, got {type(content).__name__}")
        if role == "system" and i != 0:
            raise ValueError(f"{where} is a system message; only the first message may be one")
        messages.append(Message(role, content))
    if not any(m.role == "assistant" for m in messages):
        raise ValueError("no assistant turn (nothing to train or evaluate on)")
    return Dialogue(tuple(messages), domain)


def load_jsonl(
    path: str | Path, *, max_dialogues: int | None = None, max_line_bytes: int = MAX_LINE_BYTES
) -> list[Dialogue]:
    """The dialogues of a JSONL chat file, in file order, the first ``max_dialogues`` of them
    (``None``: all); the rules and limits: see the module docstring."""
    path = Path(path)
    dialogues: list[Dialogue] = []
    with path.open("rb") as fh:
        number = 0
        while max_dialogues is None or len(dialogues) < max_dialogues:
            raw = fh.readline(max_line_bytes + 3)  # the limit, then "\r\n", then one more
            if not raw:
                break
            number += 1
            if len(raw.rstrip(b"\r\n")) > max_line_bytes:
                raise DataFormatError(
                    path,
                    number,
                    f"the line is longer than {max_line_bytes} bytes, the limit of one dialogue "
                    f"(fedenv.data.jsonl.MAX_LINE_BYTES); split or shorten it",
                )
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    path, number, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    path, number, f"invalid JSON: {exc.msg} (column {exc.colno})"
                ) from None
            try:
                dialogues.append(parse_record(record))
            except (ValueError, TypeError) as exc:
                raise DataFormatError(path, number, str(exc)) from None
    if not dialogues:
        raise DataFormatError(path, None, "no dialogues in file")
    return dialogues


def dialogue_record(dialogue: Dialogue) -> dict[str, Any]:
    record: dict[str, Any] = {
        "messages": [{"role": m.role, "content": m.content} for m in dialogue.messages]
    }
    if dialogue.domain:
        record["domain"] = dialogue.domain
    return record


def save_jsonl(dialogues: Iterable[Dialogue], path: str | Path) -> None:
    """Write ``dialogues`` as JSONL (atomically: a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for dialogue in dialogues:
                fh.write(json.dumps(dialogue_record(dialogue), ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
