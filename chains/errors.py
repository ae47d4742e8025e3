"""Exceptions of the chains package: every failure names what is wrong."""

from __future__ import annotations


class ChainsError(Exception):
    """Base class of every error raised by `chains`."""


class IdentityError(ChainsError):
    """A certificate or signature does not verify against the membership service.

    `reason` is a short stable phrase ("unknown organization", "revoked", "role mismatch",
    "bad chain", "bad signature", "malformed certificate", "no role"); the message starts with it.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class LedgerError(ChainsError):
    """A ledger operation cannot be carried out (bad argument, read-only ledger, closed file)."""


class TransactionRejected(LedgerError):
    """A submitted transaction is invalid; the ledger is unchanged. `reason` is a short code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"transaction rejected ({reason}): {detail}")


class LedgerCorruptError(LedgerError):
    """A ledger file does not verify (its head on open, or any block under full verification)."""

    def __init__(self, path: str, block: int | None, reason: str, detail: str = "") -> None:
        self.path = path
        self.block = block
        self.reason = reason
        self.detail = detail
        where = f"block {block}" if block is not None else "file"
        super().__init__(f"ledger {path} does not verify at {where}: {reason}"
                         + (f" ({detail})" if detail else ""))
