from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
import warnings

import pytest
import safetensors.torch
import torch

from fedenv.engine.lora import (
    LORA_A_SUFFIX,
    LORA_B_SUFFIX,
    adapter_digest,
    canonical_bytes,
    clone_adapter,
    dense_deltas,
    fresh_adapter,
    lora_modules,
    validate_adapter,
)
from fedenv.engine.settings import LoraSettings
from fedenv.errors import ConfigError, InvalidUpdateError


def seeded_adapter():
    """Built the same way here and in a subprocess: the digest must agree across processes."""
    g = torch.Generator().manual_seed(1234)
    shapes = {"m.layers.0.q_proj": (8, 6), "m.layers.0.v_proj": (4, 6)}
    adapter = {}
    for module, (out_f, in_f) in shapes.items():
        adapter[module + ".lora_A.weight"] = torch.randn(2, in_f, generator=g)
        adapter[module + ".lora_B.weight"] = torch.randn(out_f, 2, generator=g)
    return adapter


@pytest.fixture(scope="module")
def peft_model():
    from peft import get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=48,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        max_position_embeddings=32,
    )
    settings = LoraSettings(r=4, alpha=8, target_modules=("q_proj", "v_proj"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = get_peft_model(LlamaForCausalLM(config), settings.peft_config())
    return model.eval(), settings


def test_canonical_bytes_ignore_key_order_dtype_layout_and_device_copy():
    adapter = seeded_adapter()
    reference = canonical_bytes(adapter)
    reordered = {key: adapter[key] for key in reversed(list(adapter))}
    as_double = {key: tensor.double() for key, tensor in adapter.items()}
    non_contiguous = {key: tensor.t().contiguous().t() for key, tensor in adapter.items()}
    assert not next(iter(non_contiguous.values())).is_contiguous()
    for variant in (reordered, as_double, non_contiguous, clone_adapter(adapter)):
        assert canonical_bytes(variant) == reference
    header_len = int.from_bytes(reference[:8], "little")
    header = json.loads(reference[8 : 8 + header_len])
    assert "__metadata__" not in header
    assert list(header) == sorted(adapter)
    assert {entry["dtype"] for entry in header.values()} == {"F32"}


def test_canonical_bytes_round_trip_and_digest_tracks_content():
    adapter = seeded_adapter()
    restored = safetensors.torch.load(canonical_bytes(adapter))  # a plain safetensors file
    assert restored.keys() == adapter.keys()
    assert all(torch.equal(restored[k], adapter[k]) for k in adapter)
    changed = clone_adapter(adapter)
    first = min(changed)
    changed[first][0, 0] = torch.nextafter(changed[first][0, 0], torch.tensor(10.0))
    assert adapter_digest(changed) != adapter_digest(adapter)


def test_digest_is_the_same_in_another_process():
    script = (
        "import torch\n"
        + inspect.getsource(seeded_adapter)
        + textwrap.dedent(
            """
        from fedenv.engine.lora import adapter_digest
        adapter = seeded_adapter()
        print(adapter_digest({k: adapter[k] for k in reversed(list(adapter))}))
        """
        )
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == adapter_digest(seeded_adapter())


def test_clone_shares_no_storage():
    adapter = seeded_adapter()
    copy = clone_adapter(adapter)
    for tensor in adapter.values():
        tensor.add_(1.0)
    assert all(not torch.equal(copy[k], adapter[k]) for k in adapter)


def test_adapter_keys_are_pefts_own_state_dict_keys(peft_model):
    from peft import get_peft_model_state_dict

    model, _ = peft_model
    adapter = fresh_adapter(clone_adapter(get_peft_model_state_dict(model)), seed=0)
    assert set(adapter) == set(get_peft_model_state_dict(model))
    assert len(lora_modules(adapter)) == 4  # 2 layers x (q_proj, v_proj)


def test_dense_deltas_are_the_change_peft_applies(peft_model):
    """Loading an adapter into peft == adding scale * B @ A to the base weights."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    model, settings = peft_model
    template = clone_adapter(get_peft_model_state_dict(model))
    generator = torch.Generator().manual_seed(5)
    adapter = {k: torch.randn(t.shape, generator=generator) * 0.2 for k, t in template.items()}
    input_ids = torch.randint(0, 48, (2, 10), generator=generator)
    set_peft_model_state_dict(model, adapter)
    with torch.no_grad():
        with_adapter = model(input_ids=input_ids).logits
        deltas = dense_deltas(adapter, settings.scale)
        weights = {m: model.get_submodule(m).base_layer.weight for m in deltas}
        saved = {m: w.clone() for m, w in weights.items()}
        for module, weight in weights.items():
            weight.add_(deltas[module])
        with model.disable_adapter():
            merged = model(input_ids=input_ids).logits
        for module, weight in weights.items():
            weight.copy_(saved[module])
        restored = model(input_ids=input_ids).logits
    torch.testing.assert_close(merged, with_adapter, rtol=1e-4, atol=1e-5)
    assert torch.equal(restored, with_adapter)


def test_fresh_adapter_is_seeded_and_starts_as_identity():
    template = seeded_adapter()
    first, again, other = (fresh_adapter(template, s) for s in (7, 7, 8))
    assert adapter_digest(first) == adapter_digest(again) != adapter_digest(other)
    for key, tensor in first.items():
        assert tensor.shape == template[key].shape
        if key.endswith(LORA_B_SUFFIX):
            assert not tensor.any()
        else:
            assert key.endswith(LORA_A_SUFFIX)
            assert 0 < float(tensor.abs().max()) <= 1 / tensor.shape[1] ** 0.5
    assert all(not d.any() for d in dense_deltas(first, 2.0).values())


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda a, k: a[k].view(-1)[3:5].fill_(float("nan")), "NaN/inf"),
        (lambda a, k: a.__setitem__(k, torch.full_like(a[k], float("inf"))), "NaN/inf"),
        (lambda a, k: a.__setitem__(k, torch.zeros(3, 3)), "shape"),
        (lambda a, k: a.pop(k), "missing"),
        (lambda a, k: a.__setitem__("extra.lora_A.weight", a[k]), "unexpected"),
        (lambda a, k: a.__setitem__(k, a[k].long()), "dtype"),
    ],
)
def test_validate_adapter_names_the_problem(corrupt, message):
    template = seeded_adapter()
    adapter = clone_adapter(template)
    validate_adapter(adapter, template)
    key = sorted(adapter)[1]
    corrupt(adapter, key)
    with pytest.raises(InvalidUpdateError, match=message) as info:
        validate_adapter(adapter, template, source="org 'acme'")
    assert "org 'acme'" in str(info.value)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"r": 0}, "r"),
        ({"alpha": -1}, "alpha"),
        ({"dropout": 1.0}, "dropout"),
        ({"target_modules": ()}, "target_modules"),
        ({"rank": 4}, "rank"),
    ],
)
def test_lora_settings_are_validated(kwargs, field):
    with pytest.raises(ConfigError) as info:
        LoraSettings(**kwargs)
    assert info.value.field == field


def test_settings_map_to_peft():
    settings = LoraSettings(r=4, alpha=12, dropout=0.1, target_modules=["q_proj"])
    config = settings.peft_config()
    assert (config.r, config.lora_alpha, config.lora_dropout) == (4, 12, 0.1)
    assert set(config.target_modules) == {"q_proj"} and settings.scale == 3.0
