from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from fedenv.data import PRIVATE_DOMAINS, generate_org_dialogues, pretrain
from fedenv.data.benchmark import Benchmark
from fedenv.data.model import (
    PRESETS,
    base_cache_path,
    build_info,
    code_fingerprint,
    collate,
    encode_dialogue,
    load_base,
)
from fedenv.data.pretrain import build_tokenizer, torch_threads
from fedenv.errors import ConfigError


def test_the_test_base_is_a_small_llama_in_eval_mode(test_base):
    model, tokenizer = test_base
    assert isinstance(model, LlamaForCausalLM) and not model.training
    assert model.device.type == "cpu" and model.dtype == torch.float32
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert tokenizer.chat_template is not None


def test_the_cache_holds_safetensors_tokenizer_and_build_record(test_base, test_cache_dir):
    path = base_cache_path("test", 0, test_cache_dir)
    names = {p.name for p in path.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "fedenv_build.json"} <= names
    assert not [p for p in test_cache_dir.iterdir() if p.name.startswith(".")]  # no temp folders
    info = build_info("test", 0, test_cache_dir)
    assert info["parameters"] == sum(p.numel() for p in test_base[0].parameters())
    assert info["final_loss"] < info["first_loss"] / 4


def test_later_loads_come_from_the_cache_quickly_with_the_same_weights(test_base, test_cache_dir):
    record = base_cache_path("test", 0, test_cache_dir) / "fedenv_build.json"
    stamp = record.stat().st_mtime_ns
    start = time.perf_counter()
    model, _ = load_base("test", device="cpu", cache_dir=test_cache_dir, progress=False)
    assert time.perf_counter() - start < 2.0
    assert record.stat().st_mtime_ns == stamp
    for a, b in zip(model.state_dict().values(), test_base[0].state_dict().values()):
        assert torch.equal(a, b)


def test_a_build_is_byte_for_byte_reproducible(test_base, test_cache_dir, tmp_path):
    load_base("test", device="cpu", cache_dir=tmp_path, progress=False)
    ours = (base_cache_path("test", 0, tmp_path) / "model.safetensors").read_bytes()
    theirs = (base_cache_path("test", 0, test_cache_dir) / "model.safetensors").read_bytes()
    assert ours == theirs


def test_the_cache_key_depends_on_preset_and_seed(tmp_path):
    keys = {base_cache_path(name, seed, tmp_path) for name in ("test", "tiny") for seed in (0, 1)}
    assert len(keys) == 4
    assert base_cache_path("test", 0, tmp_path) == base_cache_path("test", 0, tmp_path)


def test_the_cache_key_ignores_docstrings_and_comments_but_not_code():
    source = Path(pretrain.__file__).read_text(encoding="utf-8")
    key = code_fingerprint([source])
    assert '"""' in source and "# " in source and "def build_base(" in source
    first_doc = source.index('"""', source.index("def build_base("))
    reworded = (
        source.replace('"""', '"""Reworded: ', 1)  # the module docstring
        .replace("# ", "# a changed comment; ", 3)
        .replace(source[first_doc: first_doc + 3], '"""Also reworded. ', 1)
        .replace("\n\n\n", "\n\n\n\n", 2)  # blank lines
    )
    assert reworded != source and code_fingerprint([reworded]) == key
    undocumented = source.replace(source[: source.index('"""', 3) + 3], "", 1)
    assert code_fingerprint([undocumented]) == key  # a docstring removed altogether
    changed = source.replace("def build_base(", "def build_base_renamed(", 1)
    assert code_fingerprint([changed]) != key
    assert code_fingerprint([source + "\nSTEPS = 2\n"]) != key
    assert code_fingerprint([source + "\nSTEPS = 2\n"]) != code_fingerprint([source + "\nSTEPS = 3\n"])


