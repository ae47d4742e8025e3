"""Offline verification of an Ethereum anchor log (`public-eth.db`, see `chains.ethereum_log`).

Every anchor's signed raw transaction is decoded and checked on its own: its Keccak-256 is the
stored receipt, it is signed by the session's anchoring account (the address recovered from the
signature), sent to itself with no value on the session's chain, with nonces counting up by one;
its data is a fedenv anchor record whose kind and payload are valid, whose sender is a
certificate of the consortium (the log's MSP) with a role that may send the kind, valid at the
anchor's time, and whose Ed25519 signature binds that chain, account and nonce. The stored
index columns (kind, payload, sender) must be the record's, the receipt status 1 and the blocks
must not go back. Payloads naming an `"artifact"` are checked against the files of the run
folder. Sessions of an in-process chain are then re-executed on a fresh eth-tester chain (fund
the account in block 1, send each raw transaction): each receipt (hash, block, status, gas used)
must be what the log says.

What this cannot check offline: that an in-process chain ever existed (the log is the only
record of it; re-execution shows its transactions are valid Ethereum transactions that produce
the logged receipts), and, for a node's sessions, that the node still holds those blocks (their
block hashes are kept for whoever can ask the node). Needs the `eth` extra (web3, eth-account,
eth-tester); without it the file fails with `eth-extra-missing`.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chains.artifacts import check_artifacts
from chains.canonical import canonical_json, parse_canonical
from chains.errors import ChainsError, IdentityError, MalformedError
from chains.ethereum import decode_anchor_data, signed_message
from chains.ethereum_log import ANCHOR_COLUMNS, FORMAT, IN_PROCESS, KIND, SCHEMA, LogSession
from chains.msp import MSP
from chains.report import Problem, VerifyLimits, VerifyReport
from chains.sqlite_files import check_schema
from chains.transactions import KINDS, check_payload

__all__ = ["check_ethereum_log"]


def _eth() -> tuple[Any, Any, Any]:
    import rlp
    from eth_account import Account
    from eth_utils import keccak

    return rlp, Account, keccak


def check_ethereum_log(conn: sqlite3.Connection, report: VerifyReport, root: Path | None,
                       limits: VerifyLimits, deadline: float) -> None:
    """Verify an anchor log (an open, read-only connection), filling `report`."""
    problem = check_schema(conn, SCHEMA)
    if problem:
        report.problems.append(Problem(None, "schema", problem))
        return
    conn.execute("BEGIN")
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    if meta.get("kind") != KIND or meta.get("format") != FORMAT:
        report.problems.append(Problem(None, "meta", f"kind {meta.get('kind')!r}, format "
                                                     f"{meta.get('format')!r}"))
        return
    try:
        msp = MSP.from_dict(parse_canonical(meta.get("msp", "").encode(), max_bytes=1 << 20,
                                            what="msp"))
        max_payload = int(meta.get("max_payload_bytes", ""))
    except (MalformedError, IdentityError, ValueError) as exc:
        report.problems.append(Problem(None, "meta", f"msp or max_payload_bytes: {exc}"))
        return
    try:
        eth = _eth()
    except ImportError as exc:
        report.problems.append(Problem(None, "eth-extra-missing", f"verifying Ethereum "
                                       f"transactions needs the 'eth' extra ({exc.name})"))
        return
    certs = dict(conn.execute("SELECT id, pem FROM certs"))
    sessions = [LogSession(s, c, n, a, int(f)) for s, c, n, a, f in
                conn.execute("SELECT session, chain_id, node, account, funding FROM sessions "
                             "ORDER BY session")]  # malformed values: caught by verify's caller
    artifacts: list[tuple[int, object, object]] = []
    for session in sessions:
        rows = conn.execute(f"SELECT {ANCHOR_COLUMNS} FROM anchors WHERE session = ? "
                            "ORDER BY seq", (session.session,)).fetchall()
        if time.monotonic() > deadline:
            report.problems.append(Problem(None, "timeout", "verification ran out of time"))
            return
        checked = _check_session(session, rows, eth, msp, certs, max_payload, report, artifacts)
        if checked and session.node == IN_PROCESS and not report.problems:
            report.problems.extend(_reexecute(session, rows))
    orphans = conn.execute("SELECT COUNT(*) FROM anchors WHERE session NOT IN "
                           "(SELECT session FROM sessions)").fetchone()[0]
    if orphans:
        report.problems.append(Problem(None, "orphan-transactions", f"{orphans} anchors of no "
                                                                    "session"))
    if root is not None and not report.problems:
        report.problems.extend(check_artifacts(root, artifacts, limits, deadline))
    report.head = f"anchors={report.transactions} sessions={len(sessions)}"


@dataclass
class _Cursor:
    """Where a session's checks stand: the last nonce, block and time seen."""

    nonce: int | None = None
    block: int | None = None
    time: int | None = None


def _check_session(session: LogSession, rows: list[tuple], eth: tuple[Any, Any, Any], msp: MSP,
                   certs: dict[str, bytes], max_payload: int, report: VerifyReport,
                   artifacts: list[tuple[int, object, object]]) -> bool:
    """Check each anchor of a session in order; stop at the first problem (False)."""
    cursor = _Cursor()
    for row in rows:
        report.transactions += 1
        problem = _check_anchor(row, session, cursor, eth, msp, certs, max_payload, artifacts)
        if problem is not None:
            report.problems.append(problem)
            return False
    return True


