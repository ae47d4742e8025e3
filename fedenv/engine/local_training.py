"""Local LoRA training on one organization's data: the inner loop of a federated round.

Everything that can be done once is done once: each organization's dialogues are tokenized into
right-padded tensors on the device when the engine is built (:class:`TokenizedDataset`), the model
is wrapped with peft once, and one AdamW serves every client (:class:`LocalTrainer`). A client
then costs exactly its optimizer steps: copy the global adapter into the live LoRA parameters in
place, clear the optimizer state, run ``local_steps`` steps, clone the parameters out.

Batches are right-padded and cut to their longest example, and no attention mask is passed: with
causal attention, no real token ever attends to the padding that follows it, and padding carries
no loss (label -100), so the loss is the same as with a mask, without building one.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from fedenv.data import Dialogue
from fedenv.data.encoding import IGNORE_INDEX, encode_dialogue
from fedenv.engine.compiled import CompiledCall
from fedenv.engine.lora import Adapter
from fedenv.engine.settings import LoraSettings
from fedenv.errors import ConfigError


def attach_lora(
    model: torch.nn.Module, settings: LoraSettings
) -> tuple[torch.nn.Module, dict[str, torch.nn.Parameter]]:
    """Wrap ``model`` with peft (in place) and return the wrapper and its live LoRA parameters,
    keyed like ``get_peft_model_state_dict`` (the adapter name dropped). The global RNG is left
    as it was (peft draws the initial weights from it; the engine overwrites them)."""
    from peft import PeftModel, get_peft_model, get_peft_model_state_dict

    if isinstance(model, PeftModel):
        raise ConfigError("model", "pass the base model; the engine wraps it with peft itself")
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers deprecations seen by peft
        try:
            peft_model = get_peft_model(model, settings.peft_config()).eval()
        except ValueError as exc:  # e.g. "Target modules {...} not found in the base model"
            raise ConfigError("lora.target_modules", str(exc)) from exc
    name = peft_model.active_adapter
    parameters = {}
    for key, parameter in peft_model.named_parameters():
        for part in ("lora_A", "lora_B"):
            marker = f".{part}.{name}."
            if marker in key:
                parameters[key.replace(marker, f".{part}.")] = parameter
    if not parameters or set(parameters) != set(get_peft_model_state_dict(peft_model)):
        raise ConfigError("lora", "peft's LoRA parameters do not match its state dict keys")
    return peft_model, parameters


@dataclass(frozen=True)
class TokenizedDataset:
    """One organization's examples, tokenized once: right-padded ``[N, L]`` tensors on the device.

    ``lengths`` (on the CPU) lets a batch be cut to its longest example without a device sync.
    Examples with no supervised token left after truncation to ``max_len`` are dropped.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    lengths: torch.Tensor

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @classmethod
    def build(
        cls,
        tokenizer,
        dialogues: Sequence[Dialogue],
        *,
        max_len: int,
        device: torch.device | str = "cpu",
        source: str = "dataset",
    ) -> TokenizedDataset:
        encoded = []
        for dialogue in dialogues:
            input_ids, labels = encode_dialogue(tokenizer, dialogue, max_len)
            if any(label != IGNORE_INDEX for label in labels[1:]):
                encoded.append((input_ids, labels))
        if not encoded:
            raise ConfigError(
                source, f"no dialogue with an assistant token within max_len={max_len}"
            )
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
        labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
        for row, (ids, labs) in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            labels[row, : len(labs)] = torch.tensor(labs, dtype=torch.long)
        lengths = torch.tensor([len(ids) for ids, _ in encoded], dtype=torch.long)
        return cls(input_ids.to(device), labels.to(device), lengths)


