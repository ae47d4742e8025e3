"""Exceptions of the Fabric-style channels; each subclasses `chains.errors.ChainsError`.

`ConfigError` and `MalformedError` are the package-wide classes of `chains.errors`, re-exported
here: a bad configuration or bad bytes mean the same thing on a channel as on the public ledger.
"""

from __future__ import annotations

from chains.errors import ChainsError, ConfigError, MalformedError

__all__ = ["AccessDeniedError", "ChaincodeError", "ConfigError", "EndorsementError",
           "FabricError", "LedgerStateError", "MalformedError", "PolicySyntaxError",
           "PrivateDataAccessError"]

_WINDOW = 60


class FabricError(ChainsError):
    """Base class of the errors only `chains.fabric` raises."""


class PolicySyntaxError(FabricError, ValueError):
    """An endorsement policy string does not parse (or exceeds the policy bounds).

    `position` is the 0-based character offset of the problem in `text`; `expected` says what the
    parser wanted there. The message shows the string (a window of it, if long) with a caret
    under the position.
    """

    def __init__(self, text: str, position: int, expected: str, found: str = "") -> None:
        self.text = text
        self.position = position
        self.expected = expected
        self.found = found
        what = f"expected {expected}" + (f", found {found}" if found else "")
        start = max(0, position - _WINDOW) if len(text) > 2 * _WINDOW else 0
        shown = text[start:start + 2 * _WINDOW] if start or len(text) > 2 * _WINDOW else text
        shown = "".join(c if c.isprintable() else "?" for c in shown)
        prefix = "..." if start else ""
        super().__init__(f"bad endorsement policy at position {position}: {what}\n"
                         f"  {prefix}{shown}\n  {' ' * (len(prefix) + position - start)}^")


class AccessDeniedError(FabricError):
    """An identity may not do what it asked (not a channel member, bad proposal signature...)."""


class PrivateDataAccessError(AccessDeniedError):
    """A private data collection refused a read or write (non-member, memberOnlyRead/Write)."""


class ChaincodeError(FabricError):
    """A chaincode function failed during simulation, or is not installed; nothing was endorsed."""


class EndorsementError(FabricError):
    """The client could not gather consistent endorsements (read-write sets differ, no plan)."""


class LedgerStateError(FabricError):
    """A peer's or orderer's ledger is unusable: a block out of order, divergent peers, a file
    whose derived state disagrees with its signed blocks."""
