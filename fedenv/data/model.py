"""The base model: an embedded preset (built, pretrained, cached locally) or any Hugging Face LM.

``load_base("tiny")`` builds the preset once (a progress bar shows the pretraining), saves it with
``save_pretrained`` under ``$FEDENV_CACHE/<key>/`` (default ``~/.cache/fedenv``), and loads it from
there afterwards. The key hashes the preset's sizes, the seed and the code of every module the
build depends on (:func:`code_fingerprint`: their syntax trees without docstrings), so a code
change never serves a stale model, and a docstring or comment change never rebuilds one. ``load_base("<name or path>")``
loads a Hugging Face model and its tokenizer with ``from_pretrained`` and uses its chat template.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
from huggingface_hub import utils as hub_utils
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from fedenv.data import dialogues, domains, encoding, pretrain, tokenizer
from fedenv.data.encoding import collate, encode_dialogue
from fedenv.data.pretrain import ModelPreset, build_base
from fedenv.device import resolve_device, resolve_dtype
from fedenv.errors import ConfigError

__all__ = [
    "PRESETS",
    "ModelPreset",
    "base_cache_path",
    "code_fingerprint",
    "collate",
    "default_cache_dir",
    "encode_dialogue",
    "load_base",
    "resolve_device",
    "resolve_dtype",
]

# "test": for the test suite; builds in a few seconds and still separates public from private
# domains. "tiny" (the default): ~1M parameters, built in about half a minute on one CPU core.
# "small": ~28M parameters for GPUs, pretrained on CUDA when present (a minute on a data-center
# GPU; on one CPU core it would take hours). For anything larger, load a real Hugging Face model.
# fmt: off
PRESETS: dict[str, ModelPreset] = {
    "test": ModelPreset(vocab_size=1024, hidden_size=48, num_layers=2, num_heads=2,
                        intermediate_size=128, max_seq_len=256, pretrain_steps=150,
                        pretrain_batch_size=16, pretrain_lr=1e-2,
                        pretrain_dialogues_per_domain=200),
    "tiny": ModelPreset(vocab_size=1024, hidden_size=128, num_layers=4, num_heads=4,
                        intermediate_size=384, max_seq_len=256, pretrain_steps=200,
                        pretrain_batch_size=16, pretrain_lr=6e-3,
                        pretrain_dialogues_per_domain=600),
    "small": ModelPreset(vocab_size=2048, hidden_size=512, num_layers=8, num_heads=8,
                         intermediate_size=1536, max_seq_len=256, pretrain_steps=600,
                         pretrain_batch_size=64, pretrain_lr=2e-3,
                         pretrain_dialogues_per_domain=1500, build_on="auto"),
}
# fmt: on

# The modules whose source decides what a preset build produces.
_BUILD_MODULES = (dialogues, domains, encoding, pretrain, tokenizer)
_BUILD_INFO = "fedenv_build.json"


def default_cache_dir() -> Path:
    """``$FEDENV_CACHE``, or ``~/.cache/fedenv``."""
    return Path(os.environ.get("FEDENV_CACHE") or Path.home() / ".cache" / "fedenv")


def code_fingerprint(sources: Iterable[str]) -> str:
    """SHA-256 of the sources' syntax trees with docstrings removed: comments, docstrings and
    formatting leave it unchanged, any change to the code changes it."""
    digest = hashlib.sha256()
    for source in sources:
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, _DOCUMENTED) and node.body and _is_docstring(node.body[0]):
                node.body = node.body[1:]
        digest.update(ast.dump(tree, include_attributes=False).encode())
    return digest.hexdigest()


_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _code_version() -> str:
    return code_fingerprint(Path(m.__file__).read_text(encoding="utf-8") for m in _BUILD_MODULES)


def base_cache_path(name: str, seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    """Where preset ``name`` built with ``seed`` is (or will be) cached."""
    preset = _preset(name)
    built = {"seed": seed, "code": _code_version(), "device": _build_device(preset)}
    key = json.dumps({"preset": asdict(preset), **built}, sort_keys=True)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"base-{name}-seed{seed}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _build_device(preset: ModelPreset) -> str:
    """Where ``preset`` is pretrained: ``cuda`` for ``build_on="auto"`` presets when present."""
    return "cuda" if preset.build_on == "auto" and torch.cuda.is_available() else "cpu"


def _preset(name: str) -> ModelPreset:
    if name not in PRESETS:
        raise ConfigError("model", f"unknown preset {name!r} (presets: {', '.join(PRESETS)})")
    return PRESETS[name]


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' "Loading weights" / "Writing model shards" bars, then restore them."""
    bars_on, hub_bars_off = (
        hf_logging.is_progress_bar_enabled(),
        hub_utils.are_progress_bars_disabled(),
    )
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars_on:
            hf_logging.enable_progress_bar()
        if not hub_bars_off:
            hub_utils.enable_progress_bars()


def _build_into_cache(name: str, seed: int, path: Path, progress: bool) -> None:
    """Build preset ``name`` into ``path`` atomically (a temporary folder renamed into place)."""
    preset = _preset(name)
    model, tok, info = build_base(
        preset, seed, progress=progress, name=name, device=_build_device(preset)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        with _quiet_transformers():
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
        (tmp / _BUILD_INFO).write_text(json.dumps({**info, "key": path.name}, indent=1) + "\n")
        try:
            os.rename(tmp, path)
        except OSError:
            if not (path / _BUILD_INFO).exists():  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_info(name: str, seed: int = 0, cache_dir: str | Path | None = None) -> dict | None:
    """The record saved with a cached build (sizes, losses, timings), or ``None`` if not built."""
    path = base_cache_path(name, seed, cache_dir) / _BUILD_INFO
    return json.loads(path.read_text()) if path.exists() else None


def load_base(
    spec: str | os.PathLike = "tiny",
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    cache_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model (in eval mode, on ``device``) and its tokenizer.

    ``spec`` is a preset name (see ``PRESETS``; built on first use and cached) or a Hugging Face
    model name / local folder loaded with ``from_pretrained``. ``seed`` only affects presets.
    """
    spec = os.fspath(spec)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    if spec in PRESETS:
        path = base_cache_path(spec, seed, cache_dir)
        if not (path / _BUILD_INFO).exists():
            _build_into_cache(spec, seed, path, progress)
        source, what = str(path), f"the cached build {path} (delete it to rebuild)"
    else:
        source, what = (
            spec,
            f"{spec!r}: neither a preset ({', '.join(PRESETS)}) nor a loadable model",
        )
    try:
        with _quiet_transformers():
            tok = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        raise ConfigError("model", f"{what}: {exc}") from exc
    if tok.chat_template is None:
        raise ConfigError(
            "model", f"the tokenizer of {spec!r} has no chat_template to render dialogues"
        )
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ConfigError(
                "model", f"the tokenizer of {spec!r} has neither a pad nor an eos token"
            )
        tok.pad_token = tok.eos_token
    return model.to(torch_device).eval(), tok
