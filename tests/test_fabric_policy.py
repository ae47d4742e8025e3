"""Endorsement policies: Fabric's syntax, exact errors, and evaluation semantics."""

from __future__ import annotations

import pytest

from chains.fabric import (
    CollectionConfig,
    ConfigError,
    EndorsementPolicy,
    Network,
    PolicySyntaxError,
    parse_policy,
)
from chains.fabric.policy import OutOf, Principal


@pytest.mark.parametrize("text, canonical", [
    ("AND('Org1.peer','Org2.peer')", "AND('Org1.peer', 'Org2.peer')"),
    ("OR('Org1.member', 'Org2.member')", "OR('Org1.member', 'Org2.member')"),
    ("OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer')",
     "OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer')"),
    ("and('A.admin', or(\"B.peer\", 'C.client'))", "AND('A.admin', OR('B.peer', 'C.client'))"),
    ("  OutOf( 1 ,'x-y.z.orderer' )  ", "OR('x-y.z.orderer')"),
    ("'Org1.peer'", "'Org1.peer'"),
    ("OutOf(2, AND('A.peer', 'B.peer'), OR('C.peer', 'D.peer'), 'E.admin')",
     "OutOf(2, AND('A.peer', 'B.peer'), OR('C.peer', 'D.peer'), 'E.admin')"),
])
def test_valid_policies_parse_to_canonical_form(text: str, canonical: str) -> None:
    policy = EndorsementPolicy(text)
    assert str(policy) == canonical
    assert EndorsementPolicy(canonical) == policy  # canonical form parses to the same tree


def test_parse_tree_of_nested_policy() -> None:
    assert parse_policy("AND('A.peer', OutOf(1, 'B.peer', 'C.member'))") == OutOf(2, (
        Principal("A", "peer"), OutOf(1, (Principal("B", "peer"), Principal("C", "member")))))
    assert parse_policy("'Org1MSP.v1.admin'") == Principal("Org1MSP.v1", "admin")


@pytest.mark.parametrize("text, position, expected", [
    ("AND('Org1.peer' 'Org2.peer')", 16, "',' or ')'"),
    ("AND('Org1.peer',)", 16, "AND(, OR(, OutOf( or a quoted principal"),
    ("AND()", 4, "AND(, OR(, OutOf( or a quoted principal"),
    ("AND('Org1.peer'", 15, "',' or ')'"),
    ("XOR('Org1.peer')", 0, "AND(, OR(, OutOf( or a quoted principal"),
    ("AND 'Org1.peer'", 4, "'('"),
    ("OR('Org1.peer'))", 15, "end of policy"),
    ("OR('Org1.boss')", 9, "a role (member, peer, client, admin, orderer)"),
    ("OR('Org1peer')", 3, "a principal of the form 'MSPID.role'"),
    ("OR('Org 1.peer')", 4, "an MSP ID"),
    ("OR('Org1.peer)", 14, "closing ' of the principal"),
    ("OutOf('Org1.peer')", 6, "a count (integer)"),
    ("OutOf(3, 'A.peer', 'B.peer')", 6, "a count between 1 and 2"),
    ("OutOf(0, 'A.peer')", 6, "a count between 1 and 1"),
    ("", 0, "AND(, OR(, OutOf( or a quoted principal"),
])
def test_bad_policy_names_position_and_expectation(text: str, position: int,
                                                   expected: str) -> None:
    with pytest.raises(PolicySyntaxError) as info:
        EndorsementPolicy(text)
    assert info.value.position == position
    assert info.value.expected.startswith(expected)
    message = str(info.value)
    assert f"position {position}" in message
    assert message.splitlines()[-1] == "  " + " " * position + "^"  # caret under the spot