def batch_order(
    num_examples: int, steps: int, batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """``[steps, batch_size]`` example indices: epochs of seeded permutations of the first
    ``num_examples`` examples, laid end to end (an epoch boundary may fall inside a batch)."""
    needed = steps * batch_size
    epochs = math.ceil(needed / num_examples)
    order = torch.cat([torch.randperm(num_examples, generator=generator) for _ in range(epochs)])
    return order[:needed].view(steps, batch_size)


@dataclass(frozen=True)
class TrainingJob:
    """One participant's part of a round: ``steps`` optimizer steps on the first
    ``num_examples`` examples of ``data``, batch order and dropout seeded with ``seed``."""

    data: TokenizedDataset
    num_examples: int
    steps: int
    seed: int

    def batch_order(self, batch_size: int) -> torch.Tensor:
        """``[steps, batch_size]`` example indices (:func:`batch_order`), on the CPU."""
        generator = torch.Generator().manual_seed(self.seed)
        return batch_order(self.num_examples, self.steps, batch_size, generator)


TrainedAdapter = tuple[Adapter, float, float]  # adapter, mean training loss, seconds


class LocalTrainer:
    """Trains the live LoRA parameters of a peft model, one client at a time.

    ``parameters`` maps adapter keys to the model's LoRA parameters; only those whose key is in
    ``trainable`` get gradients and optimizer updates (FFA-LoRA freezes every ``lora_A``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        parameters: Mapping[str, torch.nn.Parameter],
        trainable: Sequence[str],
        *,
        lr: float,
        weight_decay: float,
        max_grad_norm: float | None,
        forward: CompiledCall | None = None,
    ) -> None:
        self.model = model
        self.forward = CompiledCall(model, enabled=False) if forward is None else forward
        self.parameters = dict(parameters)
        self.trainable = [self.parameters[key] for key in trainable]
        self.trainable_keys = frozenset(trainable)
        self.max_grad_norm = max_grad_norm
        self.device = next(iter(self.parameters.values())).device
        fused = self.device.type == "cuda"  # one kernel for all parameters; foreach on the CPU
        self.optimizer = torch.optim.AdamW(
            self.trainable, lr=lr, weight_decay=weight_decay, fused=fused, foreach=not fused
        )

    def load(self, adapter: Mapping[str, torch.Tensor]) -> None:
        """Copy ``adapter`` into the live LoRA parameters, in place."""
        with torch.no_grad():
            for key, parameter in self.parameters.items():
                parameter.copy_(adapter[key])

    def snapshot(self) -> Adapter:
        """The live LoRA parameters as a detached, cloned adapter."""
        return {key: parameter.detach().clone() for key, parameter in self.parameters.items()}

    def train_jobs(
        self, start: Mapping[str, torch.Tensor], jobs: Sequence[TrainingJob], batch_size: int
    ) -> list[TrainedAdapter]:
        """:meth:`train` each job in turn from ``start``; the model is in training mode for all
        of them (switching walks every module: once, not per job) and in eval mode afterwards,
        and the live parameters hold ``start`` again."""
        trained = []
        self.model.train()
        try:
            for job in jobs:
                begin = time.perf_counter()
                adapter, loss = self.train(start, job, batch_size)
                trained.append((adapter, loss, time.perf_counter() - begin))
        finally:
            self.model.eval()
            self.load(start)
        return trained

    def train(
        self, start: Mapping[str, torch.Tensor], job: TrainingJob, batch_size: int
    ) -> tuple[Adapter, float]:
        """Train from ``start`` for ``job.steps`` AdamW steps on the job's examples.

        Batch order comes from a CPU generator and dropout from the global RNG, both seeded with
        ``job.seed`` (the global RNG state is restored afterwards). Returns the trained adapter
        and the mean training loss over the steps. The caller puts the model in training mode
        (:meth:`train_jobs` does).
        """
        self.load(start)
        # peft's adapter toggles (e.g. ``disable_adapter()``) reset requires_grad: set it each time
        for key, parameter in self.parameters.items():
            parameter.requires_grad_(key in self.trainable_keys)
        self.optimizer.state.clear()
        data, steps = job.data, job.steps
        order = job.batch_order(batch_size)
        max_lengths = data.lengths[order].amax(dim=1).tolist()
        order = order.to(self.device)
        losses = torch.zeros(steps, device=self.device)
        fork_devices = [self.device] if self.device.type == "cuda" else []  # CPU is always forked
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(job.seed)
            for step in range(steps):
                rows, width = order[step], max_lengths[step]
                # contiguous: one memory layout whatever the width (one compiled graph)
                input_ids = data.input_ids.index_select(0, rows)[:, :width].contiguous()
                labels = data.labels.index_select(0, rows)[:, :width].contiguous()
                self.forward.dynamic(input_ids, labels, dim=1)  # one graph, every width
                loss = self.forward(input_ids=input_ids, labels=labels, use_cache=False).loss
                loss.backward()
                if self.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(self.trainable, self.max_grad_norm, foreach=True)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                losses[step] = loss.detach()
        return self.snapshot(), float(losses.mean())
