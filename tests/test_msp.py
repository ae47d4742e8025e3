"""The membership service judges certificates: chain, role, validity at a time, signer
constraints, revocation by CRL. Certificates an attacker could obtain from the right CA (expired,
not yet valid, CA=true, no digitalSignature, unknown critical extensions) are refused."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from support_chains import CA_KEY, forge_cert

from chains.clock import at_datetime
from chains.identity import ROLES, IdentityError, OrgCA
from chains.msp import MSP

CA = OrgCA("Org1MSP", CA_KEY)
OTHER = OrgCA.create("Org2MSP", seed=b"msp-tests")


def msp_of(*cas: OrgCA) -> MSP:
    msp = MSP()
    for ca in cas:
        msp.add_org(ca.msp_id, ca.cert_pem)
    return msp


def forge(role: str = "client", *, ca: bool | None = False, key: bytes = CA_KEY,
          **shape) -> tuple[bytes, Ed25519PrivateKey]:
    """A certificate signed by the CA's own key, shaped as an attacker with that CA wants."""
    return forge_cert(CA, key, role, ca_flag=ca, **shape)


def test_members_validate_and_verify_with_their_role():
    msp = msp_of(CA, OTHER)
    for role in ROLES:
        ident = OTHER.issue(f"m-{role}", role)
        assert msp.validate(ident.cert_pem, at=0) == ("Org2MSP", role)
        assert msp.validate(ident.cert_pem, at=7, role=role) == ("Org2MSP", role)
        assert msp.verify(ident.cert_pem, b"x", ident.sign(b"x"), at=7, role=role)
    pem, key = forge()
    assert msp.verify(pem, b"x", key.sign(b"x"), at=5) == ("Org1MSP", "client")


def test_role_mismatch_bad_signature_unknown_org_and_garbage():
    msp = msp_of(CA, OTHER)
    client = CA.issue("c", "client")
    with pytest.raises(IdentityError, match="role mismatch") as err:
        msp.validate(client.cert_pem, at=0, role="admin")
    assert err.value.reason == "role mismatch"
    with pytest.raises(IdentityError, match="bad signature"):
        msp.verify(client.cert_pem, b"data", client.sign(b"other"), at=0)
    outsider = OrgCA.create("Org9MSP", seed=b"x").issue("x", "client")
    with pytest.raises(IdentityError, match="unknown organization: 'Org9MSP'"):
        msp.validate(outsider.cert_pem, at=0)
    for garbage in (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                    b"\xff" * 100, b"A" * 20_000, "text-not-bytes", None):
        with pytest.raises(IdentityError, match="malformed certificate"):
            msp.validate(garbage, at=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ledger time"):
        msp.validate(client.cert_pem, at="now")  # type: ignore[arg-type]


@pytest.mark.parametrize("at, reason", [(9, "not yet valid"), (21, "expired"),
                                        (10, None), (20, None), (15, None)])
def test_validity_window_is_checked_at_the_given_time(at: int, reason: str | None):
    msp = msp_of(CA)
    ident = CA.issue("temp", "client", valid_from=10, valid_until=20)
    msp.validate(ident.cert_pem, at=15)  # cached as a good chain first: time is still checked
    if reason is None:
        assert msp.verify(ident.cert_pem, b"m", ident.sign(b"m"), at=at)
    else:
        with pytest.raises(IdentityError, match=reason) as err:
            msp.verify(ident.cert_pem, b"m", ident.sign(b"m"), at=at)
        assert err.value.reason == reason


def test_a_ca_certificate_bounds_its_members_validity():
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Short"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "ca.Short")])
    ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(1)
               .not_valid_before(at_datetime(0)).not_valid_after(at_datetime(100))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .sign(key, algorithm=None))
    msp = MSP()
    msp.add_org("Short", ca_cert.public_bytes(serialization.Encoding.PEM))
    member = OrgCA("Short", bytes(32)).issue("m", "peer")  # valid "forever" on its own
    assert msp.validate(member.cert_pem, at=100)
    with pytest.raises(IdentityError, match="expired"):
        msp.validate(member.cert_pem, at=101)


@pytest.mark.parametrize("shape, message", [
    ({"ca": True}, "BasicConstraints CA=false"),
    ({"ca": None}, "BasicConstraints CA=false"),
    ({"digital_signature": False}, "digitalSignature"),
    ({"digital_signature": None}, "digitalSignature"),
    ({"extra": x509.TLSFeature([x509.TLSFeatureType.status_request])}, "critical extensions"),
])
def test_certificates_that_cannot_sign_are_refused(shape: dict, message: str):
    msp = msp_of(CA)
    pem, key = forge(**shape)
    for check in (lambda: msp.validate(pem, at=0),
                  lambda: msp.verify(pem, b"m", key.sign(b"m"), at=0)):
        with pytest.raises(IdentityError, match=message) as err:
            check()
        assert err.value.reason == "not a signer"


def test_impostor_ca_with_same_name_is_a_bad_chain():
    msp = msp_of(CA)
    impostor = OrgCA.create("Org1MSP", seed=b"attacker")
    with pytest.raises(IdentityError, match="bad chain"):
        msp.validate(impostor.issue("admin", "admin").cert_pem, at=0)
    pem, _ = forge(key=bytes(32))  # right names, wrong signing key
    with pytest.raises(IdentityError, match="bad chain"):
        msp.validate(pem, at=0)
    with pytest.raises(IdentityError, match="already has another CA"):
        msp.add_org("Org1MSP", impostor.cert_pem)


