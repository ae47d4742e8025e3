"""Packed rows for the benchmark: one dialogue plus its multiple-choice continuations per row.

A row holds the dialogue's tokens, then, for every fact probe, the tokens of each distractor
value. A distractor segment restarts its position ids where the answer starts in the dialogue and
attends only to the dialogue context before the fact and to itself (causally), so one forward
pass yields exactly the log-likelihoods that separate ``context + candidate`` passes would. The
true value needs no segment: the dialogue already continues with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedTokenizerBase

from fedenv.data.dialogues import Dialogue, FactProbe
from fedenv.data.encoding import render
from fedenv.errors import DataFormatError


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def choice_continuations(
    tokenizer: PreTrainedTokenizerBase, dialogue: Dialogue, probe: FactProbe
) -> tuple[int, list[list[int]]]:
    """``(start, spans)`` for one probe: the first ``start`` tokens of the rendered dialogue are
    the context every candidate shares; ``spans[c]`` are the tokens covering candidate ``c``'s
    characters when the dialogue states it (true answer first, then the distractors)."""
    candidates = (probe.answer, *probe.distractors)
    if len(set(candidates)) != len(candidates) or "" in candidates:
        raise DataFormatError(
            "<benchmark>",
            None,
            f"probe at turn {probe.turn}: candidates must be distinct and non-empty",
        )
    texts = [render(tokenizer, dialogue.with_answer(probe, c).messages) for c in candidates]
    # Every text reads context + candidate + rest, so the candidate begins after the shared text.
    begin = len(os.path.commonprefix(texts)) - len(os.path.commonprefix(candidates))
    encoded = [tokenizer(t, add_special_tokens=False, return_offsets_mapping=True) for t in texts]
    ids = [e["input_ids"] for e in encoded]
    firsts, ends = [], []
    for e, candidate in zip(encoded, candidates):
        offsets = e["offset_mapping"]
        stop = begin + len(candidate)
        firsts.append(next(i for i, (_, end) in enumerate(offsets) if end > begin))
        ends.append(next((i for i, (st, _) in enumerate(offsets) if st >= stop), len(offsets)))
    start = min(firsts + [_common_prefix(ids[0], other) for other in ids[1:]])
    if start < 1:
        raise DataFormatError("<benchmark>", None, f"probe at turn {probe.turn} has no context")
    return start, [x[start:end] for x, end in zip(ids, ends)]


@dataclass
class PackedRow:
    """Dialogue tokens, then distractor segments; ``scored`` lists ``(logit position, target
    token, key)`` for every token whose log-probability is needed (``key`` says what for)."""

    ids: list[int]
    dialogue_len: int
    positions: list[int] = field(default_factory=list)
    segments: list[tuple[int, int]] = field(default_factory=list)  # (segment start, context length)
    scored: list[tuple[int, int, object]] = field(default_factory=list)

    @classmethod
    def of_dialogue(cls, ids: list[int]) -> PackedRow:
        return cls(list(ids), len(ids), list(range(len(ids))))

    def score_dialogue_token(self, t: int, key: object) -> None:
        """Score dialogue token ``t`` (predicted at position ``t - 1``)."""
        self.scored.append((t - 1, self.ids[t], key))

    def add_choice(self, start: int, spans: list[list[int]], keys: list[object]) -> None:
        """Score ``spans[0]`` in place (it must follow the context) and append the others."""
        for j in range(len(spans[0])):
            self.score_dialogue_token(start + j, keys[0])
        for span, key in zip(spans[1:], keys[1:]):
            seg_start = len(self.ids)
            for j, token in enumerate(span):
                self.scored.append((start - 1 if j == 0 else seg_start + j - 1, token, key))
            self.segments.append((seg_start, start))
            self.ids.extend(span)
            self.positions.extend(range(start, start + len(span)))


def attention_allowed(rows: list[PackedRow], length: int) -> torch.Tensor:
    """Boolean ``[rows, 1, length, length]``: which key each query may attend to."""
    causal = torch.ones((length, length), dtype=torch.bool).tril()
    allowed = torch.zeros((len(rows), 1, length, length), dtype=torch.bool)
    for b, row in enumerate(rows):
        n, d = len(row.ids), row.dialogue_len
        allowed[b, 0, :d, :d] = causal[:d, :d]
        ends = [s for s, _ in row.segments[1:]] + [n]
        for (s, context), e in zip(row.segments, ends):
            allowed[b, 0, s:e, :context] = True  # the dialogue before the fact
            allowed[b, 0, s:e, s:e] = causal[: e - s, : e - s]  # and the segment itself
        pad = torch.arange(n, length)
        allowed[b, 0, pad, pad] = True  # padding attends to itself (no empty softmax rows)
    return allowed


@dataclass
class PackedBatch:
    """CPU tensors of up to ``batch_size`` rows; ``where`` indexes the flattened logits."""

    input_ids: torch.Tensor  # [B, T]
    position_ids: torch.Tensor  # [B, T]
    allowed: torch.Tensor  # [B, 1, T, T] bool
    where: torch.Tensor  # [N] row * T + logit position
    target: torch.Tensor  # [N]
    keys: list[object]  # [N]
    lengths: list[int]  # real tokens of each row (the rest is padding)


def pack_batches(rows: list[PackedRow], batch_size: int, pad_id: int) -> list[PackedBatch]:
    batches = []
    for first in range(0, len(rows), batch_size):
        chunk = rows[first : first + batch_size]
        length = max(len(r.ids) for r in chunk)
        ids = torch.full((len(chunk), length), pad_id, dtype=torch.long)
        pos = torch.zeros((len(chunk), length), dtype=torch.long)
        where, target, keys = [], [], []
        for b, row in enumerate(chunk):
            ids[b, : len(row.ids)] = torch.as_tensor(row.ids)
            pos[b, : len(row.ids)] = torch.as_tensor(row.positions)
            for logit_pos, token, key in row.scored:
                where.append(b * length + logit_pos)
                target.append(token)
                keys.append(key)
        batches.append(
            PackedBatch(
                ids,
                pos,
                attention_allowed(chunk, length),
                torch.tensor(where, dtype=torch.long),
                torch.tensor(target, dtype=torch.long),
                keys,
                [len(row.ids) for row in chunk],
            )
        )
    return batches