def _check_anchor(row: tuple, session: LogSession, cursor: _Cursor, eth: tuple[Any, Any, Any],
                  msp: MSP, certs: dict[str, bytes], max_payload: int,
                  artifacts: list[tuple[int, object, object]]) -> Problem | None:
    rlp, account_class, keccak = eth
    seq, _session, at, receipt, block, _hash, status, _gas, sender, kind, payload, raw = row

    def fail(reason: str, detail: str) -> Problem:
        return Problem(block, reason, f"anchor {seq}: {detail}")

    try:
        fields = rlp.decode(bytes(raw))
        signer = account_class.recover_transaction(bytes(raw))
    except Exception as exc:  # noqa: BLE001 (rlp and eth-account raise their own classes)
        return fail("eth-tx", f"not a signed legacy transaction ({type(exc).__name__})")
    if not isinstance(fields, list) or len(fields) != 9:
        return fail("eth-tx", "not a signed legacy transaction")
    tx_nonce, to, value, data, v = (_int(fields[0]), bytes(fields[3]), _int(fields[4]),
                                    bytes(fields[5]), _int(fields[6]))
    if "0x" + keccak(bytes(raw)).hex() != receipt:
        return fail("eth-tx-hash", f"the transaction hashes to 0x{keccak(bytes(raw)).hex()}, "
                                   f"the log says {receipt}")
    if signer != session.account or "0x" + to.hex() != session.account.lower() or value:
        return fail("eth-account", f"signed by {signer} to 0x{to.hex()} with value {value}; the "
                                   f"session anchors from {session.account} to itself")
    if v < 35 or (v - 35) // 2 != session.chain_id:
        return fail("eth-chain", f"v={v} is not an EIP-155 signature for chain "
                                 f"{session.chain_id}")
    if cursor.nonce is not None and tx_nonce != cursor.nonce + 1:
        return fail("eth-nonce", f"nonce {tx_nonce} follows {cursor.nonce}")
    if (cursor.block is not None and block < cursor.block) or (cursor.time is not None
                                                               and at < cursor.time):
        return fail("eth-order", f"block {block} / time {at} go back")
    if status != 1:
        return fail("eth-receipt", f"receipt status {status}")
    cursor.nonce, cursor.block, cursor.time = tx_nonce, block, at
    try:
        found_kind, found_payload, found_sender, signature = decode_anchor_data(data)
        check_payload(found_kind, found_payload, max_payload)
    except (ChainsError, ValueError) as exc:
        return fail("eth-record", str(exc))
    if (found_kind, found_sender) != (kind, sender) or canonical_json(found_payload) != payload:
        return fail("eth-index", "stored kind, sender or payload differ from the record in the "
                                 "transaction")
    if KINDS[found_kind].config:
        return fail("tx-kind", f"{found_kind!r} cannot be anchored")
    cert = certs.get(found_sender)
    if cert is None or _identity_id(cert) != found_sender:
        return fail("tx-sender", f"no certificate of sender {found_sender[:16]}")
    message = signed_message(session.chain_id, session.account, tx_nonce, found_kind,
                             found_payload)
    try:
        _, role = msp.verify(cert, message, signature, at=at)
    except IdentityError as exc:
        return fail("tx-signature" if exc.reason == "bad signature" else "tx-identity", str(exc))
    if role not in KINDS[found_kind].roles:
        return fail("tx-role", f"a {role} may not anchor {found_kind!r}")
    if "artifact" in found_payload:
        artifacts.append((block, found_payload["artifact"], found_payload.get("digest")))
    return None


def _reexecute(session: LogSession, rows: list[tuple]) -> list[Problem]:
    """Run the session's transactions on a fresh in-process chain; receipts must match."""
    try:
        from web3 import EthereumTesterProvider, Web3
    except ImportError as exc:
        return [Problem(None, "eth-extra-missing", f"re-executing needs eth-tester ({exc.name})")]
    w3 = Web3(EthereumTesterProvider())
    if int(w3.eth.chain_id) != session.chain_id:
        return [Problem(None, "eth-chain", f"session {session.session} ran on chain "
                                           f"{session.chain_id}; eth-tester is {w3.eth.chain_id}")]
    if session.funding:
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": session.account, "value": session.funding}))
    for seq, _s, _t, receipt, block, _h, status, gas_used, *_rest, raw in rows:
        try:
            found = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(bytes(raw)))
        except Exception as exc:  # noqa: BLE001 (web3 and eth-tester raise their own classes)
            return [Problem(block, "eth-receipt", f"anchor {seq}: re-execution refused it "
                                                  f"({type(exc).__name__}: {exc})")]
        mined = ("0x" + bytes(found["transactionHash"]).hex(), int(found["blockNumber"]),
                 int(found["status"]), int(found["gasUsed"]))
        if mined != (receipt, block, status, gas_used):
            return [Problem(block, "eth-receipt", f"anchor {seq}: re-executed as (hash, block, "
                                                  f"status, gas) {mined}, the log says "
                                                  f"{(receipt, block, status, gas_used)}")]
    return []


def _identity_id(cert_pem: bytes) -> str:
    """The identity id of a certificate (hex SHA-256 of its DER), "" if it does not parse."""
    try:
        cert = x509.load_pem_x509_certificate(bytes(cert_pem))
        return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    except (ValueError, TypeError):
        return ""


def _int(value: bytes) -> int:
    return int.from_bytes(bytes(value), "big")
