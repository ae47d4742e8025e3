"""Dialogue -> token ids and loss labels through the tokenizer's own chat template.

Labels are ``-100`` everywhere except the tokens of assistant turns: their content and the
template's end-of-turn token. The assistant spans are found by rendering the dialogue prefix by
prefix (``messages[:i]`` with the generation prompt, then ``messages[:i + 1]``), which needs no
knowledge of the template; templates whose earlier turns render differently once more turns
follow fall back to locating each assistant content string in the full rendering.

Bounded work: with ``max_len`` set, a dialogue is cut *before* it is rendered and tokenized to
what can reach its first ``max_len`` tokens (:func:`clip_messages`): at most ``max_len``
messages (each renders to at least one token) and ``MAX_CHARS_PER_TOKEN x max_len`` characters
of content (no token of a real vocabulary spans more characters).  A dialogue within both
limits is encoded exactly as before; a 50 MB message costs what ``max_len`` tokens cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jinja2.exceptions import TemplateError
from transformers import PreTrainedTokenizerBase

from fedenv.data.dialogues import Dialogue, Message
from fedenv.errors import ConfigError, DataFormatError

IGNORE_INDEX = -100
MAX_CHARS_PER_TOKEN = 64


def render(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[Message],
    *,
    generation_prompt: bool = False,
) -> str:
    """The chat-template text of ``messages``."""
    conversation = [{"role": m.role, "content": m.content} for m in messages]
    return tokenizer.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=generation_prompt
    )


def _prefix(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], generation_prompt: bool
) -> str | None:
    try:
        return render(tokenizer, messages, generation_prompt=generation_prompt)
    except (TemplateError, ValueError, TypeError, IndexError, KeyError):
        # some templates refuse partial conversations (empty, or ending in an assistant turn)
        return None


def assistant_spans(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message]
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the ``[start, end)`` character spans of each assistant turn in it
    (content plus end-of-turn marker, trailing whitespace excluded)."""
    if tokenizer.chat_template is None:
        raise ConfigError("tokenizer.chat_template", "the tokenizer has no chat template")
    full = render(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message.role != "assistant":
            continue
        before = _prefix(tokenizer, messages[:i], True)
        through = _prefix(tokenizer, messages[: i + 1], False)
        if (
            before is not None
            and through is not None
            and full.startswith(through)
            and through.startswith(before)
            and len(before) >= cursor
        ):
            start, end = len(before), len(through.rstrip())
        else:
            content = message.content  # templates may trim it: look for it as is, then trimmed
            start = full.find(content, cursor)
            if start < 0:
                content = content.strip()
                start = full.find(content, cursor)
            if start < 0:
                raise DataFormatError(
                    "<dialogue>", None, f"assistant message {i} not found in the rendered chat"
                )
            end = start + len(content)
            eos = tokenizer.eos_token
            if eos and full.startswith(eos, end):
                end += len(eos)
        spans.append((start, max(start, end)))
        cursor = end
    return full, spans


def clip_messages(messages: Sequence[Message], max_len: int | None) -> Sequence[Message]:
    """The messages, cut to what can reach the first ``max_len`` tokens (see the module doc);
    ``messages`` itself when nothing is cut (or ``max_len`` is None)."""
    if max_len is None:
        return messages
    budget, kept = MAX_CHARS_PER_TOKEN * max_len, []
    for message in messages[:max_len]:
        if budget <= 0:
            break
        content = message.content[:budget]
        budget -= len(content)
        kept.append(message if len(content) == len(message.content) else
                    Message(message.role, content))
    if len(kept) == len(messages) and all(a is b for a, b in zip(kept, messages)):
        return messages
    return tuple(kept)


def encode_dialogue(
    tokenizer: PreTrainedTokenizerBase, dialogue: Dialogue, max_len: int | None
) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)``: labels copy the ids of assistant tokens and are -100 elsewhere.

    Sequences longer than ``max_len`` are cut at the end (``None``: no limit); the dialogue is
    first clipped to what can reach them (:func:`clip_messages`).
    """
    text, spans = assistant_spans(tokenizer, clip_messages(dialogue.messages, max_len))
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = encoding["input_ids"]
    labels = [IGNORE_INDEX] * len(ids)
    k = 0
    for t, (start, _end) in enumerate(encoding["offset_mapping"]):
        while k < len(spans) and start >= spans[k][1]:
            k += 1
        if k < len(spans) and spans[k][0] <= start < spans[k][1]:
            labels[t] = ids[t]
    if max_len is not None:
        ids, labels = ids[:max_len], labels[:max_len]
    return ids, labels


def collate(
    batch: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int
) -> dict[str, torch.Tensor]:
    """Right-pad ``(input_ids, labels)`` pairs into ``input_ids``, ``attention_mask``, ``labels``
    (long tensors ``[batch, longest]``; labels are -100 on padding)."""
    if not batch:
        raise ValueError("collate needs at least one example")
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, labs) in enumerate(batch):
        if len(ids) != len(labs):
            raise ValueError(f"example {row}: {len(ids)} input ids but {len(labs)} labels")
        input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
        labels[row, : len(labs)] = torch.as_tensor(labs, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