def test_policy_must_be_a_string() -> None:
    with pytest.raises(TypeError):
        parse_policy(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("text, signers, satisfied", [
    ("AND('A.peer', 'B.peer')", [("A", "peer"), ("B", "peer")], True),
    ("AND('A.peer', 'B.peer')", [("A", "peer")], False),
    ("AND('A.peer', 'B.peer')", [("A", "peer"), ("B", "client")], False),
    ("OR('A.peer', 'B.peer')", [("B", "peer")], True),
    ("OR('A.peer', 'B.peer')", [("C", "peer")], False),
    ("OutOf(2, 'A.peer', 'B.peer', 'C.peer')", [("C", "peer"), ("A", "peer")], True),
    ("OutOf(2, 'A.peer', 'B.peer', 'C.peer')", [("C", "peer"), ("C", "peer")], False),
    ("OutOf(2, 'A.peer', 'B.peer', 'C.peer')", [("C", "peer")], False),
    # one identity satisfies at most one principal
    ("AND('A.peer', 'A.peer')", [("A", "peer")], False),
    ("AND('A.peer', 'A.peer')", [("A", "peer"), ("A", "peer")], True),
    ("AND('A.member', 'A.peer')", [("A", "peer")], False),
    ("AND('A.member', 'A.peer')", [("A", "client"), ("A", "peer")], True),
    # 'member' matches every role; other roles only themselves
    ("OR('A.member')", [("A", "admin")], True),
    ("OR('A.member')", [("A", "orderer")], True),
    ("OR('A.admin')", [("A", "peer")], False),
    ("OR('A.client')", [("A", "admin")], False),
    # nested: needs A's admin and one of B or C, from distinct identities
    ("AND('A.admin', OR('B.peer', 'C.peer'))", [("A", "admin"), ("C", "peer")], True),
    ("AND('A.admin', OR('B.peer', 'C.peer'))", [("A", "admin")], False),
    # a greedy matcher would take the only A.peer for the first rule and fail; exact search not
    ("OutOf(2, 'A.member', 'A.peer')", [("A", "peer"), ("A", "client")], True),
    ("AND(OR('A.member', 'B.peer'), 'A.peer')", [("A", "peer"), ("B", "peer")], True),
    ("AND('A.peer', 'B.peer')", [], False),
])
def test_evaluation(text: str, signers: list[tuple[str, str]], satisfied: bool) -> None:
    policy = EndorsementPolicy(text)
    assert policy.satisfied_by(signers) is satisfied
    assert policy.satisfied_by(list(reversed(signers))) is satisfied  # order never matters


def test_principals_and_single_signer() -> None:
    policy = EndorsementPolicy("OutOf(2, 'A.peer', OR('B.peer', 'C.member'))")
    assert policy.msp_ids() == {"A", "B", "C"}
    assert [str(p) for p in policy.principals()] == ["'A.peer'", "'B.peer'", "'C.member'"]
    assert not policy.is_single_signer()
    assert EndorsementPolicy("OR('A.member', 'B.member')").is_single_signer()
    assert EndorsementPolicy("'A.member'").is_single_signer()


def test_bad_channel_policy_is_a_config_error_with_the_position() -> None:
    net = Network.create(["Org1", "Org2"], seed=1)
    with pytest.raises(ConfigError, match=r"endorsement_policy.*position 16"):
        net.create_channel("ch", ["Org1", "Org2"], "AND('Org1.peer' 'Org2.peer')")
    with pytest.raises(ConfigError, match=r"not channel members: \['Org3'\]"):
        net.create_channel("ch", ["Org1", "Org2"], "AND('Org1.peer', 'Org3.peer')")


@pytest.mark.parametrize("collection, message", [
    (CollectionConfig("c", "AND('Org1.member', 'Org2.member')"), "OR of principals"),
    (CollectionConfig("c", "OR('Org9.member')"), "not channel members"),
    (CollectionConfig("c", "OR('Org1.member'"), "member_policy: bad endorsement policy"),
    (CollectionConfig("c", "OR('Org1.member')", block_to_live=-1), "block_to_live"),
    (CollectionConfig("c", "OR('Org1.member')", member_only_read=1), "member_only_read"),  # type: ignore[arg-type]
    (CollectionConfig("bad name", "OR('Org1.member')"), "collection name"),
    (CollectionConfig("c", "OR('Org1.member')", endorsement_policy="AND("), "endorsement_policy"),
])
def test_collection_config_errors_name_the_field(collection: CollectionConfig,
                                                 message: str) -> None:
    net = Network.create(["Org1", "Org2"], seed=1)
    with pytest.raises(ConfigError, match=message):
        net.create_channel("ch", ["Org1", "Org2"], "OR('Org1.peer')", collections=[collection])


# --- resource bombs: bounded parsing, polynomial evaluation --------------------------------------
def test_deep_policies_are_a_syntax_error_not_a_recursion_error() -> None:
    for depth in (17, 1000, 1500):
        text = "OR(" * depth + "'A.peer'" + ")" * depth
        with pytest.raises(PolicySyntaxError, match="at most 16 nested gates"):
            EndorsementPolicy(text)
    with pytest.raises(PolicySyntaxError, match="at most 16384 characters"):
        EndorsementPolicy("OR(" * 100_000 + "'A.peer'" + ")" * 100_000)
    assert EndorsementPolicy("OR(" * 16 + "'A.peer'" + ")" * 16).satisfied_by([("A", "peer")])


@pytest.mark.parametrize("text, expected", [
    ("OutOf(" + "9" * 5000 + ", 'A.peer')", "a count between 1 and 1"),
    ("OutOf(00001, 'A.peer')", "a count between 1 and 1"),
    ("OutOf(١, 'A.peer')", "a count (integer)"),
    ("OR(" + ", ".join(["'A.peer'"] * 513) + ")", "at most 512 principals"),
    ("OR('A.peer')" + " " * 20_000, "at most 16384 characters"),
])
def test_oversized_policies_are_syntax_errors(text: str, expected: str) -> None:
    with pytest.raises(PolicySyntaxError) as info:
        EndorsementPolicy(text)
    assert info.value.expected.startswith(expected)
    assert len(str(info.value)) < 1000  # the message shows a window, not the whole text


def test_a_large_threshold_is_one_matching_not_an_enumeration() -> None:
    import time

    policy = EndorsementPolicy("OutOf(8, " + ", ".join(["'Org1.peer'"] * 16) + ")")
    start = time.perf_counter()
    assert not policy.satisfied_by([("Org1", "peer")] * 7)
    assert policy.satisfied_by([("Org1", "peer")] * 8)
    wide = EndorsementPolicy("OutOf(200, " + ", ".join(f"'O{i}.member'" for i in range(400))
                             + ")")
    assert wide.satisfied_by([(f"O{i}", "client") for i in range(0, 400, 2)])
    assert not wide.satisfied_by([(f"O{i}", "client") for i in range(199)])
    assert time.perf_counter() - start < 2.0


def test_nested_choices_are_exact_and_bounded() -> None:
    nested = EndorsementPolicy("OutOf(2, AND('A.peer', 'B.peer'), AND('A.peer', 'C.peer'), "
                               "AND('B.peer', 'C.peer'))")
    assert not nested.satisfied_by([("A", "peer"), ("B", "peer"), ("C", "peer")])
    assert nested.satisfied_by([("A", "peer"), ("A", "peer"), ("B", "peer"), ("C", "peer")])
    pairs = ", ".join(f"AND('O{i}.peer', 'P{i}.peer')" for i in range(24))
    with pytest.raises(PolicySyntaxError, match="at most 1024 alternative"):
        EndorsementPolicy(f"OutOf(12, {pairs})")  # C(24, 12) choices: refused when parsed
