"""Device and dtype selection: ``"auto"`` picks CUDA when present, bf16 on GPU and fp32 on CPU."""

from __future__ import annotations

import torch

from fedenv.errors import ConfigError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: ``cuda`` when available, else ``cpu``; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as is.

    Asking for CUDA on a machine without it is an error, not a silent fall-back to CPU.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ConfigError("device", f"must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(
            "device", f"must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}"
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "device", f"{device!r} requested but CUDA is not available on this machine"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(
                "device",
                f"{device!r} requested but only {torch.cuda.device_count()} CUDA devices exist",
            )
    elif resolved.type != "cpu":
        raise ConfigError("device", f"must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    return resolved


def resolve_dtype(
    dtype: str | torch.dtype = "auto", device: str | torch.device = "cpu"
) -> torch.dtype:
    """``"auto"`` -> bfloat16 on CUDA (float16 where bf16 is unsupported), float32 on CPU;
    otherwise ``"float32"``, ``"bfloat16"`` or ``"float16"`` (or such a ``torch.dtype`` itself)."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ConfigError("dtype", f"must be one of auto, {', '.join(DTYPES)}, got {dtype}")
        return dtype
    if dtype == "auto":
        device = resolve_device(device)
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in DTYPES:
        raise ConfigError("dtype", f"must be one of auto, {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]
