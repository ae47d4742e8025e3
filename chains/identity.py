"""Organization identities, as a Hyperledger Fabric MSP models them, with Ed25519 X.509 certificates.

Each organization runs a certificate authority (`OrgCA`) that issues certificates to its members;
the member's role (peer, client, admin, orderer) is the subject's OU, as Fabric's NodeOUs put it.
A membership service provider (`MSP`) holds only the CA certificates and revocation lists of the
consortium, and answers "does this certificate belong to organization X, with role R, unrevoked?".

Everything is deterministic: keys come from a seed, validity is fixed, serial numbers are hashes and
Ed25519 signatures are deterministic, so the same seed gives the same certificates byte for byte.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from chains.errors import IdentityError

__all__ = ["MSP", "ROLES", "Identity", "IdentityError", "OrgCA", "verify_signature"]

ROLES = ("peer", "client", "admin", "orderer")

# Fixed validity: no wall clock enters a certificate. 9999-12-31 is RFC 5280's "no expiry".
_NOT_BEFORE = _dt.datetime(2025, 1, 1, tzinfo=_dt.timezone.utc)
_NOT_AFTER = _dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=_dt.timezone.utc)


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


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def _check_text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ValueError(f"{field} must be a non-empty printable string, got {value!r}")
    return value


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
        self.public_key_bytes = _raw_public(self._key.public_key())
        if _raw_public(self.cert.public_key()) != self.public_key_bytes:  # type: ignore[arg-type]
            raise IdentityError("bad chain", "private key does not match the certificate")
        self.msp_id = _attribute(self.cert.subject, NameOID.ORGANIZATION_NAME) or ""
        self.name = _attribute(self.cert.subject, NameOID.COMMON_NAME) or ""
        self.role = _attribute(self.cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) or ""
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
        self.msp_id = _check_text("msp_id", msp_id)
        self._key = Ed25519PrivateKey.from_private_bytes(private_key_bytes)
        self.revoked_serials: frozenset[int] = frozenset(revoked_serials)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, msp_id),
                             x509.NameAttribute(NameOID.COMMON_NAME, f"ca.{msp_id}")])
        public = self._key.public_key()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject).public_key(public)
            .serial_number(_serial(msp_id.encode(), _raw_public(public)))
            .not_valid_before(_NOT_BEFORE).not_valid_after(_NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .sign(self._key, algorithm=None)
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def create(cls, msp_id: str, *, seed: bytes) -> OrgCA:
        """The CA of `msp_id` whose key derives from `seed` (same seed => same certificate)."""
        if not isinstance(seed, (bytes, bytearray)):
            raise TypeError(f"seed must be bytes, got {type(seed).__name__}")
        _check_text("msp_id", msp_id)
        return cls(msp_id, _derive_key(b"fedenv/org-ca/v1", msp_id.encode(), bytes(seed)))

    def issue(self, name: str, role: str) -> Identity:
        """An identity `name` of this organization with `role` in its subject OU (deterministic)."""
        _check_text("name", name)
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        key_bytes = _derive_key(b"fedenv/identity/v1", _raw_private(self._key), name.encode(),
                                role.encode())
        public = Ed25519PrivateKey.from_private_bytes(key_bytes).public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.msp_id),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject).public_key(public)
            .serial_number(_serial(self.msp_id.encode(), name.encode(), role.encode(),
                                   _raw_public(public)))
            .not_valid_before(_NOT_BEFORE).not_valid_after(_NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
            .sign(self._key, algorithm=None)
        )
        return Identity(key_bytes, cert.public_bytes(serialization.Encoding.PEM))

    def revoke(self, cert: x509.Certificate) -> None:
        """Add `cert` (issued by this CA) to this organization's revocation list."""
        if cert.issuer != self.cert.subject:
            raise IdentityError("bad chain", f"certificate was not issued by {self.msp_id}")
        self.revoked_serials = self.revoked_serials | {cert.serial_number}

    def __reduce__(self) -> tuple[Any, ...]:
        return (OrgCA, (self.msp_id, _raw_private(self._key), self.revoked_serials))

    def __repr__(self) -> str:
        return f"OrgCA({self.msp_id}, revoked={len(self.revoked_serials)})"


class _Member:
    """What the MSP caches about a certificate whose chain verified."""

    __slots__ = ("msp_id", "public_key", "role", "serial")

    def __init__(self, msp_id: str, role: str, serial: int, public_key: Ed25519PublicKey) -> None:
        self.msp_id, self.role, self.serial, self.public_key = msp_id, role, serial, public_key


