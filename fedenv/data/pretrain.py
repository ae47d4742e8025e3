"""Build the embedded base model: train the tokenizer, pretrain a small Llama on the public corpus.

Everything is seeded by one ``seed``: the corpus, the tokenizer, the weight init (in a forked RNG,
so the caller's global RNG is untouched) and the batch order. On CPU, the same seed and preset
give the same weights, byte for byte.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from fedenv.data.dialogues import public_corpus
from fedenv.data.domains import lexicon
from fedenv.data.encoding import collate, render
from fedenv.data.tokenizer import train_tokenizer
from fedenv.errors import ConfigError

# Builds run on one CPU thread: the weights then do not depend on the machine's core count (parallel
# reductions round differently), and tiny matrices gain little from a second thread anyway.
BUILD_THREADS = 1


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op CPU threads, then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class ModelPreset:
    """Sizes of an embedded base model and how long to pretrain it."""

    vocab_size: int  # upper bound; the BPE stops earlier when the corpus has nothing left to merge
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_seq_len: int
    pretrain_steps: int
    pretrain_batch_size: int = 32
    pretrain_lr: float = 3e-3
    pretrain_dialogues_per_domain: int = 400
    warmup_fraction: float = 0.1
    build_on: str = "cpu"  # "cpu": one CPU thread, bit-reproducible; "auto": CUDA when present

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "intermediate_size",
            "max_seq_len",
            "pretrain_steps",
            "pretrain_batch_size",
            "pretrain_dialogues_per_domain",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(name, f"must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                "num_heads", f"must divide hidden_size={self.hidden_size}, got {self.num_heads}"
            )
        if (self.hidden_size // self.num_heads) % 2:
            raise ConfigError(
                "num_heads", "hidden_size / num_heads must be even (rotary embeddings)"
            )
        if not self.pretrain_lr > 0:
            raise ConfigError("pretrain_lr", f"must be > 0, got {self.pretrain_lr!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError("warmup_fraction", f"must be in [0, 1), got {self.warmup_fraction!r}")
        if self.build_on not in ("cpu", "auto"):
            raise ConfigError("build_on", f"must be 'cpu' or 'auto', got {self.build_on!r}")

    def llama_config(self, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_heads,
            max_position_embeddings=self.max_seq_len,
            tie_word_embeddings=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=None,
        )


def build_tokenizer(preset: ModelPreset, seed: int) -> PreTrainedTokenizerFast:
    """BPE trained on the public corpus plus the lexicon (all words, no private fact)."""
    corpus = public_corpus(seed, preset.pretrain_dialogues_per_domain)
    texts = lexicon() + [m.content for d in corpus for m in d.messages]
    return train_tokenizer(texts, preset.vocab_size)


def init_model(
    preset: ModelPreset, tokenizer: PreTrainedTokenizerFast, seed: int
) -> LlamaForCausalLM:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(preset.llama_config(tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def lr_at(step: int, preset: ModelPreset) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak learning rate."""
    warmup = max(1, round(preset.warmup_fraction * preset.pretrain_steps))
    if step < warmup:
        return preset.pretrain_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, preset.pretrain_steps - warmup)
    return preset.pretrain_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    preset: ModelPreset,
    seed: int,
    *,
    progress: bool = True,
    desc: str = "pretraining base",
) -> list[float]:
    """Next-token training on every non-pad token of the public corpus; returns each step's loss."""
    corpus = public_corpus(seed, preset.pretrain_dialogues_per_domain)
    texts = [render(tokenizer, d.messages) for d in corpus]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    examples = [(ids[: preset.max_seq_len], ids[: preset.max_seq_len]) for ids in encoded]
    rng = random.Random(seed)
    order: list[int] = []
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=preset.pretrain_lr, betas=(0.9, 0.95), weight_decay=0.01
    )
    device = next(model.parameters()).device
    model.train()
    losses = []
    for step in tqdm(range(preset.pretrain_steps), desc=desc, disable=not progress, unit="step"):
        if len(order) < preset.pretrain_batch_size:
            order.extend(rng.sample(range(len(examples)), len(examples)))
        batch = collate(
            [examples[order.pop()] for _ in range(preset.pretrain_batch_size)],
            tokenizer.pad_token_id,
        )
        batch = {key: tensor.to(device) for key, tensor in batch.items()}
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, preset)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return losses


def build_base(
    preset: ModelPreset,
    seed: int,
    *,
    progress: bool = True,
    name: str = "",
    device: str = "cpu",
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast, dict]:
    """Tokenizer, pretrained model (returned on the CPU), and a record of the build (sizes,
    losses, timings). ``device``: where to pretrain (``cpu``: on :data:`BUILD_THREADS`)."""
    start = time.perf_counter()
    tokenizer = build_tokenizer(preset, seed)
    model = init_model(preset, tokenizer, seed).to(device)
    tokenizer_s = time.perf_counter() - start
    with torch_threads(BUILD_THREADS):
        losses = pretrain(
            model,
            tokenizer,
            preset,
            seed,
            progress=progress,
            desc=f"pretraining fedenv base {name!r}",
        )
    model = model.to("cpu")
    info = {
        "preset": name,
        "preset_config": asdict(preset),
        "seed": seed,
        "vocab_size": len(tokenizer),
        "parameters": sum(p.numel() for p in model.parameters()),
        "first_loss": losses[0] if losses else None,
        "final_loss": sum(losses[-10:]) / len(losses[-10:]) if losses else None,
        "losses": losses,
        "tokenizer_seconds": round(tokenizer_s, 3),
        "build_seconds": round(time.perf_counter() - start, 3),
        "torch_threads": BUILD_THREADS,
        "device": device,
    }
    return model, tokenizer, info
