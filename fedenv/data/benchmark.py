"""Held-out multi-turn dialogue benchmark: assistant-turn NLL and fact accuracy, 0-10 per domain.

Per domain:

- ``nll``: mean negative log-likelihood (nats) of every assistant token (content + end-of-turn),
  given the dialogue so far; ``perplexity = exp(nll)``.
- ``fact_accuracy``: for each fact probe (an assistant turn that states a fact), the model scores
  the true value and its same-kind distractors by the summed log-likelihood of each continuation
  given the dialogue up to the fact, as lm-eval-harness does for multiple choice ("acc"). A probe
  counts as correct when the true value scores strictly higher than every distractor.
- ``score = 10 * (0.5 * max(0, (acc - chance) / (1 - chance)) + 0.5 * exp(-nll))``, where
  ``chance = mean(1 / candidates)`` over the probes. The first half is chance-corrected accuracy
  (guessing scores 0, knowing every fact scores 1); the second is the geometric-mean probability
  of the assistant tokens (1 / perplexity), which needs no reference constant and moves smoothly
  with training even when accuracy is saturated or flat. A domain without probes scores
  ``10 * exp(-nll)``. The global score is the mean over domains.

Speed: everything is tokenized once at construction. Each dialogue becomes one packed row (see
:mod:`fedenv.data.packing`): the dialogue itself (NLL, and the true answer of every probe), then every
distractor's tokens, each attending only to the dialogue before its fact. One forward pass per
``batch_size`` rows (64 by default: usually a single pass) scores everything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from fedenv.data.dialogues import Dialogue, benchmark_dialogues
from fedenv.data.encoding import IGNORE_INDEX, encode_dialogue
from fedenv.data.jsonl import load_jsonl
from fedenv.data.packing import PackedBatch, PackedRow, choice_continuations, pack_batches
from fedenv.device import resolve_device
from fedenv.errors import ConfigError, DataFormatError

DEFAULT_DIALOGUES_PER_DOMAIN = 4
FACT_WEIGHT = 0.5


@dataclass(frozen=True)
class DomainResult:
    nll: float
    perplexity: float
    fact_accuracy: float  # nan when the domain has no fact probes
    score: float  # 0..10
    num_tokens: int = 0  # assistant tokens scored
    num_probes: int = 0


@dataclass(frozen=True)
class BenchmarkResult:
    """Read-only: the engine hands the same cached result to every caller."""

    score: float  # mean of the domain scores
    domains: dict[str, DomainResult] = field(default_factory=dict)


def domain_score(nll: float, fact_accuracy: float, chance: float) -> float:
    """The 0-10 score of a domain (see the module docstring)."""
    fluency = math.exp(-nll)
    if math.isnan(fact_accuracy):
        return 10.0 * fluency
    knowledge = min(1.0, max(0.0, (fact_accuracy - chance) / (1.0 - chance)))
    return 10.0 * (FACT_WEIGHT * knowledge + (1.0 - FACT_WEIGHT) * fluency)


@dataclass(frozen=True)
class ForwardWork:
    """One packed forward pass: ``rows x width`` positions, of which ``tokens`` are real; they
    attend to ``pairs`` (query, key) pairs in all; ``scored`` positions need logits."""

    rows: int
    width: int
    tokens: int
    pairs: int
    scored: int


@dataclass
class _Staged:
    """A packed batch on a device, with its additive attention mask in the model's dtype."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    mask: torch.Tensor
    where: torch.Tensor
    target: torch.Tensor


