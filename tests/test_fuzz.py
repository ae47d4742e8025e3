"""Random and structured garbage against every parser of chains, with hypothesis.

Envelope parsing, policy parsing, block, header, tree-head and transaction decoding, block
validation and `verify` on mutated files must answer with a value or the package's own error
(`ChainsError`), in bounded time, and `verify` must write nothing outside a temporary folder.
Bounded for CI: a fixed, derandomized few hundred examples per test, a few seconds in all. For a
deeper, random run: CHAINS_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chains.blocks import BlockHeader, TreeHead
from chains.canonical import canonical_json, parse_canonical
from chains.errors import ChainsError
from chains.fabric import Gateway, Network, ValidationCode
from chains.fabric.block import Block
from chains.fabric.block import BlockHeader as ChannelHeader
from chains.fabric.policy import EndorsementPolicy
from chains.fabric.transaction import Envelope
from chains.identity import OrgCA
from chains.public_ledger import PublicLedger
from chains.report import VerifyLimits
from chains.transactions import Transaction
from chains.verify import verify_path

EXAMPLES = int(os.environ.get("CHAINS_FUZZ_EXAMPLES", "0")) or None
FAST = settings(max_examples=EXAMPLES or 300, deadline=2000, derandomize=EXAMPLES is None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- no write outside a temporary folder, watched by an audit hook ------------------------------
_WATCH = threading.local()
_TEMP = os.path.realpath(tempfile.gettempdir())


def _audit(event: str, args: tuple) -> None:
    if not getattr(_WATCH, "on", False):
        return
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1] or "", args[2] or 0
        writing = any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR)
        if writing and not os.path.realpath(os.fsdecode(args[0])).startswith(_TEMP):
            _WATCH.violations.append(args[0])
    elif event == "sqlite3.connect":
        database = os.fsdecode(args[0])
        if database != ":memory:" and not ("mode=ro" in database and "immutable=1" in database) and \
                not os.path.realpath(database).startswith(_TEMP):
            _WATCH.violations.append(database)


sys.addaudithook(_audit)


def watching(action):
    _WATCH.on, _WATCH.violations = True, []
    try:
        return action()
    finally:
        _WATCH.on = False
        assert _WATCH.violations == [], f"writes outside the temporary folder: {_WATCH.violations}"


def answers(parse, data):
    """`parse(data)` returns something or raises the package's own error, nothing else."""
    try:
        return parse(data)
    except ChainsError:
        return None


