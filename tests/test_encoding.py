from __future__ import annotations

import copy

import pytest
import torch

from fedenv.data import Dialogue, Message, generate_org_dialogues
from fedenv.data.encoding import (
    IGNORE_INDEX,
    MAX_CHARS_PER_TOKEN,
    clip_messages,
    collate,
    encode_dialogue,
)

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Renders the final assistant turn differently from earlier ones (like templates that strip
# reasoning from past turns): prefix rendering fails and the content-search fall-back is used.
UNSTABLE = (
    "{% for m in messages %}{% if loop.last %}[last]{% endif %}"
    "<{{ m['role'] }}>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)

DIALOGUE = Dialogue(
    (
        Message("system", "Be brief."),
        Message("user", "What is the visit fee?"),
        Message("assistant", "The visit fee is 20 dollars."),
        Message("user", "Sorry, what was that fee you mentioned?"),
        Message("assistant", "The fee I mentioned is 20 dollars."),
    )
)


def labelled_text(tokenizer, ids, labels) -> list[str]:
    """The decoded runs of consecutive labelled tokens."""
    runs, current = [], []
    for token, label in zip(ids, labels):
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            assert label == token
            current.append(token)
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


def with_template(tokenizer, template: str, extra_tokens: list[str]):
    tok = copy.deepcopy(tokenizer)
    tok.add_special_tokens({"additional_special_tokens": extra_tokens})
    tok.chat_template = template
    return tok


def test_labels_cover_exactly_assistant_content_and_end_of_turn(test_base):
    _, tokenizer = test_base
    ids, labels = encode_dialogue(tokenizer, DIALOGUE, None)
    assert labelled_text(tokenizer, ids, labels) == [
        "The visit fee is 20 dollars.<|end|>",
        "The fee I mentioned is 20 dollars.<|end|>",
    ]
    text = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in DIALOGUE.messages], tokenize=False
    )
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]


def test_labels_agree_with_the_templates_own_assistant_mask(test_base):
    _, tokenizer = test_base
    for dialogue in generate_org_dialogues("hotel", 5, seed=0):
        ids, labels = encode_dialogue(tokenizer, dialogue, None)
        out = tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in dialogue.messages],
            return_assistant_tokens_mask=True,
            return_dict=True,
        )
        assert out["input_ids"] == ids
        assert [label != IGNORE_INDEX for label in labels] == [
            bool(x) for x in out["assistant_masks"]
        ]


def test_a_chatml_template_with_newlines(test_base):
    _, tokenizer = test_base
    tok = with_template(tokenizer, CHATML, ["<|im_start|>", "<|im_end|>"])
    ids, labels = encode_dialogue(tok, DIALOGUE, None)
    assert labelled_text(tok, ids, labels) == [
        "The visit fee is 20 dollars.<|im_end|>",
        "The fee I mentioned is 20 dollars.<|im_end|>",
    ]


def test_templates_that_are_not_prefix_stable_fall_back_to_content_search(test_base):
    _, tokenizer = test_base
    tok = with_template(tokenizer, UNSTABLE, [])
    ids, labels = encode_dialogue(tok, DIALOGUE, None)
    assert labelled_text(tok, ids, labels) == [
        "The visit fee is 20 dollars.<|end|>",
        "The fee I mentioned is 20 dollars.<|end|>",
    ]


def test_max_len_cuts_the_end(test_base):
    _, tokenizer = test_base
    full_ids, full_labels = encode_dialogue(tokenizer, DIALOGUE, None)
    ids, labels = encode_dialogue(tokenizer, DIALOGUE, 12)
    assert (ids, labels) == (full_ids[:12], full_labels[:12])


def test_collate_pads_right_and_masks_padding():
    batch = collate([([5, 6, 7], [-100, 6, 7]), ([8], [8])], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert all(t.dtype == torch.long for t in batch.values())
    with pytest.raises(ValueError, match="2 input ids but 1 labels"):
        collate([([1, 2], [1])], pad_id=0)
    with pytest.raises(ValueError, match="at least one"):
        collate([], pad_id=0)


def test_a_dialogue_within_the_budget_is_encoded_exactly_as_before(test_base):
    _, tokenizer = test_base
    for dialogue in [DIALOGUE, *generate_org_dialogues("clinic", 8, seed=2)]:
        full = encode_dialogue(tokenizer, dialogue, None)
        for max_len in (8, 32, 4096):
            assert encode_dialogue(tokenizer, dialogue, max_len) == tuple(
                part[:max_len] for part in full
            )


def test_a_huge_dialogue_costs_what_max_len_tokens_cost(test_base):
    """A 50 MB assistant turn and 100,000 messages: cut before rendering and tokenizing, so the
    first max_len tokens come out at once (the whole dialogue would take minutes and gigabytes)."""
    import time

    _, tokenizer = test_base
    huge = Dialogue((Message("user", "Tell me all."), Message("assistant", "fee " * 12_500_000)))
    many = Dialogue(tuple(Message(r, "ok") for _ in range(50_000) for r in ("user", "assistant")))
    for dialogue in (huge, many):
        start = time.perf_counter()
        ids, labels = encode_dialogue(tokenizer, dialogue, 64)
        assert len(ids) == len(labels) == 64 and time.perf_counter() - start < 5
    cut = clip_messages(huge.messages, 64)
    assert len(cut) == 2 and len(cut[0].content) + len(cut[1].content) == MAX_CHARS_PER_TOKEN * 64
    assert clip_messages(DIALOGUE.messages, 64) is DIALOGUE.messages
