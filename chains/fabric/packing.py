"""How channel files store a block compactly: one compressed body per block, certificates once.

What is signed and hashed never changes: a block's header bytes and its envelopes are the
canonical bytes of `chains.fabric.block`; only their storage does. A `blocks` row of a peer's or
the orderer's file (`chains.fabric.store`, `chains.fabric.orderer_store`) holds

    number      the block number (its hash, the SHA-256 of the header bytes, is not stored:
                a reader hashes the header it unpacks)
    orderer     the id of the ordering node's certificate in the file's `certificates` table
    signature   the orderer's signature of the header bytes, raw
    dictionary  how many `certificates` the body's compression dictionary holds
    body        raw DEFLATE (zlib, level 9) of the header bytes and then each envelope, each
                preceded by its length (4 bytes big-endian), with a preset dictionary; an
                envelope whose length has the top bit set (`STRIPPED`) is stored without the
                two fields a reader derives (`strip_derived`): its header's `tx_id` (SHA-256
                of nonce and creator) and its response's `proposal_hash` (SHA-256 of the
                header); a part whose length has the next bit set (`BINARY`) holds its long
                hex strings as raw bytes (`hex_to_raw`: hashes, signatures, nonces, values);
                the header's part with `STRIPPED` set is stored without its `data_hash`
                (SHA-256 over the envelopes' SHA-256s, recomputed from them), and an
                envelope's public write whose value is the hex of one of its proposal's
                arguments is stored as `{"arg": i}` (`strip_derived`)

and `certificates(id, pem)` holds every certificate once, in the order the file first met it
(the ordering node's, and each one an envelope carries as creator or endorser). The preset
dictionary of a body with `dictionary = k` is `TEMPLATE` followed by certificates 1..k as they
appear inside canonical JSON (newlines escaped), and for blocks 1, 2, ... the channel's chain
id (as the genesis block's header names it, in its raw form), its last 32 KiB: an envelope's
certificates and chain id compress to a few bytes, and its JSON keys too.

Nothing in a row is trusted: a reader recomputes every hash from the decompressed bytes, so a
tampered body, dictionary or certificate shows as a block whose data hash, header or signature
does not verify; a body that does not decompress, or a reference to a certificate the file
lacks, is a `MalformedError` naming the block.
"""

from __future__ import annotations

import re
import sqlite3
import zlib
from collections.abc import Iterable
from typing import Any

from chains.canonical import canonical_json, encode_parsed, parse_json
from chains.errors import MalformedError
from chains.fabric.block import Block, BlockHeader, data_hash
from chains.fabric.codec import sha256_hex

__all__ = ["BINARY", "BLOCK_COLUMNS", "STRIPPED", "BlockPacking", "hex_to_raw", "join_envelopes",
           "raw_to_hex", "restore_data_hash", "restore_derived", "split_envelopes", "strip_data_hash",
           "strip_derived"]

TEMPLATE = (
    b'{"chain":"","data_hash":"","number":,"previous_hash":"","timestamp":}'
    b'{"endorsements":[{"endorser":"","signature":""}],"payload":{"body":{"payload":"",'
    b'"proposal_hash":"","rwset":{"collections":{"reads":[],"writes":[["","put",""]]}},'
    b'"ns":"","ranges":[],"reads":[],"writes":[[""]]},"sequence":1,"status":200},'
    b'"header":{"args":[""],"chain":"","chaincode":"","channel":"","creator":"","fn":"",'
    b'"nonce":"","timestamp":,"tx_id":"","type":"endorser_tx"}},"signature":""}'
)
BLOCK_COLUMNS = "number, orderer, signature, dictionary, body"
MAX_BODY_BYTES = 64 << 20  # a block's decompressed bytes (64 envelopes of up to 4 MiB, framed)
_WINDOW = 32 << 10  # DEFLATE reaches back 32 KiB: a longer dictionary's tail is what counts
_JSON_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----(?:\\n|[A-Za-z0-9+/= ]){1,16000}?"
                        rb"-----END CERTIFICATE-----\\n")


STRIPPED = 1 << 31  # a part's length flag: stored without its derived fields
BINARY = 1 << 30  # a part's length flag: its long hex strings stored as raw bytes
_FLAGS = STRIPPED | BINARY
_HEX_STRING = re.compile(rb'"((?:[0-9a-f]{2}){16,8000000})"')  # 16 bytes to 8 MB, as hex
_RAW = b'"\x01'  # opens a string stored raw: 3 bytes of length, the bytes, a closing quote