def test_add_org_rejects_leaf_and_mismatched_certificates():
    msp = MSP()
    with pytest.raises(IdentityError, match="not a CA"):
        msp.add_org("Org1MSP", CA.issue("p", "peer").cert_pem)
    with pytest.raises(IdentityError, match="subject O"):
        msp.add_org("Org2MSP", CA.cert_pem)
    with pytest.raises(IdentityError, match="bad chain"):
        msp.add_org("Org\x001", CA.cert_pem)
    msp.add_org("Org1MSP", CA.cert_pem)
    msp.add_org("Org1MSP", CA.cert_pem)  # idempotent
    assert msp.orgs == ("Org1MSP",)


def test_crl_revokes_from_now_on_and_only_those_serials():
    ca = OrgCA.create("Org1MSP", seed=b"rev")
    msp = msp_of(ca)
    bad, good = ca.issue("mallory", "client"), ca.issue("bob", "client")
    msp.verify(bad.cert_pem, b"x", bad.sign(b"x"), at=0)  # cached as valid first
    ca.revoke(bad.cert)
    assert msp.add_crl("Org1MSP", ca.crl(at=1)) == {bad.serial}
    with pytest.raises(IdentityError, match="revoked") as err:
        msp.verify(bad.cert_pem, b"x", bad.sign(b"x"), at=1)
    assert err.value.reason == "revoked"
    msp.validate(good.cert_pem, at=1)
    empty = OrgCA.create("Org1MSP", seed=b"rev").crl(at=2)  # a later CRL without the serial
    msp.add_crl("Org1MSP", empty)
    with pytest.raises(IdentityError, match="revoked"):
        msp.validate(bad.cert_pem, at=2)  # revocation only grows


def test_crls_must_come_from_the_organizations_ca():
    ca = OrgCA.create("Org1MSP", seed=b"rev")
    msp = msp_of(ca, OTHER)
    victim = ca.issue("victim", "peer")
    forger = OrgCA.create("Org1MSP", seed=b"forger")  # same name, another key
    forger.revoked_serials = frozenset({victim.serial})
    OTHER.revoked_serials = frozenset({victim.serial})
    for crl, org in ((forger.crl(), "Org1MSP"), (OTHER.crl(), "Org1MSP"),
                     (b"\x30\x03\x02\x01\x01", "Org1MSP"), (b"", "Org1MSP"),
                     (b"\x00" * 70_000, "Org1MSP"), ("hex", "Org1MSP")):
        with pytest.raises(IdentityError, match="bad crl"):
            msp.add_crl(org, crl)  # type: ignore[arg-type]
    with pytest.raises(IdentityError, match="unknown organization"):
        msp.add_crl("Nope", ca.crl())
    msp.validate(victim.cert_pem, at=0)


def test_msp_config_round_trips_with_its_crls():
    ca = OrgCA.create("Org1MSP", seed=b"cfg")
    msp = msp_of(ca, OTHER)
    victim = ca.issue("v", "peer")
    ca.revoke(victim.cert)
    msp.add_crl("Org1MSP", ca.crl())
    restored = MSP.from_dict(json.loads(json.dumps(msp.to_dict())))
    assert restored.to_dict() == msp.to_dict() and restored.orgs == ("Org1MSP", "Org2MSP")
    with pytest.raises(IdentityError, match="revoked"):
        restored.validate(victim.cert_pem, at=0)
    assert msp.copy().to_dict() == msp.to_dict()


@pytest.mark.parametrize("config", [
    {"nope": 1}, [], None, {"orgs": []}, {"orgs": {"Org1MSP": 5}},
    {"orgs": {"Org1MSP": "é"}}, {"orgs": {}, "crls": []}, {"orgs": {}, "crls": {"Org1MSP": [1]}},
    {"orgs": {}, "extra": {}}, {"orgs": {"Org1MSP": CA.cert_pem.decode()},
                                "crls": {"Org1MSP": ["zz"]}},
])
def test_malformed_msp_configs_are_identity_errors(config: object):
    with pytest.raises(IdentityError):
        MSP.from_dict(config)


def test_a_verified_signature_is_memoized_only_for_its_exact_bytes():
    """Peers in one process share the Ed25519 check of a signature (issue 15); the memo answers
    only for identical (key, signature, bytes): a tampered message, a flipped signature bit, a
    signature replayed under another member's certificate, or a revoked signer all still fail."""
    msp, other_peer = msp_of(CA, OTHER), msp_of(CA, OTHER)
    alice, bob = CA.issue("alice", "client"), CA.issue("bob", "client")
    data = b"block 7: endorsed write set"
    signature = alice.sign(data)
    assert msp.verify(alice.cert_pem, data, signature, at=3) == ("Org1MSP", "client")
    assert other_peer.verify(alice.cert_pem, data, signature, at=3) == ("Org1MSP", "client")
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    for cert, message, sig in ((alice.cert_pem, data + b"!", signature),
                               (alice.cert_pem, data, flipped),
                               (bob.cert_pem, data, signature)):
        with pytest.raises(IdentityError, match="bad signature"):
            other_peer.verify(cert, message, sig, at=3)
    ca = OrgCA.create("Org1MSP", seed=b"memo")
    first, second = msp_of(ca), msp_of(ca)
    mallory = ca.issue("mallory", "client")
    signed = mallory.sign(data)
    first.verify(mallory.cert_pem, data, signed, at=0)  # memoized as a good signature
    ca.revoke(mallory.cert)
    second.add_crl("Org1MSP", ca.crl(at=1))
    with pytest.raises(IdentityError, match="revoked"):
        second.verify(mallory.cert_pem, data, signed, at=1)
    assert first.verify(mallory.cert_pem, data, signed, at=1)  # a peer without the CRL
