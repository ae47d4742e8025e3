"""Local training of every participant of a round at once: one forward and backward per step.

Step ``s`` of :meth:`BatchedTrainer.train` stacks the batches of every participant that still has
a step ``s`` (participants' ``local_steps`` differ), each with its own adapter through
:func:`~fedenv.engine.multi_lora.grouped_lora`, and takes one optimizer step for all of them.
What each participant computes is what :class:`~fedenv.engine.local_training.LocalTrainer` would
compute for it alone, up to floating-point summation order (``tests/test_batched_training.py``
holds the two to 1e-5):

- the same seeded batch order per participant (:func:`~fedenv.engine.local_training.batch_order`);
- its own loss, the mean over its own supervised tokens; the step minimizes the sum of these
  losses, whose gradient with respect to a participant's adapter is its own loss's gradient;
- its own gradient-norm clipping, and its own AdamW state (one AdamW holds every participant's
  tensors; a participant without a step ``s`` has no gradient there, so AdamW leaves it alone).

Rows are right-padded to the longest row of the step; with causal attention and no loss on
padding, the padding changes nothing for real tokens. Dropout would draw different random masks
than the sequential path, so the engine uses this trainer only for models without dropout.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import torch

from fedenv.data.encoding import IGNORE_INDEX
from fedenv.engine.local_training import (
    TokenizedDataset,
    TrainedAdapter,
    TrainingJob,
)
from fedenv.engine.multi_lora import grouped_lora, stack_factors


def _rows(data: TokenizedDataset, rows: torch.Tensor, width: int, pad_id: int):
    """``(input_ids, labels)`` of ``rows``, cut or right-padded to ``width``."""
    input_ids = data.input_ids.index_select(0, rows)[:, :width]
    labels = data.labels.index_select(0, rows)[:, :width]
    missing = width - input_ids.shape[1]
    if missing > 0:
        input_ids = torch.nn.functional.pad(input_ids, (0, missing), value=pad_id)
        labels = torch.nn.functional.pad(labels, (0, missing), value=IGNORE_INDEX)
    return input_ids, labels


class BatchedTrainer:
    """Trains many adapters of one peft model in shared passes (see the module docstring)."""

    def __init__(
        self,
        model: torch.nn.Module,
        layers: Mapping[str, torch.nn.Module],
        trainable: Sequence[str],
        *,
        scale: float,
        lr: float,
        weight_decay: float,
        max_grad_norm: float | None,
        pad_id: int,
    ) -> None:
        self.model = model
        self.layers = dict(layers)
        self.modules = sorted(self.layers)
        self.trainable = frozenset(trainable)
        self.scale = scale
        self.lr, self.weight_decay, self.max_grad_norm = lr, weight_decay, max_grad_norm
        self.pad_id = pad_id

    def train_jobs(
        self, start: Mapping[str, torch.Tensor], jobs: Sequence[TrainingJob], batch_size: int
    ) -> list[TrainedAdapter]:
        """Each job's trained adapter (from ``start``), its mean training loss, and its share of
        the time (the passes are shared: the total divided evenly)."""
        begin = time.perf_counter()
        device = next(iter(start.values())).device
        adapters = [
            {k: t.detach().clone().requires_grad_(k in self.trainable) for k, t in start.items()}
            for _ in jobs
        ]
        trainable = [[t for k, t in sorted(a.items()) if k in self.trainable] for a in adapters]
        fused = device.type == "cuda"
        optimizer = torch.optim.AdamW(
            [t for group in trainable for t in group],
            lr=self.lr,
            weight_decay=self.weight_decay,
            fused=fused,
            foreach=not fused,
        )
        orders = [job.batch_order(batch_size) for job in jobs]
        widths = [job.data.lengths[order].amax(dim=1).tolist() for job, order in zip(jobs, orders)]
        orders = [order.to(device) for order in orders]
        losses = [torch.zeros(job.steps, device=device) for job in jobs]
        self.model.train()
        try:
            for step in range(max(job.steps for job in jobs)):
                active = [j for j, job in enumerate(jobs) if job.steps > step]
                width = max(widths[j][step] for j in active)
                batches = [_rows(jobs[j].data, orders[j][step], width, self.pad_id) for j in active]
                input_ids = torch.cat([ids for ids, _ in batches])
                labels = torch.cat([labs for _, labs in batches])
                factors = stack_factors([adapters[j] for j in active], self.modules)
                with grouped_lora(self.layers, factors, self.scale):
                    logits = self.model(input_ids=input_ids, use_cache=False).logits
                group_losses = _group_losses(logits, labels, len(active))
                group_losses.sum().backward()
                if self.max_grad_norm is not None:
                    for j in active:
                        torch.nn.utils.clip_grad_norm_(
                            trainable[j], self.max_grad_norm, foreach=True
                        )
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                detached = group_losses.detach()
                for g, j in enumerate(active):
                    losses[j][step] = detached[g]
        finally:
            self.model.eval()
        seconds = (time.perf_counter() - begin) / len(jobs)
        return [
            ({k: t.detach().clone() for k, t in adapter.items()}, float(loss.mean()), seconds)
            for adapter, loss in zip(adapters, losses)
        ]


def _group_losses(logits: torch.Tensor, labels: torch.Tensor, groups: int) -> torch.Tensor:
    """Per group of rows, the mean next-token cross-entropy over its supervised tokens (as
    transformers' causal-LM loss computes it for one group alone)."""
    shifted = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        shifted.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(groups, -1)
    counts = (shifted != IGNORE_INDEX).view(groups, -1).sum(dim=1)
    return per_token.sum(dim=1) / counts
