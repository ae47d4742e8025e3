"""Identities and certificate authorities: deterministic certificates, validity windows, CRLs."""

from __future__ import annotations

import hashlib
import pickle

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from chains.clock import at_datetime
from chains.identity import END_OF_TIME, ROLES, IdentityError, OrgCA, verify_signature


def test_same_seed_gives_identical_certificates_crls_and_signatures():
    a, b = OrgCA.create("Org1MSP", seed=b"s"), OrgCA.create("Org1MSP", seed=b"s")
    assert a.cert_pem == b.cert_pem
    ia, ib = a.issue("alice", "client"), b.issue("alice", "client")
    assert ia.cert_pem == ib.cert_pem and ia.id == ib.id
    assert ia.sign(b"msg") == ib.sign(b"msg")
    a.revoke(ia.cert)
    b.revoke(ib.cert)
    assert a.crl(at=5) == b.crl(at=5)
    other = OrgCA.create("Org1MSP", seed=b"t")
    assert other.cert_pem != a.cert_pem
    assert other.issue("alice", "client").public_key_bytes != ia.public_key_bytes


def test_signer_certificates_are_end_entities_with_digital_signature():
    ca = OrgCA.create("Org1MSP", seed=b"s")
    ident = ca.issue("peer0", "peer")
    assert ident.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value \
        == "peer"
    assert (ident.msp_id, ident.name, ident.role) == ("Org1MSP", "peer0", "peer")
    assert len(ident.public_key_bytes) == 32
    assert ident.cert.issuer == ca.cert.subject
    assert ident.id == hashlib.sha256(ident.cert.public_bytes(serialization.Encoding.DER)
                                      ).hexdigest()
    constraints = ident.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = ident.cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert constraints.critical and not constraints.value.ca
    assert usage.value.digital_signature and not usage.value.key_cert_sign


def test_validity_is_given_in_ledger_time_and_defaults_to_forever():
    ca = OrgCA.create("Org1MSP", seed=b"s")
    default = ca.issue("a", "client")
    assert default.cert.not_valid_before_utc == at_datetime(0)
    assert default.cert.not_valid_after_utc == at_datetime(END_OF_TIME)
    window = ca.issue("a", "client", valid_from=10, valid_until=20)
    assert window.cert.not_valid_before_utc == at_datetime(10)
    assert window.cert.not_valid_after_utc == at_datetime(20)
    assert window.public_key_bytes != default.public_key_bytes  # another window, another key
    with pytest.raises(ValueError, match="before valid_from"):
        ca.issue("a", "client", valid_from=20, valid_until=10)
    with pytest.raises(ValueError, match="valid_from must be an int"):
        ca.issue("a", "client", valid_from=-1)


def test_crl_lists_the_revoked_serials_signed_by_the_ca():
    ca = OrgCA.create("Org1MSP", seed=b"rev")
    bad = ca.issue("mallory", "client")
    ca.revoke(bad.cert)
    crl = x509.load_der_x509_crl(ca.crl(at=3))
    assert [r.serial_number for r in crl] == [bad.serial]
    assert crl.issuer == ca.cert.subject and crl.is_signature_valid(ca.cert.public_key())
    assert crl.last_update_utc == at_datetime(3)
    with pytest.raises(IdentityError, match="bad chain"):
        OrgCA.create("Org2MSP", seed=b"rev").revoke(bad.cert)


def test_signature_helper(monkeypatch):
    ident = OrgCA.create("Org1MSP", seed=b"s").issue("x", "client")
    sig = ident.sign(b"payload")
    assert verify_signature(ident.public_key_bytes, b"payload", sig)
    assert not verify_signature(ident.public_key_bytes, b"payloae", sig)
    assert not verify_signature(b"short", b"payload", sig)
    assert not verify_signature(ident.public_key_bytes, b"payload", "not bytes")  # type: ignore[arg-type]


def test_identity_and_ca_are_picklable():
    ca = OrgCA.create("Org1MSP", seed=b"p")
    ident = ca.issue("p", "peer")
    clone = pickle.loads(pickle.dumps(ident))
    assert clone == ident and clone.sign(b"m") == ident.sign(b"m")
    ca.revoke(ident.cert)
    again = pickle.loads(pickle.dumps(ca))
    assert again.cert_pem == ca.cert_pem and again.revoked_serials == {ident.serial}
    assert again.issue("p", "peer").cert_pem == ident.cert_pem


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="seed must be bytes"):
        OrgCA.create("Org1MSP", seed="text")  # type: ignore[arg-type]
    ca = OrgCA.create("Org1MSP", seed=b"a")
    with pytest.raises(ValueError, match="role must be one of"):
        ca.issue("x", "king")
    with pytest.raises(ValueError, match="name must be"):
        ca.issue("", "peer")
    with pytest.raises(ValueError, match="name must be"):
        ca.issue("x" * 129, "peer")
    assert ROLES == ("peer", "client", "admin", "orderer")