def join_envelopes(parts: Iterable[bytes], flags: Iterable[int] = ()) -> bytes:
    """`parts` as one BLOB: each preceded by its length (4 bytes, big-endian) with its `flags`
    (`STRIPPED`, `BINARY`) in the top bits."""
    marks = list(flags)
    return b"".join((len(p) | (marks[i] if i < len(marks) else 0)).to_bytes(4, "big") + p
                    for i, p in enumerate(parts))


def split_envelopes(blob: bytes) -> tuple[tuple[bytes, int], ...]:
    """The (part, flags) of a `join_envelopes` BLOB; MalformedError if the framing is
    broken."""
    out, at = [], 0
    while at < len(blob):
        field = int.from_bytes(blob[at:at + 4], "big")
        size = field & ~_FLAGS
        if at + 4 + size > len(blob) or len(blob) - at < 4:
            raise MalformedError("the envelopes of a block are cut short")
        out.append((blob[at + 4:at + 4 + size], field & _FLAGS))
        at += 4 + size
    return tuple(out)


def hex_to_raw(part: bytes) -> bytes | None:
    """`part` (canonical JSON) with each string of 32 or more lowercase hex digits (an even
    number) stored as `"\x01` + its length (3 bytes) + its bytes + `"`; None if `part` holds
    a \x01 byte already (canonical JSON never does: it escapes control characters) or no such
    string. `raw_to_hex` gives `part` back exactly."""
    if b"\x01" in part:
        return None
    packed, count = _HEX_STRING.subn(
        lambda m: _RAW + (len(m.group(1)) // 2).to_bytes(3, "big") + bytes.fromhex(
            m.group(1).decode()) + b'"', part)
    return packed if count else None


def raw_to_hex(packed: bytes) -> bytes:
    """The part `hex_to_raw` stored; MalformedError if a raw string is cut short."""
    out, at = [], 0
    while True:
        found = packed.find(_RAW, at)
        if found < 0:
            out.append(packed[at:])
            return b"".join(out)
        start = found + len(_RAW) + 3
        size = int.from_bytes(packed[found + 2:start], "big")
        if len(packed) < start + size + 1 or packed[start + size:start + size + 1] != b'"':
            raise MalformedError("a string stored raw is cut short")
        out += [packed[at:found], b'"', packed[start:start + size].hex().encode(), b'"']
        at = start + size + 1


def _derived(header: dict[str, Any]) -> tuple[str, str]:
    """(tx_id, proposal hash) of an envelope's header without its tx_id."""
    tx_id = sha256_hex(bytes.fromhex(header["nonce"]), header["creator"].encode())
    return tx_id, sha256_hex(canonical_json({**header, "tx_id": tx_id}))


def strip_derived(envelope: bytes) -> bytes | None:
    """The envelope without its header's `tx_id` and its response's `proposal_hash`, when both
    are what they derive from and `restore_derived` gives back exactly `envelope`; else None
    (stored whole)."""
    try:
        data = parse_json(envelope, max_bytes=len(envelope))
        header, body = data["payload"]["header"], data["payload"]["body"]
        tx_id = header.pop("tx_id")
        if (tx_id, body.pop("proposal_hash")) != _derived(header):
            return None
        args = [a.encode().hex() for a in header["args"]]
        for write in body["rwset"]["writes"]:
            if len(write) == 2 and write[1] in args:
                write[1] = {"arg": args.index(write[1])}
        stripped = encode_parsed(data)
        return stripped if restore_derived(stripped) == envelope else None
    except (MalformedError, KeyError, TypeError, ValueError, AttributeError):
        return None


def restore_derived(stripped: bytes) -> bytes:
    """The envelope `strip_derived` stored; MalformedError if it is not a stripped one."""
    try:
        data = parse_json(stripped, max_bytes=len(stripped))
        header, body = data["payload"]["header"], data["payload"]["body"]
        if "tx_id" in header or "proposal_hash" in body:
            raise MalformedError("a stripped envelope holds a derived field")
        for write in body["rwset"]["writes"]:
            if isinstance(write, list) and len(write) == 2 and isinstance(write[1], dict):
                index = write[1]["arg"]
                if type(index) is not int or not 0 <= index < len(header["args"]):
                    raise MalformedError("a stripped write names no argument of its proposal")
                write[1] = header["args"][index].encode().hex()
        header["tx_id"], body["proposal_hash"] = _derived(header)
        return canonical_json(data)
    except MalformedError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedError(f"a stripped envelope is not an endorser transaction's "
                             f"({type(exc).__name__})") from None


