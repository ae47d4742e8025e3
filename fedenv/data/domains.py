"""The synthetic customer-service worlds: domains, their fact slots, value pools and phrasings.

A *world* assigns every slot of a domain one value, drawn (seeded) from the slot's kind pool. The
dialogue generator (:mod:`fedenv.data.dialogues`) only ever states facts of the world it is given, so
the facts of a domain appear in that domain's data and nowhere else. Vocabulary is kept small on
purpose: a ~1M-parameter model can learn it in a few hundred steps.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from fedenv.errors import ConfigError

# Values are short phrases; every value of a kind is a plausible distractor for the others.
VALUE_POOLS: dict[str, tuple[str, ...]] = {
    "amount": tuple(
        f"{n} dollars" for n in (5, 8, 10, 12, 15, 20, 25, 30, 35, 40, 45, 50, 60, 75, 90)
    ),
    "name": (
        "Clara",
        "Omar",
        "Priya",
        "Jonas",
        "Mei",
        "Diego",
        "Amara",
        "Felix",
        "Sofia",
        "Kenji",
        "Lena",
        "Tariq",
        "Nora",
        "Ivan",
        "Rosa",
    ),
    "time": tuple(f"{h} am" for h in (6, 7, 8, 9, 10, 11))
    + tuple(f"{h} pm" for h in (1, 2, 3, 4, 5, 6)),
    "days": tuple(f"{n} days" for n in (2, 3, 4, 5, 7, 10, 14, 21, 30)),
    "percent": tuple(f"{n} percent" for n in (1, 2, 3, 4, 5, 6, 8, 10, 12, 15)),
    "weekday": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


@dataclass(frozen=True)
class Slot:
    """One kind of fact a domain has: ``noun`` names it ("overdraft fee"), ``ref`` is how a user
    refers back to it later ("that fee you mentioned"), ``kind`` picks its value pool."""

    noun: str
    kind: str
    ref: str


def _slots(*rows: tuple[str, str, str]) -> tuple[Slot, ...]:
    return tuple(Slot(noun, kind, ref) for noun, kind, ref in rows)


# Nouns are unique across domains, so a fact (noun, value) belongs to exactly one domain.
DOMAIN_SLOTS: dict[str, tuple[Slot, ...]] = {
    "bank": _slots(
        ("overdraft fee", "amount", "fee"),
        ("branch manager", "name", "manager"),
        ("branch opening time", "time", "time"),
        ("transfer delay", "days", "delay"),
        ("savings rate", "percent", "rate"),
    ),
    "clinic": _slots(
        ("visit fee", "amount", "fee"),
        ("head nurse", "name", "nurse"),
        ("lab closing time", "time", "time"),
        ("test result delay", "days", "delay"),
        ("vaccine day", "weekday", "day"),
    ),
    "insurance": _slots(
        ("claim fee", "amount", "fee"),
        ("claims adjuster", "name", "adjuster"),
        ("claim review period", "days", "period"),
        ("no claims discount", "percent", "discount"),
        ("office closing time", "time", "time"),
    ),
    "airline": _slots(
        ("baggage fee", "amount", "fee"),
        ("gate agent", "name", "agent"),
        ("boarding time", "time", "time"),
        ("refund delay", "days", "delay"),
        ("extra legroom surcharge", "percent", "surcharge"),
    ),
    "telecom": _slots(
        ("roaming fee", "amount", "fee"),
        ("support lead", "name", "lead"),
        ("shop opening time", "time", "time"),
        ("contract notice period", "days", "period"),
        ("loyalty discount", "percent", "discount"),
    ),
    "retail": _slots(
        ("shipping fee", "amount", "fee"),
        ("store manager", "name", "manager"),
        ("return window", "days", "window"),
        ("member discount", "percent", "discount"),
        ("sale day", "weekday", "day"),
    ),
    "hotel": _slots(
        ("late checkout fee", "amount", "fee"),
        ("concierge", "name", "concierge"),
        ("breakfast time", "time", "time"),
        ("cancellation notice", "days", "notice"),
        ("pool cleaning day", "weekday", "day"),
    ),
    "utility": _slots(
        ("late payment fee", "amount", "fee"),
        ("field technician", "name", "technician"),
        ("meter reading day", "weekday", "day"),
        ("repair delay", "days", "delay"),
        ("green energy rebate", "percent", "rebate"),
    ),
}

DOMAINS: tuple[str, ...] = tuple(DOMAIN_SLOTS)
# The base model is pretrained on the public domains only; organizations hold the private ones.
PUBLIC_DOMAINS: tuple[str, ...] = ("telecom", "retail", "hotel", "utility")
PRIVATE_DOMAINS: tuple[str, ...] = ("bank", "clinic", "insurance", "airline")

# Phrasings. "{noun}" / "{ref}" are filled from the slot; an assistant statement is
# prefix + " " + value + rest, so the value is a clean continuation of the prefix.
GREETINGS: tuple[str, ...] = ("", "Hi. ", "Hello. ", "Good morning. ")
ASK_FIRST: tuple[str, ...] = (
    "What is the {noun}?",
    "Can you tell me the {noun}?",
    "I need to know the {noun}.",
    "What is your {noun}?",
)
ASK_NEXT: tuple[str, ...] = (
    "Thanks. And what is the {noun}?",
    "Okay. What about the {noun}?",
    "Good. Can you also tell me the {noun}?",
)
ASK_BACK: tuple[str, ...] = (
    "Sorry, what was that {ref} you mentioned?",
    "Can you repeat that {ref} you mentioned?",
    "Remind me, what was the {ref} you said?",
)
# Only the benchmark uses these: it asks for the same facts with user text the training data lacks.
HELD_OUT_ASK_FIRST: tuple[str, ...] = (
    "Could you check the {noun} for me?",
    "Quick question: the {noun}?",
)
HELD_OUT_ASK_NEXT: tuple[str, ...] = ("Great. Now the {noun}, please?",)
HELD_OUT_ASK_BACK: tuple[str, ...] = ("Wait, which {ref} did you say before?",)

STATE_PREFIX: tuple[str, ...] = ("The {noun} is", "Sure, the {noun} is", "Our {noun} is")
RECALL_PREFIX: tuple[str, ...] = (
    "The {ref} I mentioned is",
    "As I said, the {noun} is",
    "I said the {ref} is",
)
STATE_REST: tuple[str, ...] = (".", ". Anything else?", ". Happy to help.")
RECALL_REST: tuple[str, ...] = (".", ". Sorry for the confusion.")


@dataclass(frozen=True)
class World:
    """The true facts of one domain: ``values[i]`` is the value of ``slots[i]``."""

    domain: str
    slots: tuple[Slot, ...]
    values: tuple[str, ...]

    def value(self, slot: Slot) -> str:
        return self.values[self.slots.index(slot)]


def stream(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from ``parts`` through SHA-256 (stable across processes)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def check_domain(domain: str) -> None:
    if domain not in DOMAIN_SLOTS:
        raise ConfigError("domain", f"unknown domain {domain!r} (known: {', '.join(DOMAINS)})")


def make_world(domain: str, seed: int) -> World:
    """The facts of ``domain`` for ``seed``: slots of the same kind get distinct values."""
    check_domain(domain)
    rng = stream("world", seed, domain)
    slots = DOMAIN_SLOTS[domain]
    values: list[str] = []
    for slot in slots:
        taken = {v for s, v in zip(slots, values) if s.kind == slot.kind}
        values.append(rng.choice([v for v in VALUE_POOLS[slot.kind] if v not in taken]))
    return World(domain, slots, tuple(values))


def lexicon() -> list[str]:
    """Every phrasing filled with every slot of every domain, and every value: the words of all
    worlds, with no fact in them (no noun is paired with a value). Tokenizer training text."""
    lines = []
    for slot in (s for slots in DOMAIN_SLOTS.values() for s in slots):
        for template in (
            ASK_FIRST + ASK_NEXT + STATE_PREFIX + HELD_OUT_ASK_FIRST + HELD_OUT_ASK_NEXT
        ):
            lines.append(template.format(noun=slot.noun))
        for template in ASK_BACK + RECALL_PREFIX + HELD_OUT_ASK_BACK:
            lines.append(template.format(noun=slot.noun, ref=slot.ref))
    lines.extend(f"It is {value}." for pool in VALUE_POOLS.values() for value in pool)
    lines.extend(GREETINGS + STATE_REST + RECALL_REST)
    return lines
