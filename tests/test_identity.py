from __future__ import annotations

import pickle

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from chains.identity import MSP, ROLES, IdentityError, OrgCA, verify_signature


@pytest.fixture(scope="module")
def consortium():
    cas = {m: OrgCA.create(m, seed=b"seed-1") for m in ("Org1MSP", "Org2MSP")}
    msp = MSP()
    for ca in cas.values():
        msp.add_org(ca.msp_id, ca.cert_pem)
    return cas, msp


def test_same_seed_gives_identical_certificates_and_signatures():
    a, b = OrgCA.create("Org1MSP", seed=b"s"), OrgCA.create("Org1MSP", seed=b"s")
    assert a.cert_pem == b.cert_pem
    ia, ib = a.issue("alice", "client"), b.issue("alice", "client")
    assert ia.cert_pem == ib.cert_pem and ia.id == ib.id
    assert ia.sign(b"msg") == ib.sign(b"msg")
    other = OrgCA.create("Org1MSP", seed=b"t")
    assert other.cert_pem != a.cert_pem
    assert other.issue("alice", "client").public_key_bytes != ia.public_key_bytes


def test_role_lives_in_subject_ou_and_key_is_ed25519(consortium):
    cas, _ = consortium
    ident = cas["Org1MSP"].issue("peer0", "peer")
    assert ident.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "peer"
    assert (ident.msp_id, ident.name, ident.role) == ("Org1MSP", "peer0", "peer")
    assert len(ident.public_key_bytes) == 32
    assert ident.cert.issuer == cas["Org1MSP"].cert.subject
    der = ident.cert.public_bytes(serialization.Encoding.DER)
    import hashlib
    assert ident.id == hashlib.sha256(der).hexdigest()


def test_validate_and_verify_accept_members(consortium):
    cas, msp = consortium
    for role in ROLES:
        ident = cas["Org2MSP"].issue(f"m-{role}", role)
        assert msp.validate(ident.cert_pem) == ("Org2MSP", role)
        assert msp.validate(ident.cert_pem, role=role) == ("Org2MSP", role)
        sig = ident.sign(b"payload")
        msp.verify(ident.cert_pem, b"payload", sig, role=role)
        assert verify_signature(ident.public_key_bytes, b"payload", sig)
        assert not verify_signature(ident.public_key_bytes, b"payloae", sig)


def test_role_mismatch_bad_signature_and_unknown_org(consortium):
    cas, msp = consortium
    client = cas["Org1MSP"].issue("c", "client")
    with pytest.raises(IdentityError, match="role mismatch") as err:
        msp.validate(client.cert_pem, role="admin")
    assert err.value.reason == "role mismatch"
    with pytest.raises(IdentityError, match="bad signature"):
        msp.verify(client.cert_pem, b"data", client.sign(b"other"))
    outsider = OrgCA.create("Org9MSP", seed=b"seed-1").issue("x", "client")
    with pytest.raises(IdentityError, match="unknown organization: 'Org9MSP'"):
        msp.validate(outsider.cert_pem)
    with pytest.raises(IdentityError, match="malformed certificate"):
        msp.validate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_impostor_ca_with_same_name_is_a_bad_chain(consortium):
    _, msp = consortium
    impostor = OrgCA.create("Org1MSP", seed=b"attacker").issue("admin", "admin")
    with pytest.raises(IdentityError, match="bad chain"):
        msp.validate(impostor.cert_pem)
    with pytest.raises(IdentityError, match="already has another CA"):
        msp.add_org("Org1MSP", OrgCA.create("Org1MSP", seed=b"attacker").cert_pem)


def test_add_org_rejects_leaf_and_mismatched_certificates(consortium):
    cas, _ = consortium
    msp = MSP()
    with pytest.raises(IdentityError, match="not a CA"):
        msp.add_org("Org1MSP", cas["Org1MSP"].issue("p", "peer").cert_pem)
    with pytest.raises(IdentityError, match="subject O"):
        msp.add_org("Org2MSP", cas["Org1MSP"].cert_pem)
    msp.add_org("Org1MSP", cas["Org1MSP"].cert_pem)
    msp.add_org("Org1MSP", cas["Org1MSP"].cert_pem)  # idempotent
    assert msp.orgs == ("Org1MSP",)


def test_revocation_takes_effect_immediately_and_only_for_that_cert():
    ca = OrgCA.create("Org1MSP", seed=b"rev")
    msp = MSP()
    msp.add_org("Org1MSP", ca.cert_pem)
    bad, good = ca.issue("mallory", "client"), ca.issue("bob", "client")
    msp.verify(bad.cert_pem, b"x", bad.sign(b"x"))  # cached as valid first
    ca.revoke(bad.cert)
    assert ca.revoked_serials == frozenset({bad.serial})
    msp.revoke("Org1MSP", bad.serial)
    with pytest.raises(IdentityError, match="revoked") as err:
        msp.verify(bad.cert_pem, b"x", bad.sign(b"x"))
    assert err.value.reason == "revoked"
    msp.validate(good.cert_pem)
    with pytest.raises(IdentityError, match="unknown organization"):
        msp.revoke("NopeMSP", 5)
    with pytest.raises(IdentityError, match="bad chain"):
        OrgCA.create("Org2MSP", seed=b"rev").revoke(bad.cert)


def test_msp_config_round_trips_through_dict(consortium):
    cas, _ = consortium
    msp = MSP()
    for ca in cas.values():
        msp.add_org(ca.msp_id, ca.cert_pem)
    victim = cas["Org2MSP"].issue("v", "peer")
    msp.revoke("Org2MSP", victim.serial)
    import json
    restored = MSP.from_dict(json.loads(json.dumps(msp.to_dict())))
    assert restored.to_dict() == msp.to_dict()
    assert restored.orgs == ("Org1MSP", "Org2MSP")
    with pytest.raises(IdentityError, match="revoked"):
        restored.validate(victim.cert_pem)
    with pytest.raises(IdentityError, match="malformed config"):
        MSP.from_dict({"nope": 1})


def test_identity_and_ca_are_picklable(consortium):
    cas, _ = consortium
    ident = cas["Org1MSP"].issue("p", "peer")
    clone = pickle.loads(pickle.dumps(ident))
    assert clone == ident and clone.sign(b"m") == ident.sign(b"m")
    ca = pickle.loads(pickle.dumps(cas["Org1MSP"]))
    assert ca.cert_pem == cas["Org1MSP"].cert_pem
    assert ca.issue("p", "peer").cert_pem == ident.cert_pem


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="seed must be bytes"):
        OrgCA.create("Org1MSP", seed="text")  # type: ignore[arg-type]
    ca = OrgCA.create("Org1MSP", seed=b"a")
    with pytest.raises(ValueError, match="role must be one of"):
        ca.issue("x", "king")
    with pytest.raises(ValueError, match="name must be"):
        ca.issue("", "peer")
