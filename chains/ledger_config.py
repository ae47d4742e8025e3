"""Settings of a public ledger (`chains.public_ledger.PublicLedger`), validated when made."""

from __future__ import annotations

from dataclasses import dataclass

from chains.errors import ConfigError

__all__ = ["LedgerConfig"]


@dataclass(frozen=True)
class LedgerConfig:
    """Settings of a public ledger. `max_payload_bytes` is fixed in the genesis block at creation."""

    max_block_txs: int = 500          # seal a block automatically once this many are pending
    max_payload_bytes: int = 2048     # canonical-JSON size limit of a transaction payload
    synchronous: str = "FULL"         # SQLite fsync level: FULL survives power loss, NORMAL a crash

    def __post_init__(self) -> None:
        for name in ("max_block_txs", "max_payload_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"LedgerConfig.{name} must be a positive int, got {value!r}")
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ConfigError("LedgerConfig.synchronous must be OFF, NORMAL, FULL or EXTRA, "
                             f"got {self.synchronous!r}")
