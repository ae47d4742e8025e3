"""Scoring aggregates without committing them: the base weights of the adapted modules, and two
ways to evaluate candidate adapters on the benchmark.

The live model's adapted modules hold ``W = W0 + merged`` (``merged``: the changes ``flora`` has
folded into the base so far, zero otherwise), recomputed from a snapshot of the original ``W0``
(:meth:`CoalitionEvaluator.install_base`), so no rounding ever accumulates.

- **Merged** (:meth:`CoalitionEvaluator.merged`, one candidate per pass): every adapted module's
  total change (``merged + scale * B @ A``, any rank) is written into its base weight, the
  benchmark runs with the LoRA layers off, and the base weights are restored bit for bit. What it
  returns is exactly what the committed model scores.
- **Grouped** (:meth:`CoalitionEvaluator.grouped`, many candidates per pass): the benchmark's
  rows are repeated once per candidate and candidate ``c``'s rows run through its own low-rank
  change (:func:`~fedenv.engine.multi_lora.grouped_lora`) on top of ``W0 + merged``. Equal to the
  merged path up to floating-point rounding (``tests/test_coalitions.py``: 1e-5); it pays where
  one large pass is much faster than several small ones (GPUs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from fedenv.engine.lora import Adapter, dense_deltas
from fedenv.engine.multi_lora import adapters_off, grouped_lora, stack_factors

if TYPE_CHECKING:
    from fedenv.data.benchmark import Benchmark, BenchmarkResult

GROUPED_POSITIONS = 1 << 16  # token positions per grouped pass (all candidates' copies together)


class CoalitionEvaluator:
    """Evaluates candidate adapters on ``benchmark`` with ``model``'s LoRA ``layers`` switched off.

    ``threads`` is a context manager factory under which every pass runs (the engine's CPU
    threads)."""

    def __init__(
        self,
        model: torch.nn.Module,
        layers: Mapping[str, torch.nn.Module],
        benchmark: Benchmark,
        *,
        scale: float,
        threads: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        forward: Callable[..., Any] | None = None,
    ) -> None:
        self.model = model
        self.forward = forward  # the merged path's call of model (e.g. a CompiledCall)
        self.layers = dict(layers)
        self.modules = sorted(self.layers)
        self.benchmark = benchmark
        self.scale = scale
        self.threads = threads
        self._weights = {m: layer.base_layer.weight for m, layer in self.layers.items()}
        self.original = {m: w.detach().clone() for m, w in self._weights.items()}
        self._merged: Mapping[str, torch.Tensor] = {}

    def install_base(self, merged: Mapping[str, torch.Tensor]) -> None:
        """Set every adapted module's base weight to ``W0 + merged`` (``W0`` where absent)."""
        self._merged = merged
        with torch.no_grad():
            for module, weight in self._weights.items():
                if module in merged:
                    weight.copy_(self.original[module].float() + merged[module])
                else:
                    weight.copy_(self.original[module])

    def total_deltas(self, adapter: Adapter) -> dict[str, torch.Tensor]:
        """Dense change of every adapted module: merged changes plus ``scale * B @ A``."""
        deltas = dense_deltas(adapter, self.scale)
        merged = self._merged
        return {m: merged[m] + d if m in merged else d for m, d in deltas.items()}

    def merged(self, adapter: Adapter) -> BenchmarkResult:
        """The benchmark of the model whose adapted weights are ``W0 + total_deltas(adapter)``."""
        deltas = self.total_deltas(adapter)
        try:
            with torch.no_grad():
                for module, weight in self._weights.items():
                    weight.copy_(self.original[module].float() + deltas[module])
            with self.threads(), adapters_off(self.layers):
                return self.benchmark.evaluate(self.model, forward=self.forward)
        finally:
            self.install_base(self._merged)

    def grouped(self, adapters: Sequence[Adapter]) -> list[BenchmarkResult]:
        """The benchmark of each adapter on ``W0 + merged``, as many per pass as fit in
        :data:`GROUPED_POSITIONS`."""
        per_copy = max(w.rows * w.width for w in self.benchmark.workload)
        chunk = max(1, GROUPED_POSITIONS // per_copy)
        results: list[BenchmarkResult] = []
        for first in range(0, len(adapters), chunk):
            part = adapters[first : first + chunk]
            with torch.no_grad():
                factors = stack_factors(part, self.modules)
            with self.threads(), grouped_lora(self.layers, factors, self.scale):
                results.extend(self.benchmark.evaluate_copies(self.model, len(part)))
        return results
