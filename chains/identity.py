"""Organization identities, as a Hyperledger Fabric MSP models them, with Ed25519 X.509 certificates.

Each organization runs a certificate authority (`OrgCA`) that issues certificates to its members
and revocation lists (X.509 CRLs) of the certificates it withdrew; the member's role (peer,
client, admin, orderer) is the subject's OU, as Fabric's NodeOUs put it. Signer certificates are
end-entity certificates (BasicConstraints CA=false) with the digitalSignature key usage. Which
certificates a ledger accepts, and when, is `chains.msp.MSP`'s business.

Everything is deterministic: keys come from a seed, serial numbers are hashes, validity is given
in ledger time (`chains.clock`: seconds since the epoch; by default from the epoch to
9999-12-31) and Ed25519 signatures are deterministic, so the same seed gives the same
certificates, CRLs and signatures byte for byte.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from chains.clock import at_datetime, check_time
from chains.errors import IdentityError

__all__ = ["END_OF_TIME", "ROLES", "Identity", "IdentityError", "OrgCA", "verify_signature"]

ROLES = ("peer", "client", "admin", "orderer")
END_OF_TIME = 253402300799  # 9999-12-31T23:59:59Z: RFC 5280's "no well-defined expiry"


def _derive_key(*parts: bytes) -> bytes:
    """32 bytes of Ed25519 private key material from length-prefixed parts (no ambiguity)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


def _serial(*parts: bytes) -> int:
    """A positive serial number below 2**159 (RFC 5280: at most 20 octets) from a hash."""
    return int.from_bytes(_derive_key(b"serial", *parts)[:20], "big") >> 1 or 1


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def check_text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value or not value.isprintable() or len(value) > 128:
        raise ValueError(f"{field} must be a non-empty printable string of at most 128 "
                         f"characters, got {value!r}")
    return value


def _key_usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signer, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=not signer,
        crl_sign=not signer, encipher_only=False, decipher_only=False)


def verify_signature(public_key_bytes: bytes, data: bytes, signature: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `data` under the raw 32-byte key."""
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public_key_bytes)).verify(bytes(signature), data)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


class Identity:
    """A member of an organization: its certificate and the Ed25519 private key behind it."""

    __slots__ = ("_key", "cert", "cert_pem", "id", "msp_id", "name", "public_key_bytes", "role")

    def __init__(self, private_key_bytes: bytes, cert_pem: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(private_key_bytes)
        self.cert_pem = bytes(cert_pem)
        self.cert = x509.load_pem_x509_certificate(self.cert_pem)
        self.public_key_bytes = raw_public(self._key.public_key())
        if raw_public(self.cert.public_key()) != self.public_key_bytes:  # type: ignore[arg-type]
            raise IdentityError("bad chain", "private key does not match the certificate")
        self.msp_id = attribute(self.cert.subject, NameOID.ORGANIZATION_NAME) or ""
        self.name = attribute(self.cert.subject, NameOID.COMMON_NAME) or ""
        self.role = attribute(self.cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) or ""
        self.id = hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    @property
    def serial(self) -> int:
        return self.cert.serial_number

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature of `data` (64 bytes, deterministic)."""
        return self._key.sign(data)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Identity, (_raw_private(self._key), self.cert_pem))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Identity({self.msp_id}/{self.name}, role={self.role}, id={self.id[:12]})"


class OrgCA:
    """An organization's certificate authority: a self-signed Ed25519 CA certificate."""

    def __init__(self, msp_id: str, private_key_bytes: bytes,
                 revoked_serials: frozenset[int] = frozenset()) -> None:
        self.msp_id = check_text("msp_id", msp_id)
        self._key = Ed25519PrivateKey.from_private_bytes(private_key_bytes)
        self.revoked_serials: frozenset[int] = frozenset(revoked_serials)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, msp_id),
                             x509.NameAttribute(NameOID.COMMON_NAME, f"ca.{msp_id}")])
        public = self._key.public_key()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject).public_key(public)
            .serial_number(_serial(msp_id.encode(), raw_public(public)))
            .not_valid_before(at_datetime(0)).not_valid_after(at_datetime(END_OF_TIME))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signer=False), critical=True)
            .sign(self._key, algorithm=None)
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def create(cls, msp_id: str, *, seed: bytes) -> OrgCA:
        """The CA of `msp_id` whose key derives from `seed` (same seed => same certificate)."""
        if not isinstance(seed, (bytes, bytearray)):
            raise TypeError(f"seed must be bytes, got {type(seed).__name__}")
        check_text("msp_id", msp_id)
        return cls(msp_id, _derive_key(b"fedenv/org-ca/v1", msp_id.encode(), bytes(seed)))

    def issue(self, name: str, role: str, *, valid_from: int = 0,
              valid_until: int = END_OF_TIME) -> Identity:
        """An identity `name` of this organization with `role` in its subject OU, valid over
        the ledger times [valid_from, valid_until] (deterministic)."""
        check_text("name", name)
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        check_time(valid_from, "valid_from")
        if check_time(valid_until, "valid_until") < valid_from:
            raise ValueError(f"valid_until {valid_until} is before valid_from {valid_from}")
        window = () if (valid_from, valid_until) == (0, END_OF_TIME) else \
            (f"{valid_from}-{valid_until}".encode(),)  # another window, another key
        key_bytes = _derive_key(b"fedenv/identity/v1", _raw_private(self._key), name.encode(),
                                role.encode(), *window)
        public = Ed25519PrivateKey.from_private_bytes(key_bytes).public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.msp_id),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject).public_key(public)
            .serial_number(_serial(self.msp_id.encode(), name.encode(), role.encode(),
                                   raw_public(public)))
            .not_valid_before(at_datetime(valid_from)).not_valid_after(at_datetime(valid_until))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signer=True), critical=True)
            .sign(self._key, algorithm=None)
        )
        return Identity(key_bytes, cert.public_bytes(serialization.Encoding.PEM))

    def revoke(self, cert: x509.Certificate) -> None:
        """Add `cert` (issued by this CA) to this organization's revocation list."""
        if cert.issuer != self.cert.subject:
            raise IdentityError("bad chain", f"certificate was not issued by {self.msp_id}")
        self.revoked_serials = self.revoked_serials | {cert.serial_number}

    def crl(self, at: int = 0) -> bytes:
        """This CA's signed X.509 revocation list (DER) of every serial revoked so far, issued
        at ledger time `at`; publish it with `PublicLedger.revoke` or `MSP.add_crl`."""
        issued = at_datetime(check_time(at, "CRL time"))
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(issued).next_update(at_datetime(END_OF_TIME)))
        for serial in sorted(self.revoked_serials):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(issued).build())
        return builder.sign(self._key, algorithm=None).public_bytes(serialization.Encoding.DER)

    def __reduce__(self) -> tuple[Any, ...]:
        return (OrgCA, (self.msp_id, _raw_private(self._key), self.revoked_serials))

    def __repr__(self) -> str:
        return f"OrgCA({self.msp_id}, revoked={len(self.revoked_serials)})"


def signed_by(data_signature: bytes, tbs: bytes, algorithm: x509.ObjectIdentifier,
              issuer: x509.Certificate) -> bool:
    """True when an Ed25519 issuer signed `tbs` (a certificate's or CRL's to-be-signed bytes)."""
    key = issuer.public_key()
    if not isinstance(key, Ed25519PublicKey) or algorithm != x509.oid.SignatureAlgorithmOID.ED25519:
        return False
    try:
        key.verify(data_signature, tbs)
    except InvalidSignature:
        return False
    return True
