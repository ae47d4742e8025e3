"""The membership service provider: which certificates a ledger accepts, for what, and when.

An `MSP` holds only the consortium's CA certificates and their revocation lists (X.509 CRLs, as
the CAs signed them), never a private key, and answers "does this certificate belong to
organization X, with role R, valid at ledger time T, unrevoked?" (`validate`) and "did it sign
these bytes?" (`verify`). A signer certificate must chain to its organization's CA (Ed25519),
carry its role in the subject OU, be an end-entity certificate (BasicConstraints CA=false) with
the digitalSignature key usage and no critical extension the MSP does not understand, and lie
within its validity period (and its CA's) at the time the caller names: a public ledger passes
the time of the block before the transaction's, a channel the block's own time (see docs).

Chain and extension checks are cached per certificate (they never change); time, revocation and
role are checked on every call, so a revocation takes effect at once. Whether a signature verifies
is a pure function of (public key, signature, signed bytes): it is memoized per process
(:func:`signature_verifies`, bounded), so the peers of a channel that live in one process (every
peer validates every block, as in Fabric) check each signature's Ed25519 equation once. Only
identical bytes hit the memo: a tampered envelope, signature or certificate is verified afresh.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from chains.clock import from_datetime
from chains.errors import IdentityError
from chains.identity import ROLES, attribute, check_text, raw_public, signed_by

__all__ = ["MAX_CERT_BYTES", "MAX_CRL_BYTES", "MSP", "signature_verifies"]

MAX_CERT_BYTES = 16 * 1024
MAX_CRL_BYTES = 64 * 1024
_UNDERSTOOD = frozenset({x509.oid.ExtensionOID.BASIC_CONSTRAINTS, x509.oid.ExtensionOID.KEY_USAGE})


class _Member:
    """What the MSP caches about a certificate whose chain and extensions verified."""

    __slots__ = ("msp_id", "not_after", "not_before", "public_key", "raw_key", "role", "serial")

    def __init__(self, msp_id: str, role: str, serial: int, public_key: Ed25519PublicKey,
                 not_before: int, not_after: int) -> None:
        self.msp_id, self.role, self.serial, self.public_key = msp_id, role, serial, public_key
        self.raw_key = raw_public(public_key)
        self.not_before, self.not_after = not_before, not_after


@functools.lru_cache(maxsize=1 << 14)
def signature_verifies(raw_key: bytes, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is the Ed25519 signature of ``data`` under the raw public key
    ``raw_key`` (memoized: a pure function of its bytes)."""
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(signature, data)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


@contextlib.contextmanager
def _parsing(reason: str) -> Iterator[None]:
    """IdentityError(reason) for anything cryptography raises while reading hostile DER (it
    parses lazily, and raises ValueError, InvalidVersion, UnsupportedAlgorithm, ...)."""
    try:
        yield
    except IdentityError:
        raise
    except Exception as exc:  # noqa: BLE001 (cryptography raises many types on bad DER)
        raise IdentityError(reason, f"{type(exc).__name__}: {exc}"[:300]) from None


def _load_cert(cert_pem: object) -> x509.Certificate:
    if not isinstance(cert_pem, (bytes, bytearray)) or len(cert_pem) > MAX_CERT_BYTES:
        raise IdentityError("malformed certificate",
                            f"a certificate is PEM bytes of at most {MAX_CERT_BYTES} bytes")
    with _parsing("malformed certificate"):
        return x509.load_pem_x509_certificate(bytes(cert_pem))


def _window(cert: x509.Certificate) -> tuple[int, int]:
    return from_datetime(cert.not_valid_before_utc), from_datetime(cert.not_valid_after_utc)


def _extension(cert: x509.Certificate, kind: type) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


