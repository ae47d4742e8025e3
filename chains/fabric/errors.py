"""Exceptions of the Fabric-style channels; each subclasses `chains.errors.ChainsError`."""

from __future__ import annotations

from chains.errors import ChainsError


class FabricError(ChainsError):
    """Base class of every error raised by `chains.fabric`."""


class ConfigError(FabricError, ValueError):
    """A network, channel, collection or chaincode configuration is invalid; names the field."""


class PolicySyntaxError(FabricError, ValueError):
    """An endorsement policy string does not parse.

    `position` is the 0-based character offset of the problem in `text`; `expected` says what the
    parser wanted there. The message shows the string with a caret under the position.
    """

    def __init__(self, text: str, position: int, expected: str, found: str = "") -> None:
        self.text = text
        self.position = position
        self.expected = expected
        self.found = found
        what = f"expected {expected}" + (f", found {found}" if found else "")
        super().__init__(f"bad endorsement policy at position {position}: {what}\n"
                         f"  {text}\n  {' ' * position}^")


class AccessDeniedError(FabricError):
    """An identity may not do what it asked (not a channel member, bad proposal signature...)."""


class PrivateDataAccessError(AccessDeniedError):
    """A private data collection refused a read or write (non-member, memberOnlyRead/Write)."""


class ChaincodeError(FabricError):
    """A chaincode function failed during simulation, or is not installed; nothing was endorsed."""


class EndorsementError(FabricError):
    """The client could not gather consistent endorsements (read-write sets differ, no plan)."""


class LedgerStateError(FabricError):
    """A peer's ledger is unusable: a block out of order, divergent peers, a bad file."""


class MalformedError(FabricError, ValueError):
    """Stored or received bytes do not parse as an envelope or read-write set."""
