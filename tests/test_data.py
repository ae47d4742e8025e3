from __future__ import annotations

import pytest

from fedenv.data import (
    DOMAINS,
    PRIVATE_DOMAINS,
    PUBLIC_DOMAINS,
    Dialogue,
    FactProbe,
    Message,
    benchmark_dialogues,
    generate_org_dialogues,
    make_world,
    public_corpus,
)
from fedenv.data.domains import DOMAIN_SLOTS, VALUE_POOLS
from fedenv.errors import ConfigError, DataFormatError


def text(dialogues: list[Dialogue]) -> str:
    return "\n".join(m.content for d in dialogues for m in d.messages)


def test_domains_split_in_half_into_public_and_private():
    assert len(DOMAINS) >= 6
    assert {"bank", "telecom", "airline", "clinic", "insurance", "retail"} <= set(DOMAINS)
    assert set(PUBLIC_DOMAINS) | set(PRIVATE_DOMAINS) == set(DOMAINS)
    assert not set(PUBLIC_DOMAINS) & set(PRIVATE_DOMAINS)
    assert len(PUBLIC_DOMAINS) == len(PRIVATE_DOMAINS)


def test_same_arguments_give_the_same_dialogues_and_seeds_change_them():
    a = generate_org_dialogues("bank", 20, seed=3, org="acme", quality=0.5)
    assert a == generate_org_dialogues("bank", 20, seed=3, org="acme", quality=0.5)
    assert a != generate_org_dialogues("bank", 20, seed=4, org="acme", quality=0.5)
    assert a != generate_org_dialogues("bank", 20, seed=3, org="other", quality=0.5)
    assert make_world("bank", 3) == make_world("bank", 3)
    assert make_world("bank", 3) != make_world("bank", 4)


@pytest.mark.parametrize("domain", DOMAINS)
def test_dialogues_are_multi_turn_and_refer_back_to_an_earlier_fact(domain):
    for dialogue in generate_org_dialogues(domain, 30, seed=0):
        roles = [m.role for m in dialogue.messages]
        assert len(roles) >= 4 and roles == ["user", "assistant"] * (len(roles) // 2)
        assert dialogue.domain == domain
        # every assistant turn states a fact, and the last one restates an earlier one
        assert [p.turn for p in dialogue.facts] == [
            i for i, r in enumerate(roles) if r == "assistant"
        ]
        *earlier, last = dialogue.facts
        assert last.answer in {p.answer for p in earlier}
        assert (
            "you mentioned" in dialogue.messages[-2].content
            or "you said" in dialogue.messages[-2].content
        )


def test_fact_probes_describe_the_assistant_turns_exactly():
    world = make_world("airline", 0)
    kinds = {v: s.kind for s, v in zip(world.slots, world.values)}
    for dialogue in generate_org_dialogues("airline", 40, seed=0):
        for probe in dialogue.facts:
            content = dialogue.messages[probe.turn].content
            assert content.startswith(probe.prefix + probe.answer)
            assert probe.answer.startswith(" ") and not probe.prefix.endswith(" ")
            value = probe.answer[1:]
            pool = VALUE_POOLS[kinds[value]]
            assert len(probe.distractors) == 3 and probe.answer not in probe.distractors
            assert all(d[1:] in pool for d in probe.distractors)  # same kind as the answer


@pytest.mark.parametrize("quality", [0.0, 0.3, 0.75, 1.0])
def test_quality_is_the_exact_fraction_of_dialogues_with_true_facts(quality):
    n = 40
    world = make_world("insurance", 1)
    true_values = set(world.values)
    dialogues = generate_org_dialogues("insurance", n, seed=1, quality=quality)
    correct = 0
    for dialogue in dialogues:
        stated = {p.answer[1:] for p in dialogue.facts}
        if stated <= true_values:
            correct += 1
        else:
            assert not stated & true_values  # a corrupted dialogue states only wrong values
    assert correct == round(quality * n)


def test_a_domains_facts_appear_in_no_other_domains_data():
    corpora = {d: text(generate_org_dialogues(d, 60, seed=0)) for d in DOMAINS}
    for domain in DOMAINS:
        nouns = [slot.noun for slot in DOMAIN_SLOTS[domain]]
        for other in DOMAINS:
            if other != domain:
                assert not any(noun in corpora[other] for noun in nouns), (domain, other)


def test_benchmark_dialogues_test_the_same_facts_with_new_dialogues():
    for domain in PRIVATE_DOMAINS:
        world = make_world(domain, 5)
        train = generate_org_dialogues(domain, 200, seed=5)
        held_out = benchmark_dialogues(domain, 20, seed=5)
        assert {p.answer[1:] for d in held_out for p in d.facts} <= set(world.values)
        assert not set(held_out) & set(train)
        train_user = {m.content for d in train for m in d.messages if m.role == "user"}
        held_user = {m.content for d in held_out for m in d.messages if m.role == "user"}
        assert held_user - train_user  # some user phrasings never occur in training data


def test_public_corpus_covers_exactly_the_public_domains():
    corpus = public_corpus(seed=0, n_per_domain=5)
    assert len(corpus) == 5 * len(PUBLIC_DOMAINS)
    assert {d.domain for d in corpus} == set(PUBLIC_DOMAINS)
    assert [d.domain for d in corpus[: len(PUBLIC_DOMAINS)]] == list(PUBLIC_DOMAINS)  # interleaved


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: generate_org_dialogues("casino", 3, 0), "domain"),
        (lambda: generate_org_dialogues("bank", -1, 0), "n"),
        (lambda: generate_org_dialogues("bank", 3, 0, quality=1.5), "quality"),
        (lambda: benchmark_dialogues("bank", 2.5, 0), "n"),
        (lambda: public_corpus(0, -3), "n"),
    ],
)
def test_bad_arguments_raise_config_errors_naming_the_field(call, field):
    with pytest.raises(ConfigError) as info:
        call()
    assert info.value.field == field


def test_records_validate_roles_and_probes():
    with pytest.raises(DataFormatError, match="role"):
        Message("tool", "x")
    with pytest.raises(DataFormatError, match="content"):
        Message("user", 3)  # type: ignore[arg-type]
    msgs = (Message("user", "Hi."), Message("assistant", "The fee is 5 dollars."))
    Dialogue(msgs, facts=(FactProbe(1, "The fee is", " 5 dollars", (" 8 dollars",)),))
    with pytest.raises(DataFormatError, match="not an assistant message"):
        Dialogue(msgs, facts=(FactProbe(0, "Hi", ".", ("!",)),))
    with pytest.raises(DataFormatError, match="prefix"):
        Dialogue(msgs, facts=(FactProbe(1, "The fee is", " 9 dollars", (" 8 dollars",)),))
