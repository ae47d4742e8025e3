"""Exceptions of the chains package: every failure names what is wrong.

Everything `chains` raises on bad input derives from `ChainsError`, so a caller (or a fuzz test)
can tell the package's answers from its bugs. Errors about bad values also derive from
`ValueError`, as Python's own parsers' errors do.
"""

from __future__ import annotations


class ChainsError(Exception):
    """Base class of every error raised by `chains`."""


class ConfigError(ChainsError, ValueError):
    """A ledger, network, channel, collection or chaincode configuration is invalid; names the
    field. The one configuration error of the package (`chains.fabric` re-exports it)."""


class MalformedError(ChainsError, ValueError):
    """Bytes that do not parse, or a value that cannot be encoded canonically: non-UTF-8 text,
    a wrong type, nesting or size beyond the limits, an integer outside the safe range."""


class IdentityError(ChainsError):
    """A certificate or signature does not verify against the membership service.

    `reason` is a short stable phrase ("unknown organization", "revoked", "role mismatch",
    "bad chain", "bad signature", "malformed certificate", "no role", "expired",
    "not yet valid", "not a signer", "bad crl"); the message starts with it.
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


class LedgerStorageError(LedgerError, OSError):
    """A ledger file could not be written: the disk is full (`errno` ENOSPC) or an I/O error
    (EIO). Nothing of the write was committed (SQLite rolled it back): the file holds every
    block before it, and the write can be retried once space is back. `filename` is the file,
    `strerror` what SQLite or the system said."""

    def __init__(self, code: int, message: str, path: str) -> None:
        OSError.__init__(self, code, message, path)


class LedgerCorruptError(LedgerError):
    """A ledger file does not verify (on open, or any block under full verification)."""

    def __init__(self, path: str, block: int | None, reason: str, detail: str = "") -> None:
        self.path = path
        self.block = block
        self.reason = reason
        self.detail = detail
        where = f"block {block}" if block is not None else "file"
        super().__init__(f"ledger {path} does not verify at {where}: {reason}"
                         + (f" ({detail})" if detail else ""))
