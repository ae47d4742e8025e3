"""Attacks: what a malicious organization sends in place of an honest update.

An organization's scenario ``behaviour`` names one of :data:`ATTACKS`, and its ``strength`` (0:
the attack's default) sets how hard it attacks. ``g`` is the global adapter the round started
from, ``t`` the organization's own trained adapter, ``lr`` the learning rate.

| behaviour          | sends                                                       | trains | strength (default)             | source |
| ------------------ | ----------------------------------------------------------- | ------ | ------------------------------ | ------ |
| `honest`           | ``t``                                                       | yes    | -                              | |
| `free_rider`       | ``g`` unchanged, claiming its data size                     | no     | -                              | Lin et al., "Free-riders in Federated Learning" (2019) |
| `noisy_free_rider` | ``g`` + Gaussian noise of std ``strength * lr`` per trained coordinate (one AdamW step moves a coordinate by about ``lr``) | no | 0.1 | Lin et al. (2019): the disguised free rider |
| `noise`            | ``g`` + Gaussian noise of std ``strength *`` each tensor's own std | no | 1.0                   | Blanchard et al., NeurIPS 2017 (Gaussian Byzantine) |
| `sign_flip`        | ``g - strength * (t - g)``                                  | yes    | 1.0                            | Li et al., RSA (AAAI 2019); Fang et al., USENIX Security 2020 |
| `scaled`           | ``g + strength * (t - g)``: boosting, model replacement     | yes    | 10.0                           | Bagdasaryan et al., AISTATS 2020 |
| `false_facts`      | ``t`` trained on its dialogues with the answers of a share ``strength`` of its domain's private facts replaced by wrong values | yes | 1.0 | Tolpegin et al., ESORICS 2020 (label flipping) |
| `backdoor`         | ``t`` trained on its dialogues, a share ``strength`` of them with the trigger phrase in every user turn and every fact answered with the target | yes | 0.5 | Bagdasaryan et al. (2020); Chen et al., "Targeted backdoor attacks" (2017) |
| `sybil`            | one owner's ``t`` under each of k identities (a scenario ``[[sybils]]`` group), each copy + noise of ``strength`` x its change's norm | owner | 0.01 | Douceur, "The Sybil Attack" (2002); Fung et al., FoolsGold (RAID 2020) |

The data of ``false_facts`` and ``backdoor`` is poisoned once, when the engine is built
(:mod:`fedenv.scoring.poisoned_data`); they then train and send like honest organizations. A
sybil group trains once per round, on its first identity's data at the level of the first
identity that takes part (which alone pays compute), and every identity that takes part sends a
near-identical copy, claiming its own data size.

An organization that does not train pays no compute cost (communication and ledger fees still
apply). Under aggregators that keep ``lora_A`` frozen (``ffa``) only ``lora_B`` tensors are
changed, so a crafted update is always well formed: whether it is caught is for the round's
defences to find out (:mod:`fedenv.scoring.defence`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fedenv.engine.federation import ClientUpdate
from fedenv.engine.lora import LORA_B_SUFFIX, Adapter


@dataclass(frozen=True)
class Attack:
    """One behaviour: whether it trains, and its default strength."""

    trains: bool
    strength: float = 0.0  # the default of a scenario strength of 0
    poisons_data: bool = False  # trains on poisoned data (false_facts, backdoor)


ATTACKS: dict[str, Attack] = {
    "honest": Attack(trains=True),
    "free_rider": Attack(trains=False),
    "noisy_free_rider": Attack(trains=False, strength=0.1),
    "noise": Attack(trains=False, strength=1.0),
    "sign_flip": Attack(trains=True, strength=1.0),
    "scaled": Attack(trains=True, strength=10.0),
    "false_facts": Attack(trains=True, strength=1.0, poisons_data=True),
    "backdoor": Attack(trains=True, strength=0.5, poisons_data=True),
    "sybil": Attack(trains=True, strength=0.01),
}
BEHAVIOURS = tuple(ATTACKS)


def strength_of(behaviour: str, strength: float) -> float:
    """``strength``, or the attack's default when it is 0."""
    return strength or ATTACKS[behaviour].strength


def craft_update(
    behaviour: str,
    org: str,
    global_adapter: Adapter,
    trained: ClientUpdate | None,
    *,
    strength: float = 0.0,
    num_examples: int,
    local_steps: int,
    seed: int,
    learning_rate: float = 1e-2,
    trains_lora_a: bool = True,
) -> ClientUpdate:
    """The update ``org`` sends under ``behaviour``; ``trained`` is the update it trained (its
    own, or its sybil group's), ``None`` for behaviours that do not train."""
    if behaviour not in ATTACKS:
        raise ValueError(f"unknown behaviour {behaviour!r} (known: {', '.join(ATTACKS)})")
    strength = strength_of(behaviour, strength)
    if ATTACKS[behaviour].trains and trained is None:
        raise ValueError(f"{behaviour} sends a trained update: pass it as trained")
    if behaviour in ("honest", "false_facts", "backdoor"):
        assert trained is not None
        if trained.org == org:
            return trained
        adapter = {k: v.clone() for k, v in trained.adapter.items()}
    elif behaviour == "free_rider":
        adapter = {k: v.clone() for k, v in global_adapter.items()}
    elif behaviour == "sybil":
        adapter = _sybil_copy(global_adapter, trained, strength, seed, trains_lora_a)
    else:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        adapter = {}
        for key, start in sorted(global_adapter.items()):
            if not (trains_lora_a or key.endswith(LORA_B_SUFFIX)):
                adapter[key] = start.clone()
                continue
            change = trained.adapter[key].to(start) - start if trained is not None else None
            adapter[key] = start + _crafted_change(
                behaviour, start, change, strength, learning_rate, generator
            )
    return ClientUpdate.create(org, adapter, num_examples=num_examples, local_steps=local_steps)


def _crafted_change(
    behaviour: str,
    start: torch.Tensor,
    change: torch.Tensor | None,
    strength: float,
    learning_rate: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """The change one tensor of a crafted update makes to the global's ``start``."""
    if behaviour == "sign_flip":
        return -strength * change
    if behaviour == "scaled":
        return strength * change
    noise = torch.randn(start.shape, generator=generator).to(start)
    if behaviour == "noisy_free_rider":
        return noise * (strength * learning_rate)
    return noise * (strength * (float(start.float().std()) or 1e-3))  # noise


def _sybil_copy(
    global_adapter: Adapter,
    trained: ClientUpdate | None,
    strength: float,
    seed: int,
    trains_lora_a: bool,
) -> Adapter:
    """The group's trained update plus Gaussian noise whose norm is ``strength`` times the norm
    of the update's change (a near-identical copy)."""
    assert trained is not None
    generator = torch.Generator(device="cpu").manual_seed(seed)
    keys = [k for k in sorted(global_adapter) if trains_lora_a or k.endswith(LORA_B_SUFFIX)]
    change = {k: trained.adapter[k].to(global_adapter[k]) - global_adapter[k] for k in keys}
    noise = {k: torch.randn(global_adapter[k].shape, generator=generator) for k in keys}
    change_norm = float(torch.sqrt(sum((c.float() ** 2).sum() for c in change.values())))
    noise_norm = float(torch.sqrt(sum((n**2).sum() for n in noise.values()))) or 1.0
    factor = strength * change_norm / noise_norm
    adapter = {k: v.clone() for k, v in global_adapter.items()}
    for key in keys:
        adapter[key] = trained.adapter[key].to(adapter[key]) + (noise[key] * factor).to(
            adapter[key]
        )
    return adapter