# --- material: one real channel and one real public ledger --------------------------------------
@pytest.fixture(scope="module")
def material(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    net = Network.create(["Org1", "Org2"], seed=5, path=folder / "fabric")
    ch = net.create_channel("ch", ["Org1", "Org2"], "OR('Org1.peer', 'Org2.peer')",
                            nonce=b"fuzz-channel")
    ch.install_chaincode("kv", {"put": lambda stub, k, v: stub.put_state(k, v)})
    gw = Gateway(ch, net.client("Org1"))
    envelope = gw.endorse(gw.propose("kv", "put", "k", "v")).envelope
    gw.submit("kv", "put", "k", "w")
    cas = [OrgCA.create(f"O{i}", seed=b"fuzz") for i in range(2)]
    with PublicLedger.create(folder / "public.db", orgs=cas, nonce=b"fuzz-ledger",
                             proposer=cas[0].issue("o", "orderer")) as ledger:
        tx_id = ledger.transact(cas[1].issue("c", "client"), "anchor",
                                {"digest": "ab" * 32, "n": 1})
        ledger.seal()
        tx = ledger.transaction(tx_id)
        block = ledger.block(1)
    yield {"net": net, "ch": ch, "envelope": envelope, "tx": tx, "block": block,
           "header": block.header.encode(), "head": block.tree_head.encode(), "folder": folder}
    net.close()


def mutations(raw: bytes) -> st.SearchStrategy[bytes]:
    """Byte flips, cuts, insertions and splices of a valid encoding."""
    position = st.integers(0, max(0, len(raw) - 1))
    junk = st.binary(min_size=1, max_size=16) | st.sampled_from(
        [b"[" * 300, b"\xff", b'"\\ud800"', b"NaN", b"1e999", b"9" * 400, b" ", b"{}", b"null"])
    return st.one_of(
        st.tuples(position, st.integers(0, 255)).map(
            lambda p: raw[:p[0]] + bytes([p[1]]) + raw[p[0] + 1:]),
        st.tuples(position, position).map(lambda p: raw[:min(p)] + raw[max(p):]),
        st.tuples(position, junk).map(lambda p: raw[:p[0]] + p[1] + raw[p[0]:]),
        st.binary(max_size=300),
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=20)


@FAST
@given(value=json_values)
def test_canonical_json_encodes_or_refuses_and_round_trips(value):
    encoded = answers(canonical_json, value)
    if encoded is not None:
        assert parse_canonical(encoded, max_bytes=1 << 20) is not None or encoded == b"null"
        assert canonical_json(json.loads(encoded)) == encoded


@FAST
@given(data=st.data())
def test_envelope_parsing_and_block_validation(material, data):
    raw = material["envelope"].raw
    mutated = data.draw(mutations(raw))
    parsed = answers(Envelope.from_bytes, mutated)
    if parsed is not None:
        assert parsed.raw == mutated  # one value, one byte string
    ch = material["ch"]
    peer = ch.peers[0]
    block = Block.cut(peer.height, peer.last_hash, peer.last_time, ch.config.chain_id,
                      (mutated,), material["net"].orderer)
    result = peer.validator.validate_block(block, peer.state, peer.tx_ids)  # commits nothing
    assert [type(c.code) for c in result.checks] == [ValidationCode]


@FAST
@given(data=st.data())
def test_public_ledger_decoders(material, data):
    tx, header, head = material["tx"], material["header"], material["head"]
    answers(lambda b: Transaction.decode(b, tx.signature, tx.cert_pem),
            data.draw(mutations(tx.body)))
    answers(BlockHeader.decode, data.draw(mutations(header)))
    answers(TreeHead.decode, data.draw(mutations(head)))
    answers(ChannelHeader.decode, data.draw(mutations(material["ch"].block(1).header_bytes)))


policy_text = st.recursive(
    st.sampled_from(["'Org1.peer'", "'Org2.member'", "'O.admin'", "'x'", "'A.b.c.client'"]),
    lambda inner: st.tuples(st.sampled_from(["AND", "OR", "OutOf(2,", "OutOf(99999,", "xor"]),
                            st.lists(inner, min_size=1, max_size=5)).map(
        lambda t: f"{t[0]}{'' if t[0].endswith(',') else '('}{', '.join(t[1])})"),
    max_leaves=40)


@FAST
@given(text=policy_text | st.text(max_size=60), signers=st.lists(st.tuples(
    st.sampled_from(["Org1", "Org2", "O", "A.b"]),
    st.sampled_from(["peer", "member", "admin", "client", "orderer"])), max_size=8))
def test_policy_parsing_and_evaluation(text, signers):
    policy = answers(EndorsementPolicy, text)
    if policy is not None:
        assert policy.satisfied_by(signers) in (True, False)
        assert EndorsementPolicy(str(policy)) == policy


@settings(max_examples=EXAMPLES or 120, deadline=10_000, derandomize=EXAMPLES is None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_verify_on_mutated_files_answers_and_writes_nothing(material, data, tmp_path_factory):
    source = Path(data.draw(st.sampled_from([str(material["folder"] / "public.db"), str(
        material["folder"] / "fabric" / "ch" / "peer0.Org1.db")])))
    raw = bytearray(source.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    folder = tmp_path_factory.mktemp("mutated")
    target = folder / source.name
    target.write_bytes(bytes(raw))
    if data.draw(st.booleans()):  # or a well-formed file with hostile rows
        conn = sqlite3.connect(target)
        try:
            table, column = data.draw(st.sampled_from([
                ("meta", "value"), ("blocks", "signature"), ("blocks", "header"),
                ("txs", "body"), ("transactions", "envelope"), ("transactions", "code"),
                ("state", "value"), ("nodes", "hash")]))
            value = data.draw(st.one_of(st.binary(max_size=40), st.text(max_size=20),
                                        st.integers(), st.none()))
            conn.execute(f"UPDATE {table} SET {column} = ?", (value,))
            conn.commit()
        except (sqlite3.DatabaseError, ValueError, OverflowError):  # broke the file for us too
            pass
        finally:
            conn.close()
    before = sorted((p.name, p.stat().st_size) for p in folder.iterdir())
    reports = watching(lambda: verify_path(folder, limits=VerifyLimits(max_seconds=20)))
    assert reports and all(r.problems or r.ok for r in reports)
    assert sorted((p.name, p.stat().st_size) for p in folder.iterdir()) == before