def train(model, tokenizer, dialogues, steps: int, lr: float = 3e-3) -> None:
    data = [encode_dialogue(tokenizer, d, 256) for d in dialogues]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        batch = collate(
            [data[(step * 8 + i) % len(data)] for i in range(8)], tokenizer.pad_token_id
        )
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def test_training_on_a_private_domain_raises_its_score_and_quality_matters(test_base):
    base, tokenizer = test_base
    bench = Benchmark.generated(tokenizer, PRIVATE_DOMAINS, 4, seed=0, device="cpu")
    before = bench.evaluate(base).domains
    good, bad = copy.deepcopy(base), copy.deepcopy(base)
    with torch_threads(1):  # tiny matrices: one thread is faster, and immune to busy CPUs
        train(good, tokenizer, generate_org_dialogues("bank", 64, seed=0, org="a", quality=1.0), 30)
        train(bad, tokenizer, generate_org_dialogues("bank", 64, seed=0, org="a", quality=0.0), 30)
    after_good, after_bad = bench.evaluate(good).domains, bench.evaluate(bad).domains
    assert after_good["bank"].score > before["bank"].score + 3.0
    assert after_good["bank"].fact_accuracy >= 0.75
    assert after_bad["bank"].fact_accuracy < after_good["bank"].fact_accuracy - 0.5
    assert after_good["bank"].score - before["bank"].score > max(
        after_good[d].score - before[d].score for d in PRIVATE_DOMAINS if d != "bank"
    )


def test_tiny_is_about_one_million_parameters_and_test_is_much_smaller():
    counts = {}
    for name in ("test", "tiny"):
        preset = PRESETS[name]
        tokenizer = build_tokenizer(
            dataclasses.replace(preset, pretrain_dialogues_per_domain=50), 0
        )
        with torch.device("meta"):
            model = LlamaForCausalLM(preset.llama_config(tokenizer))
        counts[name] = sum(p.numel() for p in model.parameters())
    assert 0.8e6 <= counts["tiny"] <= 1.2e6
    assert counts["test"] < counts["tiny"] / 5


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hidden_size": 50}, "num_heads"),
        ({"num_layers": 0}, "num_layers"),
        ({"pretrain_lr": 0.0}, "pretrain_lr"),
    ],
)
def test_bad_presets_name_the_field(change, field):
    with pytest.raises(ConfigError) as info:
        dataclasses.replace(PRESETS["test"], **change)
    assert info.value.field == field


def save_hf_model(tokenizer, path, template: str | None, *, pad: bool = True) -> None:
    """A randomly initialised Llama and a copy of ``tokenizer`` saved as a Hugging Face folder."""
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = template
    if not pad:
        tok.pad_token = None
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)


CHATML = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def test_any_local_hugging_face_model_loads_with_its_chat_template(test_base, tmp_path):
    _, tokenizer = test_base
    save_hf_model(tokenizer, tmp_path, CHATML, pad=False)
    model, tok = load_base(str(tmp_path), device="cpu", dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and not model.training
    assert tok.chat_template == CHATML and tok.pad_token == tok.eos_token
    result = Benchmark.generated(tok, ["bank"], 2, seed=0, device="cpu").evaluate(model)
    assert 0.0 <= result.score <= 10.0 and result.domains["bank"].num_probes == 6


def test_models_without_a_chat_template_or_unknown_names_are_rejected(test_base, tmp_path):
    save_hf_model(test_base[1], tmp_path, None)
    with pytest.raises(ConfigError, match="chat_template"):
        load_base(str(tmp_path), device="cpu")
    with pytest.raises(ConfigError, match="neither a preset"):
        load_base(str(tmp_path / "missing-model"), device="cpu")


def test_a_damaged_cache_folder_is_reported_not_rebuilt_silently(tmp_path):
    path = base_cache_path("test", 0, tmp_path)
    path.mkdir(parents=True)
    (path / "fedenv_build.json").write_text("{}")  # complete-looking, but no model files
    with pytest.raises(ConfigError, match="delete it to rebuild"):
        load_base("test", device="cpu", cache_dir=tmp_path)