class Benchmark:
    """Scores a model on held-out dialogues per domain (see the module docstring)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        dialogues_by_domain: Mapping[str, Sequence[Dialogue]],
        *,
        max_len: int = 256,
        batch_size: int = 64,
        device: str | torch.device = "auto",
    ) -> None:
        if not dialogues_by_domain:
            raise ConfigError("dialogues_by_domain", "needs at least one domain")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError("batch_size", f"must be a positive integer, got {batch_size!r}")
        if not isinstance(max_len, int) or max_len < 2:
            raise ConfigError("max_len", f"must be an integer >= 2, got {max_len!r}")
        self.domains: tuple[str, ...] = tuple(dialogues_by_domain)
        self.device = resolve_device(device)
        self.max_len = max_len
        self.batch_size = batch_size
        self.dropped_probes = 0  # probes whose answer lies past max_len
        self.num_probes = 0
        self._probe_domain: list[int] = []  # domain index of each probe
        self._probe_width: list[int] = []  # number of candidates of each probe
        rows = []
        for d_idx, domain in enumerate(self.domains):
            if not dialogues_by_domain[domain]:
                raise ConfigError("dialogues_by_domain", f"domain {domain!r} has no dialogues")
            for dialogue in dialogues_by_domain[domain]:
                rows.append(self._row(tokenizer, d_idx, dialogue))
        self._width = max(self._probe_width, default=1)
        self._tokens = [0] * len(self.domains)
        self._batches = pack_batches(rows, batch_size, tokenizer.pad_token_id)
        for batch in self._batches:
            for kind, index in batch.keys:
                if kind == "nll":
                    self._tokens[index] += 1
        for domain, count in zip(self.domains, self._tokens):
            if count == 0:
                raise ConfigError(
                    "max_len", f"domain {domain!r} has no assistant token within {max_len}"
                )
        self._staged: dict[tuple[torch.device, torch.dtype], list[_Staged]] = {}
        self._groups = [self._group_tensors(b) for b in self._batches]

    @classmethod
    def generated(
        cls,
        tokenizer: PreTrainedTokenizerBase,
        domains: Sequence[str],
        n_per_domain: int = DEFAULT_DIALOGUES_PER_DOMAIN,
        seed: int = 0,
        **kw,
    ) -> Benchmark:
        """The held-out generated dialogues of ``domains`` (``benchmark_dialogues``)."""
        return cls(
            tokenizer, {d: benchmark_dialogues(d, n_per_domain, seed) for d in domains}, **kw
        )

    @classmethod
    def from_jsonl(
        cls, tokenizer: PreTrainedTokenizerBase, files: Mapping[str, str | Path], **kw
    ) -> Benchmark:
        """One JSONL chat file per domain (NLL only: plain chat files carry no fact probes)."""
        return cls(tokenizer, {domain: load_jsonl(path) for domain, path in files.items()}, **kw)

    @property
    def batch_shapes(self) -> list[tuple[int, int]]:
        """``(rows, tokens)`` of each forward pass one evaluation makes."""
        return [tuple(b.input_ids.shape) for b in self._batches]

    @property
    def workload(self) -> list[ForwardWork]:
        """What each forward pass of one evaluation computes (for FLOP counts)."""
        work = []
        for b in self._batches:
            rows, width = b.input_ids.shape
            real = sum(b.lengths)
            pairs = int(b.allowed.sum()) - (rows * width - real)  # padding attends to itself
            work.append(ForwardWork(rows, width, real, pairs, int(b.where.numel())))
        return work

    # ------------------------------------------------------------------------------ construction

    def _row(self, tokenizer: PreTrainedTokenizerBase, d_idx: int, dialogue: Dialogue) -> PackedRow:
        ids, labels = encode_dialogue(tokenizer, dialogue, self.max_len)
        row = PackedRow.of_dialogue(ids)
        for t in range(1, len(ids)):
            if labels[t] != IGNORE_INDEX:
                row.score_dialogue_token(t, ("nll", d_idx))
        for probe in dialogue.facts:
            start, spans = choice_continuations(tokenizer, dialogue, probe)
            if start + len(spans[0]) > row.dialogue_len:
                self.dropped_probes += 1  # the answer was cut off by max_len
                continue
            if row.ids[start : start + len(spans[0])] != spans[0]:
                raise DataFormatError(
                    "<benchmark>", None, f"probe at turn {probe.turn}: answer not in the dialogue"
                )
            p = self.num_probes
            self.num_probes += 1
            self._probe_domain.append(d_idx)
            self._probe_width.append(len(spans))
            row.add_choice(start, spans, [("cand", (p, c)) for c in range(len(spans))])
        return row

    def _group_tensors(
        self, batch: PackedBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Which scored tokens are NLL terms (and of which domain), which are candidate terms (and
        of which ``probe * width + candidate`` slot)."""
        nll_sel, nll_group, cand_sel, cand_group = [], [], [], []
        for i, (kind, index) in enumerate(batch.keys):
            if kind == "nll":
                nll_sel.append(i)
                nll_group.append(index)
            else:
                cand_sel.append(i)
                cand_group.append(index[0] * self._width + index[1])
        return tuple(
            torch.tensor(x, dtype=torch.long) for x in (nll_sel, nll_group, cand_sel, cand_group)
        )

    def _stage(self, device: torch.device, dtype: torch.dtype) -> list[_Staged]:
        """The batches on ``device`` with masks in ``dtype`` (built once per device and dtype)."""
        if (device, dtype) not in self._staged:
            low = torch.finfo(dtype).min
            self._staged[(device, dtype)] = [
                _Staged(
                    b.input_ids.to(device),
                    b.position_ids.to(device),
                    torch.zeros(b.allowed.shape, dtype=dtype)
                    .masked_fill(~b.allowed, low)
                    .to(device),
                    b.where.to(device),
                    b.target.to(device),
                )
                for b in self._batches
            ]
        return self._staged[(device, dtype)]

    # -------------------------------------------------------------------------------- evaluation

    @property
    def resolution(self) -> float:
        """The benchmark's resolution, in score points: the smallest change of the global score
        that one fact probe answered differently makes, ``10 * FACT_WEIGHT / ((1 - chance) *
        probes) / domains`` for the domain with the most probes (0 without probes). A difference
        of scores smaller than this is within what the held-out set can tell apart."""
        steps = []
        for d_idx in range(len(self.domains)):
            probes = [p for p, d in enumerate(self._probe_domain) if d == d_idx]
            if probes:
                chance = sum(1.0 / self._probe_width[p] for p in probes) / len(probes)
                steps.append(10.0 * FACT_WEIGHT / ((1.0 - chance) * len(probes)))
        return min(steps, default=0.0) / len(self.domains)

    def evaluate(
        self, model: torch.nn.Module, *, forward: Callable[..., Any] | None = None
    ) -> BenchmarkResult:
        """Score ``model``: in eval mode under ``torch.inference_mode()``, on the model's device;
        the model's train/eval mode is restored afterwards. ``forward`` calls the model in its
        place (e.g. a compiled call of it)."""
        nll_sum, cand = self._run(model, copies=1, forward=forward)
        return self._results(nll_sum[0], cand[0])

    def evaluate_copies(self, model: torch.nn.Module, copies: int) -> list[BenchmarkResult]:
        """Score ``copies`` variants of a model in the same forward passes: every batch is
        repeated ``copies`` times along its rows, and copy ``c`` (rows ``c * R`` to
        ``(c + 1) * R - 1`` of a batch of ``R`` rows) is scored on its own. ``model`` decides what
        each copy computes (e.g. :func:`fedenv.engine.multi_lora.grouped_lora`, one adapter per
        copy); a plain model gives ``copies`` equal results."""
        if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
            raise ConfigError("copies", f"must be a positive integer, got {copies!r}")
        nll_sum, cand = self._run(model, copies=copies)
        return [self._results(nll_sum[c], cand[c]) for c in range(copies)]

    def probe_loglikelihoods(self, model: torch.nn.Module) -> list[list[float]]:
        """Per fact probe (construction order), each candidate's log-likelihood, true one first."""
        scores = self._run(model, copies=1)[1][0].view(self.num_probes, self._width).tolist()
        return [row[:n] for row, n in zip(scores, self._probe_width)]

    def _run(
        self, model: torch.nn.Module, copies: int, forward: Callable[..., Any] | None = None
    ) -> tuple[list[list[float]], torch.Tensor]:
        was_training = model.training
        if was_training:  # eval() walks every module: skip it when there is nothing to switch
            model.eval()
        try:
            with torch.inference_mode():
                return self._forward(model, copies, forward or model)
        finally:
            if was_training:
                model.train()

    def _forward(
        self, model: torch.nn.Module, copies: int, forward: Callable[..., Any]
    ) -> tuple[list[list[float]], torch.Tensor]:
        param = next(model.parameters())
        nll_sum = torch.zeros(copies, len(self.domains), dtype=torch.float64)
        cand = torch.zeros(copies, self.num_probes * self._width, dtype=torch.float64)
        for staged, (nll_sel, nll_group, cand_sel, cand_group) in zip(
            self._stage(param.device, param.dtype), self._groups
        ):
            repeat = (copies, 1) if copies > 1 else None
            logits = forward(
                input_ids=staged.input_ids.repeat(repeat) if repeat else staged.input_ids,
                attention_mask=staged.mask.repeat(copies, 1, 1, 1) if repeat else staged.mask,
                position_ids=staged.position_ids.repeat(repeat) if repeat else staged.position_ids,
                use_cache=False,
            ).logits
            vocab = logits.shape[-1]
            picked = logits.reshape(copies, -1, vocab).index_select(1, staged.where).float()
            target = staged.target[None, :, None].expand(copies, -1, 1)
            target_logit = picked.gather(2, target).squeeze(2)
            logp = (target_logit - picked.logsumexp(-1)).double().cpu()
            nll_sum.index_add_(1, nll_group, -logp[:, nll_sel])
            cand.index_add_(1, cand_group, logp[:, cand_sel])
        return nll_sum.tolist(), cand

    def _results(self, nll_sum: list[float], cand: torch.Tensor) -> BenchmarkResult:
        correct: list[bool] = []
        if self.num_probes:
            scores = cand.view(self.num_probes, self._width)
            valid = torch.arange(self._width)[None, :] < torch.tensor(self._probe_width)[:, None]
            best_distractor = scores.masked_fill(~valid, -math.inf)[:, 1:].max(1).values
            correct = (scores[:, 0] > best_distractor).tolist()
        domains = {}
        for d_idx, domain in enumerate(self.domains):
            probes = [p for p, d in enumerate(self._probe_domain) if d == d_idx]
            nll = nll_sum[d_idx] / self._tokens[d_idx]
            accuracy = sum(correct[p] for p in probes) / len(probes) if probes else math.nan
            chance = (
                sum(1.0 / self._probe_width[p] for p in probes) / len(probes) if probes else 0.0
            )
            domains[domain] = DomainResult(
                nll=nll,
                perplexity=math.exp(nll),
                fact_accuracy=accuracy,
                score=domain_score(nll, accuracy, chance),
                num_tokens=self._tokens[d_idx],
                num_probes=len(probes),
            )
        return BenchmarkResult(sum(r.score for r in domains.values()) / len(domains), domains)
