"""A model's forward through ``torch.compile``, or eagerly when compiling is off or fails.

:class:`CompiledCall` wraps ``model(...)``: the engine calls it for one-at-a-time local training
and for merged coalition evaluation (``training.compile``). Inductor fuses the elementwise work
around the matrix products (norms, rotary embeddings, SiLU, the LoRA scaling, the loss) into
generated kernels, which is where a small model's step spends most of its time on a CPU.

The first call of each kind compiles (training: one graph whose batch width is dynamic, since each
step is cut to its longest row; evaluation: one graph per benchmark batch shape); compiled code
is kept in ``$TORCHINDUCTOR_CACHE_DIR``, so a later process compiles much faster. The model's
own ``train()``/``eval()`` state and parameters stay the caller's: the wrapper only replaces the
call. If compiling fails (no C++ compiler, an unsupported operator), the call is retried eagerly;
when that succeeds, compiling is switched off for good, with a warning, and when it fails too,
its error is the one raised.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch


class CompiledCall:
    """``model(*args, **kwargs)``, compiled when ``enabled`` (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, *, enabled: bool) -> None:
        self.model = model
        self._compiled = torch.compile(model.__call__) if enabled else None

    @property
    def enabled(self) -> bool:
        """Whether calls go through the compiled code (it turns off after a failed compile)."""
        return self._compiled is not None

    def dynamic(self, *tensors: torch.Tensor, dim: int) -> None:
        """Tell the compiler that ``dim`` of these inputs varies from call to call (one graph
        for every size); nothing when not compiling."""
        if self._compiled is not None:
            for tensor in tensors:
                torch._dynamo.mark_dynamic(tensor, dim)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._compiled is None:
            return self.model(*args, **kwargs)
        try:
            return self._compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compile failure: try eagerly before failing
            result = self.model(*args, **kwargs)
            self._compiled = None
            warnings.warn(
                f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); the engine runs "
                "eagerly from now on (training.compile = false avoids the attempt)",
                RuntimeWarning,
                stacklevel=2,
            )
            return result