class MSP:
    """Membership service: the consortium's CA certificates and revocation lists."""

    def __init__(self) -> None:
        self._cas: dict[str, x509.Certificate] = {}
        self._ca_pems: dict[str, bytes] = {}
        self._crls: dict[str, list[bytes]] = {}
        self._revoked: dict[str, set[int]] = {}
        self._members: dict[bytes, _Member] = {}

    @property
    def orgs(self) -> tuple[str, ...]:
        """The organizations' MSP ids, in the order they were added."""
        return tuple(self._cas)

    def add_org(self, msp_id: str, ca_cert_pem: bytes) -> None:
        """Trust `ca_cert_pem` as the self-signed Ed25519 root of organization `msp_id`."""
        try:
            check_text("msp_id", msp_id)
        except ValueError as exc:
            raise IdentityError("bad chain", str(exc)) from None
        cert = _load_cert(ca_cert_pem)
        with _parsing("bad chain"):
            self._check_ca(msp_id, cert)
        if msp_id in self._cas:
            if self._ca_pems[msp_id] == bytes(ca_cert_pem):
                return
            raise IdentityError("bad chain", f"organization {msp_id!r} already has another CA")
        self._cas[msp_id] = cert
        self._ca_pems[msp_id] = bytes(ca_cert_pem)
        self._crls[msp_id] = []
        self._revoked[msp_id] = set()

    @staticmethod
    def _check_ca(msp_id: str, cert: x509.Certificate) -> None:
        if attribute(cert.subject, NameOID.ORGANIZATION_NAME) != msp_id:
            raise IdentityError("bad chain", f"CA certificate subject O is not {msp_id!r}")
        constraints = _extension(cert, x509.BasicConstraints)
        if constraints is None or not constraints.ca:
            raise IdentityError("bad chain", f"certificate of {msp_id!r} is not a CA certificate")
        if not signed_by(cert.signature, cert.tbs_certificate_bytes, cert.signature_algorithm_oid,
                         cert):
            raise IdentityError("bad chain", f"CA certificate of {msp_id!r} is not self-signed "
                                             "Ed25519")
        _window(cert)  # readable validity

    def add_crl(self, msp_id: str, crl_der: bytes) -> frozenset[int]:
        """Apply a revocation list that the CA of `msp_id` signed; returns its serials.

        Revocation only grows: a CRL that omits a serial revoked before does not restore it.
        """
        ca = self._cas[self._known(msp_id)]
        if not isinstance(crl_der, (bytes, bytearray)) or not 0 < len(crl_der) <= MAX_CRL_BYTES:
            raise IdentityError("bad crl", f"a CRL is DER bytes of at most {MAX_CRL_BYTES} bytes")
        with _parsing("bad crl"):
            crl = x509.load_der_x509_crl(bytes(crl_der))
            serials = frozenset(entry.serial_number for entry in crl)
            valid = crl.issuer == ca.subject and signed_by(
                crl.signature, crl.tbs_certlist_bytes, crl.signature_algorithm_oid, ca)
        if not valid:
            raise IdentityError("bad crl", f"CRL is not signed by the CA of {msp_id}")
        if bytes(crl_der) not in self._crls[msp_id]:
            self._crls[msp_id].append(bytes(crl_der))
        self._revoked[msp_id] |= serials
        return serials

    def validate(self, cert_pem: bytes, *, at: int, role: str | None = None) -> tuple[str, str]:
        """(msp_id, role) of a certificate that chains to a known CA, is valid at ledger time
        `at`, has `role` and is unrevoked; else IdentityError naming which."""
        member = self._member(cert_pem)
        if at.__class__ is not int:
            raise TypeError(f"at must be a ledger time (int), got {type(at).__name__}")
        if at < member.not_before:
            raise IdentityError("not yet valid", f"certificate of {member.msp_id} is valid from "
                                                 f"{member.not_before}, the time is {at}")
        if at > member.not_after:
            raise IdentityError("expired", f"certificate of {member.msp_id} expired at "
                                           f"{member.not_after}, the time is {at}")
        if member.serial in self._revoked[member.msp_id]:
            raise IdentityError("revoked", f"certificate serial {member.serial} of {member.msp_id}")
        if role is not None and member.role != role:
            raise IdentityError("role mismatch",
                                f"certificate has role {member.role!r}, expected {role!r}")
        return member.msp_id, member.role

    def verify(self, cert_pem: bytes, data: bytes, signature: bytes, *, at: int,
               role: str | None = None) -> tuple[str, str]:
        """Validate the certificate as `validate` does, then its Ed25519 signature of `data`.

        Returns (msp_id, role) like `validate`; raises IdentityError ("bad signature", ...).
        """
        found = self.validate(cert_pem, at=at, role=role)
        try:
            ok = signature_verifies(self._members[bytes(cert_pem)].raw_key, bytes(signature),
                                    bytes(data))
        except TypeError:  # not bytes-like
            ok = False
        if not ok:
            raise IdentityError("bad signature",
                                "signature does not verify under the certificate key")
        return found

    def public_key_bytes(self, cert_pem: bytes) -> bytes:
        """Raw public key of a certificate whose chain verifies (time and revocation unchecked)."""
        return raw_public(self._member(cert_pem).public_key)

    def copy(self) -> MSP:
        return MSP.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready config: {"orgs": {msp_id: ca_cert_pem}, "crls": {msp_id: [crl DER hex]}}
        ("crls" only when some organization published one)."""
        config: dict[str, Any] = {"orgs": {m: pem.decode("ascii") for m, pem in
                                           self._ca_pems.items()}}
        crls = {m: [c.hex() for c in lists] for m, lists in self._crls.items() if lists}
        if crls:
            config["crls"] = crls
        return config

    @classmethod
    def from_dict(cls, config: object) -> MSP:
        """The MSP of a `to_dict` config; IdentityError ("malformed config", ...) otherwise."""
        if not isinstance(config, dict) or not isinstance(config.get("orgs"), dict) \
                or not set(config) <= {"orgs", "crls"} \
                or not isinstance(config.get("crls", {}), dict):
            raise IdentityError("malformed config", "MSP config is {'orgs': {...}, 'crls': {...}}")
        msp = cls()
        for msp_id, pem in config["orgs"].items():
            if not isinstance(pem, str) or not pem.isascii():
                raise IdentityError("malformed config", f"CA certificate of {msp_id!r} is not "
                                                        "ASCII PEM text")
            msp.add_org(msp_id, pem.encode("ascii"))
        for msp_id, crls in config.get("crls", {}).items():
            if not isinstance(crls, list) or not all(isinstance(c, str) for c in crls):
                raise IdentityError("malformed config", f"CRLs of {msp_id!r} are not hex strings")
            for crl in crls:
                try:
                    der = bytes.fromhex(crl)
                except ValueError:
                    raise IdentityError("malformed config", f"a CRL of {msp_id!r} is not hex") \
                        from None
                msp.add_crl(msp_id, der)
        return msp

    def _known(self, msp_id: str) -> str:
        if msp_id not in self._cas:
            raise IdentityError("unknown organization", repr(msp_id))
        return msp_id

    def _member(self, cert_pem: bytes) -> _Member:
        member = self._members.get(cert_pem) if isinstance(cert_pem, bytes) else None
        if member is not None:
            return member
        with _parsing("malformed certificate"):
            member = self._read_member(_load_cert(cert_pem))
        self._members[bytes(cert_pem)] = member  # type: ignore[arg-type]
        return member

    def _read_member(self, cert: x509.Certificate) -> _Member:
        msp_id = attribute(cert.issuer, NameOID.ORGANIZATION_NAME)
        if msp_id not in self._cas:
            raise IdentityError("unknown organization", repr(msp_id))
        ca = self._cas[msp_id]
        if cert.issuer != ca.subject or not signed_by(
                cert.signature, cert.tbs_certificate_bytes, cert.signature_algorithm_oid, ca):
            raise IdentityError("bad chain", f"certificate is not signed by the CA of {msp_id}")
        if attribute(cert.subject, NameOID.ORGANIZATION_NAME) != msp_id:
            raise IdentityError("bad chain", f"certificate subject O is not {msp_id!r}")
        role = attribute(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
        if role not in ROLES:
            raise IdentityError("no role", f"certificate OU {role!r} is not one of {ROLES}")
        public = cert.public_key()
        if not isinstance(public, Ed25519PublicKey):
            raise IdentityError("bad chain", "certificate key is not Ed25519")
        self._check_signer(cert)
        (ca_from, ca_until), (cert_from, cert_until) = _window(ca), _window(cert)
        return _Member(msp_id, role, cert.serial_number, public, max(ca_from, cert_from),
                       min(ca_until, cert_until))

    @staticmethod
    def _check_signer(cert: x509.Certificate) -> None:
        constraints = _extension(cert, x509.BasicConstraints)
        if constraints is None or constraints.ca:
            raise IdentityError("not a signer", "certificate is not an end-entity certificate "
                                                "(BasicConstraints CA=false)")
        usage = _extension(cert, x509.KeyUsage)
        if usage is None or not usage.digital_signature:
            raise IdentityError("not a signer", "certificate lacks the digitalSignature key usage")
        unknown = [ext.oid.dotted_string for ext in cert.extensions
                   if ext.critical and ext.oid not in _UNDERSTOOD]
        if unknown:
            raise IdentityError("not a signer", f"certificate has critical extensions {unknown}")

    def __repr__(self) -> str:
        return f"MSP(orgs={list(self._cas)})"
