"""The anchoring interface: somewhere to publish small signed records of digests.

Both `chains.public_ledger.PublicLedger` and `chains.ethereum.EthereumAnchor` (and
`chains.ethereum_log.LoggedAnchor`) satisfy it, so a caller written against `Anchor` can publish
to either; fedenv chooses by its scenario's `[ledger] public`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from chains.identity import Identity

__all__ = ["ANCHOR_KINDS", "Anchor"]

ANCHOR_KINDS = ("update-hash", "global-model-hash", "round-summary", "anchor")


@runtime_checkable
class Anchor(Protocol):
    """Somewhere to publish small signed records (digests and numbers, never tensors)."""

    @property
    def height(self) -> int:
        """Height of the latest committed block."""
        ...

    def anchor(self, kind: str, payload: Mapping[str, Any], *, sender: Identity | None = None) -> str:
        """Publish `payload` as a record of `kind` signed by `sender`; returns a receipt id."""
        ...

    def flush(self) -> int:
        """Commit whatever is pending; returns the height afterwards."""
        ...

    def confirmed(self, receipt: str) -> int | None:
        """Height of the block holding `receipt`, or None while it is not committed."""
        ...
