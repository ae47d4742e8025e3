"""What verification answers, and within which bounds: `Problem`, `VerifyReport`, `VerifyLimits`.

Shared by the public-ledger verifier (`chains.verify`) and the channel verifier
(`chains.fabric.verify`). A problem's detail is made printable (control characters, lone
surrogates and overlong text from a hostile file are escaped or cut), so printing a report never
fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DEFAULT_LIMITS", "Problem", "VerifyLimits", "VerifyReport", "printable"]

_MAX_DETAIL = 400


def printable(text: str, limit: int = _MAX_DETAIL) -> str:
    """`text` with anything unprintable escaped (backslash form) and cut to `limit` characters."""
    if not text.isprintable() or not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8", "replace")
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


@dataclass
class Problem:
    """One thing that does not verify: the block (height or number) it is in, a short reason code."""

    block: int | None
    reason: str
    detail: str = ""

    def __post_init__(self) -> None:
        self.detail = printable(self.detail)


@dataclass
class VerifyReport:
    """The outcome of verifying one ledger file."""

    path: str
    kind: str
    ok: bool
    blocks: int
    transactions: int
    problems: list[Problem] = field(default_factory=list)
    head: str = ""  # e.g. "size=120 root=ab12..." of the last verified tree head
    notes: list[str] = field(default_factory=list)  # facts that are not problems

    def __post_init__(self) -> None:
        self.path = printable(self.path, 4096)

    def summary(self) -> str:
        status = "OK  " if self.ok else "FAIL"
        line = f"{status} {self.kind:<15} {self.path}  blocks={self.blocks} txs={self.transactions}"
        if self.head:
            line += f"  {self.head}"
        for p in self.problems:
            where = f"block {p.block}" if p.block is not None else "file"
            line += f"\n     {where}: {p.reason}" + (f" ({p.detail})" if p.detail else "")
        for note in self.notes:
            line += f"\n     note: {printable(note)}"
        return line


@dataclass(frozen=True)
class VerifyLimits:
    """Bounds that keep verification of a hostile folder finite; exceeding one is a problem.

    max_seconds: wall-clock budget per ledger file (SQLite is interrupted past it: "timeout").
    max_ledger_bytes / max_artifact_bytes: size of a ledger file (with its journal) / artifact.
    max_entries / max_depth: how many folder entries and how deep a folder walk looks.
    """

    max_seconds: float = 3600.0
    max_ledger_bytes: int = 64 << 30
    max_artifact_bytes: int = 64 << 30
    max_entries: int = 100_000
    max_depth: int = 32


DEFAULT_LIMITS = VerifyLimits()