class MSP:
    """Membership service: the consortium's CA certificates and revocation lists, no private keys.

    Chain checks are cached per certificate (they never change); revocation and role are checked on
    every call, so a revocation takes effect at once.
    """

    def __init__(self) -> None:
        self._cas: dict[str, x509.Certificate] = {}
        self._ca_pems: dict[str, bytes] = {}
        self._revoked: dict[str, set[int]] = {}
        self._members: dict[bytes, _Member] = {}

    @property
    def orgs(self) -> tuple[str, ...]:
        """The organizations' MSP ids, in the order they were added."""
        return tuple(self._cas)

    def ca_cert_pem(self, msp_id: str) -> bytes:
        return self._ca_pems[self._known(msp_id)]

    def revoked_serials(self, msp_id: str) -> frozenset[int]:
        return frozenset(self._revoked[self._known(msp_id)])

    def add_org(self, msp_id: str, ca_cert_pem: bytes) -> None:
        """Trust `ca_cert_pem` as the self-signed Ed25519 root of organization `msp_id`."""
        _check_text("msp_id", msp_id)
        cert = self._load(ca_cert_pem)
        if _attribute(cert.subject, NameOID.ORGANIZATION_NAME) != msp_id:
            raise IdentityError("bad chain", f"CA certificate subject O is not {msp_id!r}")
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise IdentityError("bad chain", f"certificate of {msp_id!r} is not a CA certificate")
        if not isinstance(cert.public_key(), Ed25519PublicKey) or not self._signed_by(cert, cert):
            raise IdentityError("bad chain", f"CA certificate of {msp_id!r} is not self-signed Ed25519")
        if msp_id in self._cas:
            if self._ca_pems[msp_id] == bytes(ca_cert_pem):
                return
            raise IdentityError("bad chain", f"organization {msp_id!r} already has another CA")
        self._cas[msp_id] = cert
        self._ca_pems[msp_id] = bytes(ca_cert_pem)
        self._revoked[msp_id] = set()

    def revoke(self, msp_id: str, serial: int) -> None:
        """Put certificate `serial` on the revocation list of `msp_id`."""
        if isinstance(serial, bool) or not isinstance(serial, int) or serial <= 0:
            raise ValueError(f"serial must be a positive int, got {serial!r}")
        self._revoked[self._known(msp_id)].add(serial)

    def is_revoked(self, msp_id: str, serial: int) -> bool:
        return serial in self._revoked.get(msp_id, ())

    def validate(self, cert_pem: bytes, *, role: str | None = None) -> tuple[str, str]:
        """(msp_id, role) of a certificate that chains to a known CA, has `role` and is unrevoked."""
        member = self._member(cert_pem)
        if member.serial in self._revoked[member.msp_id]:
            raise IdentityError("revoked", f"certificate serial {member.serial} of {member.msp_id}")
        if role is not None and member.role != role:
            raise IdentityError("role mismatch",
                                f"certificate has role {member.role!r}, expected {role!r}")
        return member.msp_id, member.role

    def verify(self, cert_pem: bytes, data: bytes, signature: bytes, *,
               role: str | None = None) -> tuple[str, str]:
        """Validate the certificate as `validate` does, then its Ed25519 signature of `data`.

        Returns (msp_id, role) like `validate`; raises IdentityError ("bad signature", ...).
        """
        found = self.validate(cert_pem, role=role)
        try:
            self._members[bytes(cert_pem)].public_key.verify(bytes(signature), data)
        except (InvalidSignature, ValueError, TypeError):
            raise IdentityError("bad signature",
                                "signature does not verify under the certificate key") from None
        return found

    def public_key_bytes(self, cert_pem: bytes) -> bytes:
        """Raw public key of a certificate whose chain verifies (revocation is not checked)."""
        return _raw_public(self._member(cert_pem).public_key)

    def copy(self) -> MSP:
        return MSP.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready config: {"orgs": {msp_id: ca_cert_pem}, "revoked": {msp_id: [serials]}}."""
        return {"orgs": {m: pem.decode("ascii") for m, pem in self._ca_pems.items()},
                "revoked": {m: sorted(s) for m, s in self._revoked.items() if s}}

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> MSP:
        if not isinstance(config, dict) or not isinstance(config.get("orgs"), dict):
            raise IdentityError("malformed config", "MSP config needs an 'orgs' mapping")
        msp = cls()
        for msp_id, pem in config["orgs"].items():
            msp.add_org(msp_id, pem.encode("ascii") if isinstance(pem, str) else pem)
        for msp_id, serials in (config.get("revoked") or {}).items():
            for serial in serials:
                msp.revoke(msp_id, serial)
        return msp

    def _known(self, msp_id: str) -> str:
        if msp_id not in self._cas:
            raise IdentityError("unknown organization", repr(msp_id))
        return msp_id

    @staticmethod
    def _load(cert_pem: bytes) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate(bytes(cert_pem))
        except (ValueError, TypeError) as exc:
            raise IdentityError("malformed certificate", str(exc)) from None

    @staticmethod
    def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        key = issuer.public_key()
        if not isinstance(key, Ed25519PublicKey) or cert.signature_algorithm_oid != \
                x509.oid.SignatureAlgorithmOID.ED25519:
            return False
        try:
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        except InvalidSignature:
            return False
        return True

    def _member(self, cert_pem: bytes) -> _Member:
        key = bytes(cert_pem)
        member = self._members.get(key)
        if member is not None:
            return member
        cert = self._load(key)
        msp_id = _attribute(cert.issuer, NameOID.ORGANIZATION_NAME)
        if msp_id not in self._cas:
            raise IdentityError("unknown organization", repr(msp_id))
        ca = self._cas[msp_id]
        if cert.issuer != ca.subject or not self._signed_by(cert, ca):
            raise IdentityError("bad chain", f"certificate is not signed by the CA of {msp_id}")
        if _attribute(cert.subject, NameOID.ORGANIZATION_NAME) != msp_id:
            raise IdentityError("bad chain", f"certificate subject O is not {msp_id!r}")
        role = _attribute(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
        if role not in ROLES:
            raise IdentityError("no role", f"certificate OU {role!r} is not one of {ROLES}")
        public = cert.public_key()
        if not isinstance(public, Ed25519PublicKey):
            raise IdentityError("bad chain", "certificate key is not Ed25519")
        member = _Member(msp_id, role, cert.serial_number, public)
        self._members[key] = member
        return member

    def __repr__(self) -> str:
        return f"MSP(orgs={list(self._cas)})"
