"""Dialogue records and the seeded generator of multi-turn customer-service dialogues.

Every generated dialogue has six messages (user / assistant alternating). The user asks for two
facts of the domain, then refers back to one of them ("what was that fee you mentioned?"), and the
assistant restates it. Each assistant turn that states a fact carries a :class:`FactProbe`, which
the benchmark turns into a multiple-choice question (true value against same-kind distractors).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fedenv.data import domains as D
from fedenv.errors import ConfigError, DataFormatError

ROLES: tuple[str, ...] = ("system", "user", "assistant")
NUM_DISTRACTORS = 3


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise DataFormatError(
                "<message>", None, f"role must be one of {ROLES}, got {self.role!r}"
            )
        if not isinstance(self.content, str):
            raise DataFormatError(
                "<message>", None, f"content must be a string, got {type(self.content).__name__}"
            )


@dataclass(frozen=True)
class FactProbe:
    """Assistant message ``turn`` reads ``prefix + answer + rest``; ``distractors`` are wrong
    values of the same kind, written like ``answer`` (with its leading space)."""

    turn: int
    prefix: str
    answer: str
    distractors: tuple[str, ...]


@dataclass(frozen=True)
class Dialogue:
    messages: tuple[Message, ...]
    domain: str = ""  # "" for JSONL data without a domain
    facts: tuple[FactProbe, ...] = ()

    def __post_init__(self) -> None:
        for probe in self.facts:
            if (
                not 0 <= probe.turn < len(self.messages)
                or self.messages[probe.turn].role != "assistant"
            ):
                raise DataFormatError(
                    "<dialogue>", None, f"fact probe turn {probe.turn} is not an assistant message"
                )
            if not self.messages[probe.turn].content.startswith(probe.prefix + probe.answer):
                raise DataFormatError(
                    "<dialogue>",
                    None,
                    f"message {probe.turn} does not start with prefix + answer of its probe",
                )

    def with_answer(self, probe: FactProbe, value: str) -> Dialogue:
        """This dialogue with ``probe``'s answer replaced by ``value`` (facts dropped)."""
        content = self.messages[probe.turn].content
        rest = content[len(probe.prefix) + len(probe.answer) :]
        messages = list(self.messages)
        messages[probe.turn] = Message("assistant", probe.prefix + value + rest)
        return Dialogue(tuple(messages), self.domain)


def _check_count(n: int) -> None:
    if not isinstance(n, int) or n < 0:
        raise ConfigError("n", f"must be a non-negative integer, got {n!r}")


def _distractors(rng: random.Random, kind: str, stated: str) -> tuple[str, ...]:
    others = [v for v in D.VALUE_POOLS[kind] if v != stated]
    return tuple(" " + v for v in rng.sample(others, NUM_DISTRACTORS))


def _dialogue(world: D.World, rng: random.Random, *, corrupt: bool, held_out: bool) -> Dialogue:
    """One six-message dialogue about two slots of ``world``; ``corrupt`` states wrong values."""
    ask_first = D.ASK_FIRST + (D.HELD_OUT_ASK_FIRST if held_out else ())
    ask_next = D.ASK_NEXT + (D.HELD_OUT_ASK_NEXT if held_out else ())
    ask_back = D.ASK_BACK + (D.HELD_OUT_ASK_BACK if held_out else ())
    first, second = rng.sample(world.slots, 2)
    stated = {}
    for slot in (first, second):
        true = world.value(slot)
        stated[slot] = (
            rng.choice([v for v in D.VALUE_POOLS[slot.kind] if v != true]) if corrupt else true
        )
    recalled = rng.choice((first, second))

    messages: list[Message] = []
    probes: list[FactProbe] = []

    def say(slot: D.Slot, prefixes: tuple[str, ...], rests: tuple[str, ...]) -> None:
        prefix = rng.choice(prefixes).format(noun=slot.noun, ref=slot.ref)
        answer = " " + stated[slot]
        probes.append(
            FactProbe(len(messages), prefix, answer, _distractors(rng, slot.kind, stated[slot]))
        )
        messages.append(Message("assistant", prefix + answer + rng.choice(rests)))

    messages.append(
        Message("user", rng.choice(D.GREETINGS) + rng.choice(ask_first).format(noun=first.noun))
    )
    say(first, D.STATE_PREFIX, D.STATE_REST)
    messages.append(Message("user", rng.choice(ask_next).format(noun=second.noun)))
    say(second, D.STATE_PREFIX, D.STATE_REST)
    messages.append(Message("user", rng.choice(ask_back).format(ref=recalled.ref)))
    say(recalled, D.RECALL_PREFIX, D.RECALL_REST)
    return Dialogue(tuple(messages), world.domain, tuple(probes))


def generate_org_dialogues(
    domain: str, n: int, seed: int, *, org: str = "", quality: float = 1.0
) -> list[Dialogue]:
    """``n`` training dialogues of ``domain`` for organization ``org``.

    Exactly ``round(quality * n)`` of them state the world's true facts; the others state wrong
    values of the same kind (chosen per dialogue). Different ``org`` names draw different dialogues
    of the same world; the same arguments always give the same dialogues.
    """
    _check_count(n)
    if not isinstance(quality, (int, float)) or not 0.0 <= quality <= 1.0:
        raise ConfigError("quality", f"must be a number in [0, 1], got {quality!r}")
    world = D.make_world(domain, seed)
    rng = D.stream("train", seed, domain, org)
    corrupted = set(rng.sample(range(n), n - round(quality * n)))
    return [_dialogue(world, rng, corrupt=i in corrupted, held_out=False) for i in range(n)]


def public_corpus(seed: int, n_per_domain: int) -> list[Dialogue]:
    """Correct dialogues of every public domain (the base model's pretraining data), interleaved."""
    _check_count(n_per_domain)
    per_domain = []
    for domain in D.PUBLIC_DOMAINS:
        world, rng = D.make_world(domain, seed), D.stream("public", seed, domain)
        per_domain.append(
            [_dialogue(world, rng, corrupt=False, held_out=False) for _ in range(n_per_domain)]
        )
    return [d for group in zip(*per_domain) for d in group]


def benchmark_dialogues(domain: str, n: int, seed: int) -> list[Dialogue]:
    """``n`` held-out dialogues of ``domain``: the same true facts as the training data, drawn from
    a separate stream that also uses user phrasings no training dialogue contains."""
    _check_count(n)
    world, rng = D.make_world(domain, seed), D.stream("benchmark", seed, domain)
    return [_dialogue(world, rng, corrupt=False, held_out=True) for _ in range(n)]


def root_dialogues(domain: str, n: int, seed: int) -> list[Dialogue]:
    """``n`` dialogues of ``domain`` held by the consortium as a small trusted root set (FLTrust):
    the true facts, training phrasings, from a stream of their own."""
    _check_count(n)
    world, rng = D.make_world(domain, seed), D.stream("root", seed, domain)
    return [_dialogue(world, rng, corrupt=False, held_out=False) for _ in range(n)]
