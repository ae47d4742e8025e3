"""Organization behaviours: what a participant sends in place of an honest update.

| behaviour    | sends                                                                | trains? |
| ------------ | -------------------------------------------------------------------- | ------- |
| `honest`     | its trained adapter                                                  | yes     |
| `free_rider` | the global adapter it received, unchanged, claiming its data size    | no      |
| `noise`      | the global adapter plus Gaussian noise (each tensor's own std)       | no      |
| `scaled`     | the global plus ``SCALE`` x its trained change (a boosting attack)   | yes     |

An organization that does not train pays no compute cost (communication and ledger fees
still apply).  Under aggregators that keep ``lora_A`` frozen (``ffa``) only ``lora_B`` tensors
are changed, so a crafted update is always well formed: whether it helps is for contribution
scoring to find out.
"""

from __future__ import annotations

import torch

from fedenv.engine.federation import ClientUpdate
from fedenv.engine.lora import LORA_B_SUFFIX, Adapter

SCALE = 10.0
TRAINS = {"honest": True, "free_rider": False, "noise": False, "scaled": True}


def craft_update(
    behaviour: str,
    org: str,
    global_adapter: Adapter,
    trained: ClientUpdate | None,
    *,
    num_examples: int,
    local_steps: int,
    seed: int,
    trains_lora_a: bool = True,
) -> ClientUpdate:
    """The update ``org`` sends under ``behaviour``; ``trained`` is its honest update (or None
    for behaviours that do not train)."""
    if behaviour == "honest":
        assert trained is not None
        return trained
    if behaviour == "free_rider":
        adapter = {k: v.clone() for k, v in global_adapter.items()}
    elif behaviour == "noise":
        generator = torch.Generator(device="cpu").manual_seed(seed)
        adapter = {}
        for key, value in sorted(global_adapter.items()):
            change = trains_lora_a or key.endswith(LORA_B_SUFFIX)
            scale = float(value.float().std()) or 1e-3
            noise = torch.randn(value.shape, generator=generator) * scale
            adapter[key] = (value + noise.to(value)) if change else value.clone()
    elif behaviour == "scaled":
        assert trained is not None
        adapter = {k: g + SCALE * (trained.adapter[k].to(g) - g) for k, g in global_adapter.items()}
    else:
        raise ValueError(f"unknown behaviour {behaviour!r} (known: {', '.join(TRAINS)})")
    return ClientUpdate.create(org, adapter, num_examples=num_examples, local_steps=local_steps)
