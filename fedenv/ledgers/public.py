"""The run's public chain, chosen by ``[ledger] public``: the same anchors on either.

- ``sqlite`` (default): ``public.db``, the RFC 9162 ledger of :mod:`chains.public_ledger`; one
  block per round (``seal``), signed by the consortium's orderer; its genesis holds the
  organizations' CA certificates.
- ``ethereum``: each anchor is a zero-value transaction on an Ethereum chain
  (:mod:`chains.ethereum`), an in-process eth-tester chain by default or the node at
  ``[ledger] ethereum_url``, each mined as it is sent; every one is kept, with its signed raw
  bytes and receipt, in ``public-eth.db`` (:mod:`chains.ethereum_log`) beside the run, which is
  what ``python -m chains verify`` checks.  The anchoring account's key derives from the seed
  (fine for the in-process chain and development nodes, which fund it from their first unlocked
  account when it has no ether); set ``FEDENV_ETH_PRIVATE_KEY`` (hex) to anchor from a funded
  account of your own on a real network.  Reopening a run folder continues the log: an
  in-process chain starts afresh (a new session in the log, anchoring from the seed's account
  for that session).

Both are :class:`chains.anchor.Anchor`\\ s; the records are signed by the organizations'
clients (``update-hash``) and by the consortium's orderer (the rest), with the same payloads.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from chains.anchor import Anchor
from chains.identity import Identity
from chains.msp import MSP
from chains.public_ledger import LedgerConfig, PublicLedger

PUBLIC_FILE = "public.db"
ETHEREUM_FILE = "public-eth.db"
MAX_PAYLOAD_BYTES = 65536  # a round summary names every organization
ETH_KEY_VARIABLE = "FEDENV_ETH_PRIVATE_KEY"
EPISODE_START = "episode-start"


class PublicChain(Anchor, Protocol):
    """An :class:`~chains.anchor.Anchor` the ledgers can also close, and reopen from its file."""

    def episode_starts(self) -> int:
        """How many episodes were anchored (``anchor`` records of ``episode-start``)."""
        ...

    def last_time(self) -> int:
        """The logical time of the latest record (0 when there is none)."""
        ...

    def close(self) -> None: ...


class SqlitePublicChain:
    """``public.db``: created, or reopened and replayed."""

    kind = "sqlite"

    def __init__(
        self, folder: Path, msp: MSP, orderer: Identity, clock: Callable[[], int], nonce: bytes
    ) -> None:
        path = folder / PUBLIC_FILE
        config = LedgerConfig(max_payload_bytes=MAX_PAYLOAD_BYTES, synchronous="NORMAL")
        if path.exists():
            self.ledger = PublicLedger.open(path, proposer=orderer, clock=clock, config=config)
        else:
            self.ledger = PublicLedger.create(
                path, orgs=msp, proposer=orderer, clock=clock, config=config, nonce=nonce
            )

    @property
    def height(self) -> int:
        return self.ledger.height

    def anchor(self, kind: str, payload: Any, *, sender: Identity | None = None) -> str:
        return self.ledger.anchor(kind, payload, sender=sender)

    def flush(self) -> int:
        return self.ledger.flush()

    def confirmed(self, receipt: str) -> int | None:
        return self.ledger.confirmed(receipt)

    def episode_starts(self) -> int:
        return sum(
            1
            for _, tx in self.ledger.transactions("anchor")
            if tx.payload.get("event") == EPISODE_START
        )

    def last_time(self) -> int:
        return self.ledger.block(self.ledger.height).header.timestamp

    def find_anchor(self, payload: dict[str, Any]) -> str | None:
        """The id of the committed ``anchor`` record whose payload is ``payload`` (None)."""
        return next(
            (tx.id for _, tx in self.ledger.transactions("anchor") if tx.payload == payload), None
        )

    def close(self) -> None:
        self.ledger.close()


class EthereumPublicChain:
    """Anchors on Ethereum, logged in ``public-eth.db`` (created, or continued)."""

    kind = "ethereum"

    def __init__(
        self, folder: Path, msp: MSP, clock: Callable[[], int], seed: int, url: str = ""
    ) -> None:
        from chains.ethereum import FUNDING_WEI, EthereumAnchor
        from chains.ethereum_log import IN_PROCESS, AnchorLog, LoggedAnchor

        path = folder / ETHEREUM_FILE
        log = (
            AnchorLog.open(path)
            if path.exists()
            else AnchorLog.create(path, msp, max_payload_bytes=MAX_PAYLOAD_BYTES)
        )
        try:
            key = anchoring_key(seed, None if url else len(log.sessions()))
            kwargs = {"private_key": key, "max_payload_bytes": MAX_PAYLOAD_BYTES}
            if url:
                chain, funding = EthereumAnchor.connect(url, **kwargs), 0
                if chain.balance == 0 and not os.environ.get(ETH_KEY_VARIABLE):
                    chain.fund(FUNDING_WEI)  # a development node's unlocked account pays
            else:
                chain, funding = EthereumAnchor.in_process(**kwargs), FUNDING_WEI
            self.anchors = LoggedAnchor(
                chain, log, node=url or IN_PROCESS, funding=funding, clock=clock
            )
        except BaseException:
            log.close()
            raise
        self.log = log

    @property
    def height(self) -> int:
        return self.anchors.height

    def anchor(self, kind: str, payload: Any, *, sender: Identity | None = None) -> str:
        return self.anchors.anchor(kind, payload, sender=sender)

    def flush(self) -> int:
        return self.anchors.flush()

    def confirmed(self, receipt: str) -> int | None:
        return self.anchors.confirmed(receipt)

    def episode_starts(self) -> int:
        return sum(1 for _, p in self.log.records("anchor") if p.get("event") == EPISODE_START)

    def last_time(self) -> int:
        return self.log.last_time

    def close(self) -> None:
        self.anchors.close()


def anchoring_key(seed: int, session: int | None = None) -> bytes:
    """The Ethereum key the run anchors from on a node: ``FEDENV_ETH_PRIVATE_KEY``, else the
    seed's; on the ``session``-th in-process chain, the seed's for that session (fresh chains
    share a chain id: one account each keeps their transactions apart)."""
    given = os.environ.get(ETH_KEY_VARIABLE, "").strip()
    if given and session is None:
        return bytes.fromhex(given.removeprefix("0x"))
    name = "ethereum-account" if session is None else f"ethereum-account/{session}"
    return hashlib.sha256(f"fedenv/ledgers/{seed}/{name}".encode()).digest()


def open_public_chain(
    folder: Path,
    public: str,
    *,
    msp: MSP,
    orderer: Identity,
    clock: Callable[[], int],
    seed: int,
    nonce: bytes,
    url: str = "",
) -> SqlitePublicChain | EthereumPublicChain:
    """The run's public chain of kind ``public`` (``sqlite`` or ``ethereum``)."""
    if public == "ethereum":
        return EthereumPublicChain(folder, msp, clock, seed, url)
    return SqlitePublicChain(folder, msp, orderer, clock, nonce)