def strip_data_hash(header: bytes, envelopes: tuple[bytes, ...]) -> bytes | None:
    """The header without its `data_hash` when that is the envelopes' and `restore_data_hash`
    gives back exactly `header`; else None (stored whole)."""
    try:
        fields = parse_json(header, max_bytes=len(header))
        if fields.pop("data_hash") != data_hash(envelopes):
            return None
        stripped = encode_parsed(fields)
        return stripped if restore_data_hash(stripped, envelopes) == header else None
    except (MalformedError, KeyError, TypeError, AttributeError):
        return None


def restore_data_hash(stripped: bytes, envelopes: tuple[bytes, ...]) -> bytes:
    """The header `strip_data_hash` stored; MalformedError if it is not a stripped one."""
    fields = parse_json(stripped, max_bytes=len(stripped))
    if not isinstance(fields, dict) or "data_hash" in fields:
        raise MalformedError("a stripped header is no object without a data hash")
    fields["data_hash"] = data_hash(envelopes)
    return canonical_json(fields)


def deflate(data: bytes, dictionary: bytes) -> bytes:
    """Raw DEFLATE (level 9) of `data` with the preset `dictionary`."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)
    return packer.compress(data) + packer.flush()


def _in_json(pem: bytes) -> bytes:
    return pem.replace(b"\n", b"\\n")


def _dictionary(certificates: list[bytes], chain: str | None = None) -> bytes:
    """`TEMPLATE`, then `certificates` inside canonical JSON, then the chain id as `hex_to_raw`
    stores it (if given), the last 32 KiB (built from the end, so a file of many certificates
    costs no more per dictionary)."""
    last = b"" if chain is None else _RAW + (32).to_bytes(3, "big") + bytes.fromhex(chain) + b'"'
    tail: list[bytes] = []
    size = len(last)
    for pem in reversed(certificates):
        if size >= _WINDOW:
            break
        tail.append(_in_json(pem))
        size += len(tail[-1])
    return (TEMPLATE + b"".join(reversed(tail)) + last)[-_WINDOW:]


def _restored(part: bytes, flags: int) -> bytes:
    """A stored envelope as it was signed (see `BINARY`, `STRIPPED`)."""
    part = raw_to_hex(part) if flags & BINARY else part
    return restore_derived(part) if flags & STRIPPED else part


class BlockPacking:
    """The certificates of one channel file, and packing/unpacking its `blocks` rows."""

    def __init__(self, certificates: Iterable[bytes] = (), chain: str | None = None) -> None:
        self.certificates: list[bytes] = list(certificates)
        self.chain = chain  # the genesis block's chain id: in the dictionary of blocks 1, 2, ...
        self._ids = {pem: i + 1 for i, pem in enumerate(self.certificates)}
        self._dictionaries: dict[tuple[int, bool], bytes] = {}

    @classmethod
    def of(cls, conn: sqlite3.Connection) -> BlockPacking:
        """The packing of the file `conn` is open on (the chain id read from its genesis block,
        None if that is absent or garbled: then only block 0 unpacks); MalformedError if its
        certificates table is not ids 1, 2, ... of distinct BLOBs."""
        pems = []
        for expected, (cert_id, pem) in enumerate(
                conn.execute("SELECT id, pem FROM certificates ORDER BY id"), 1):
            if cert_id != expected or type(pem) is not bytes:
                raise MalformedError(f"certificates row {str(cert_id)[:20]} is missing or "
                                     "mistyped")
            pems.append(pem)
        if len(set(pems)) != len(pems):
            raise MalformedError("the certificates table holds one certificate twice")
        packing = cls(pems)
        genesis = conn.execute(f"SELECT {BLOCK_COLUMNS} FROM blocks WHERE number = 0").fetchone()
        try:
            packing.chain = None if genesis is None else packing.unpack(genesis).header.chain
        except MalformedError:
            pass  # block 0 is named by whoever unpacks it
        return packing

    def dictionary(self, size: int, number: int = 0) -> bytes:
        """The preset dictionary of block `number`'s body, packed when the file held `size`
        certificates (MalformedError for a block above 0 while the chain id is unknown)."""
        key = (size, number > 0)
        if key not in self._dictionaries:
            if number > 0 and self.chain is None:
                raise MalformedError(f"block {number}: the file has no readable genesis block "
                                     "(its chain id is in the block's dictionary)")
            self._dictionaries[key] = _dictionary(self.certificates[:size],
                                                  self.chain if number > 0 else None)
        return self._dictionaries[key]

    def pack(self, block: Block) -> tuple[tuple[int, bytes, int, bytes, int, bytes],
                                          list[tuple[int, bytes]]]:
        """(the block's `blocks` row, the `certificates` rows it adds); `accept` the latter
        once they are committed."""
        new: list[tuple[int, bytes]] = []
        known = dict(self._ids)
        found = [m.replace(b"\\n", b"\n")
                 for e in block.envelopes for m in _JSON_CERT.findall(e)]
        for pem in (block.orderer, *found):
            if pem not in known:
                known[pem] = len(known) + 1
                new.append((known[pem], pem))
        size = len(known)
        if block.number == 0:
            self.chain = block.header.chain
            self._dictionaries.clear()
        dictionary = (self.dictionary(size, block.number) if not new else _dictionary(
            [*self.certificates, *(pem for _, pem in new)],
            self.chain if block.number > 0 else None))
        body = self._deflate(block.header_bytes, block.envelopes, dictionary)
        row = (block.number, known[block.orderer], block.signature, size, body)
        return row, new

    def body(self, header: bytes, envelopes: Iterable[bytes], size: int, number: int = 0
             ) -> bytes:
        """The body of block `number` with these header bytes and envelopes, packed with
        dictionary `size` (what `pack` stores; for tools and tests that rewrite a row)."""
        return self._deflate(header, envelopes, self.dictionary(size, number))

    @staticmethod
    def _deflate(header: bytes, envelopes: Iterable[bytes], dictionary: bytes) -> bytes:
        parts, flags = [], []
        envelopes = tuple(envelopes)
        for index, part in enumerate((header, *envelopes)):
            flag = 0
            stripped = strip_derived(part) if index else strip_data_hash(part, envelopes)
            if stripped is not None:
                part, flag = stripped, STRIPPED
            raw = hex_to_raw(part)
            if raw is not None:
                part, flag = raw, flag | BINARY
            parts.append(part)
            flags.append(flag)
        return deflate(join_envelopes(parts, flags), dictionary)

    def accept(self, new: list[tuple[int, bytes]]) -> None:
        """Take the committed certificate rows `new` (from `pack`) into the cache."""
        for cert_id, pem in new:
            if cert_id == len(self.certificates) + 1:
                self.certificates.append(pem)
                self._ids[pem] = cert_id

    def unpack(self, row: tuple) -> Block:
        """The Block of a `blocks` row (number, orderer, signature, dictionary, body);
        MalformedError naming the block for a mistyped row, a body that does not decompress or
        a certificate the file lacks."""
        number, orderer, signature, size, body = row[:5]
        where = f"block {str(number)[:20]}"
        if not (type(number) is int and type(orderer) is int
                and type(signature) is bytes and type(size) is int and type(body) is bytes):
            raise MalformedError(f"{where}: the blocks row has mistyped columns")
        if not 1 <= orderer <= len(self.certificates):
            raise MalformedError(f"{where}: its orderer certificate #{orderer} is not in the "
                                 f"file's certificates ({len(self.certificates)})")
        if not 0 <= size <= len(self.certificates):
            raise MalformedError(f"{where}: its dictionary names {size} certificates, the file "
                                 f"holds {len(self.certificates)}")
        try:
            dictionary = self.dictionary(size, number)
        except MalformedError as exc:
            raise MalformedError(f"{where}: {exc}") from None
        unpacker = zlib.decompressobj(-15, dictionary)
        try:
            data = unpacker.decompress(body, MAX_BODY_BYTES)
        except zlib.error as exc:
            raise MalformedError(f"{where}: the body does not decompress ({exc})") from None
        if not unpacker.eof or unpacker.unconsumed_tail or unpacker.unused_data:
            raise MalformedError(f"{where}: the body is cut short, has bytes after its end or "
                                 f"exceeds {MAX_BODY_BYTES} bytes")
        try:
            (header, flag), *parts = split_envelopes(data)
            envelopes = tuple(_restored(e, flags) for e, flags in parts)
            header = raw_to_hex(header) if flag & BINARY else header
            header = restore_data_hash(header, envelopes) if flag & STRIPPED else header
            decoded = BlockHeader.decode(header)
        except MalformedError as exc:
            raise MalformedError(f"{where}: {exc}") from None
        except ValueError:
            raise MalformedError(f"{where}: the body holds no header") from None
        return Block(decoded, tuple(envelopes), self.certificates[orderer - 1], signature)
