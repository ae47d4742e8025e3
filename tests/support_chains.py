"""Material for the chains tests: forged certificates, an in-memory Merkle tree.

`forge_cert` signs, with the CA's own key, a certificate shaped however the attacker likes (CA=true,
no digitalSignature, an odd validity), so tests can check that the membership service refuses
every shape that is not a signer's, at submit and in verify.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from chains.clock import at_datetime
from chains.identity import END_OF_TIME, Identity, OrgCA
from chains.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    range_hash,
)

CA_KEY = bytes(range(32))


def forge_cert(ca: OrgCA, ca_key: bytes, role: str = "client", *, name: str = "forged",
               ca_flag: bool | None = False, digital_signature: bool | None = True,
               valid: tuple[int, int] = (0, END_OF_TIME),
               extra: x509.ExtensionType | None = None,
               subject_key: bytes = bytes(31) + b"\x07") -> tuple[bytes, Ed25519PrivateKey]:
    """(certificate PEM, subject private key): signed by `ca_key` in the name of `ca`."""
    subject = Ed25519PrivateKey.from_private_bytes(subject_key)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([
                   x509.NameAttribute(NameOID.ORGANIZATION_NAME, ca.msp_id),
                   x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                   x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(ca.cert.subject).public_key(subject.public_key())
               .serial_number(4242).not_valid_before(at_datetime(valid[0]))
               .not_valid_after(at_datetime(valid[1])))
    if ca_flag is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None),
                                        critical=True)
    if digital_signature is not None:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=digital_signature, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            key_cert_sign=not digital_signature, crl_sign=False, encipher_only=False,
            decipher_only=False), critical=True)
    if extra is not None:
        builder = builder.add_extension(extra, critical=True)
    cert = builder.sign(Ed25519PrivateKey.from_private_bytes(ca_key), algorithm=None)
    return cert.public_bytes(serialization.Encoding.PEM), subject


def forged_identity(ca: OrgCA, ca_key: bytes, role: str = "client", **shape) -> Identity:
    """An `Identity` whose certificate is `forge_cert(...)`: it can sign anything."""
    pem, key = forge_cert(ca, ca_key, role, **shape)
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return Identity(raw, pem)


class MemoryTree:
    """A reference in-memory RFC 9162 log: append leaf data, ask roots and proofs for any
    earlier size."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        self._frontier = Frontier()
        for data in leaves:
            self.append(data)

    @property
    def size(self) -> int:
        return self._frontier.size

    def append(self, data: bytes) -> bytes:
        """Append leaf `data`; returns its leaf hash."""
        h = leaf_hash(data)
        for level, _, value in self._frontier.append(h):
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(value)
        return h

    def node(self, level: int, index: int) -> bytes:
        return self._levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is outside 0..{self.size}")
        return range_hash(0, size, self.node) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self.size if size is None else size, self.node)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        size2 = self.size if size2 is None else size2
        if size2 > self.size:
            raise ValueError(f"tree size {size2} is beyond the log's size {self.size}")
        return consistency_proof(size1, size2, self.node)
