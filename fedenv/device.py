"""Device and dtype names, checked in one place: ``"auto"`` picks CUDA when present, bf16 on GPU
and fp32 on CPU.

fedenv runs on ``cpu`` and ``cuda`` (``cuda:N``).  Apple's ``mps`` is refused everywhere (the
scenario, evaluate.py, the engine): the benchmark scores in float64, which MPS does not have.
:data:`DeviceName` and :data:`DtypeName` are the pydantic field types every config uses, so a
scenario file, a command-line option and a direct call fail with the same message; torch is
imported only to resolve a name into a ``torch.device`` / ``torch.dtype``.

CPU threads: :func:`cpu_threads` divides the CPUs this process is allowed on
(``os.sched_getaffinity``, which honours ``taskset``, cgroup cpusets and container limits, unlike
``os.cpu_count``) among the env processes that share them, so N processes on N cores run one
thread each and never oversubscribe.  Whoever starts env processes says how many share the
machine in the ``FEDENV_PROCESSES`` environment variable (inherited by child processes;
:func:`fedenv.evaluation.play.compare` sets it for its workers); unset means one.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator

from fedenv.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def check_device(device: str) -> str:
    """``device`` if it names a device fedenv runs on (``auto``, ``cpu``, ``cuda``, ``cuda:N``);
    :class:`ConfigError` otherwise.  Whether that device exists here is :func:`resolve_device`'s
    question."""
    if isinstance(device, str) and device.split(":")[0] == "mps":
        raise ConfigError(
            "device", f"{device!r} is not supported (MPS has no float64); use {DEVICES}"
        )
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ConfigError("device", f"must be {DEVICES}, got {device!r}")
    return device


def check_dtype(dtype: str) -> str:
    """``dtype`` if it is one of :data:`DTYPES`; :class:`ConfigError` otherwise."""
    if dtype not in DTYPES:
        raise ConfigError("dtype", f"must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


DeviceName = Annotated[str, AfterValidator(check_device)]
"""A config field holding a device name (checked by :func:`check_device`)."""
DtypeName = Annotated[str, AfterValidator(check_dtype)]
"""A config field holding a dtype name (checked by :func:`check_dtype`)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: ``cuda`` when available, else ``cpu``; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as is.

    Asking for CUDA on a machine without it is an error, not a silent fall-back to CPU.
    """
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    device = check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
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
    return resolved


def resolve_dtype(
    dtype: str | torch.dtype = "auto", device: str | torch.device = "cpu"
) -> torch.dtype:
    """``"auto"`` -> bfloat16 on CUDA (float16 where bf16 is unsupported), float32 on CPU;
    otherwise ``"float32"``, ``"bfloat16"`` or ``"float16"`` (or such a ``torch.dtype`` itself)."""
    import torch

    named = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if isinstance(dtype, torch.dtype):
        if dtype not in named.values():
            raise ConfigError("dtype", f"must be one of {', '.join(DTYPES)}, got {dtype}")
        return dtype
    if check_dtype(dtype) == "auto":
        device = resolve_device(device)
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return named[dtype]


def place_model(model: torch.nn.Module, device: str, dtype: str) -> torch.nn.Module:
    """Move ``model`` to ``device`` and ``dtype`` (``"auto"`` keeps what it has)."""
    target = next(model.parameters()).device if device == "auto" else resolve_device(device)
    if dtype == "auto":
        return model.to(device=target)
    return model.to(device=target, dtype=resolve_dtype(dtype, target))


PROCESSES_VARIABLE = "FEDENV_PROCESSES"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count`` where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def sharing_processes() -> int:
    """How many env processes share this process's CPUs (``$FEDENV_PROCESSES``, default 1)."""
    value = os.environ.get(PROCESSES_VARIABLE, "").strip()
    if not value:
        return 1
    try:
        processes = int(value)
    except ValueError:
        processes = 0
    if processes < 1:
        raise ConfigError(
            PROCESSES_VARIABLE, f"must be a positive integer (environment), got {value!r}"
        )
    return processes


def cpu_threads(processes: int | None = None) -> int:
    """Torch threads for one of ``processes`` processes (default :func:`sharing_processes`)
    sharing :func:`available_cpus`: at least one, never more than its share."""
    processes = sharing_processes() if processes is None else processes
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ConfigError("processes", f"must be a positive integer, got {processes!r}")
    return max(1, available_cpus() // processes)
