from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from fedenv.data import generate_org_dialogues, public_corpus
from fedenv.data.domains import lexicon
from fedenv.data.tokenizer import END, MIN_VOCAB, PAD, ROLE_TOKENS, train_tokenizer
from fedenv.errors import ConfigError


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return lexicon() + [m.content for d in public_corpus(0, 30) for m in d.messages]


@pytest.fixture(scope="module")
def tokenizer(texts):
    return train_tokenizer(texts, 1024)


def test_training_is_deterministic(texts, tokenizer):
    again = train_tokenizer(texts, 1024)
    assert again.backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()
    assert len(tokenizer) <= 1024


def test_chat_template_renders_roles_and_end_of_turn(tokenizer):
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Hello."},
    ]
    assert tokenizer.apply_chat_template(conversation, tokenize=False) == (
        "<|system|>Be brief.<|end|><|user|>Hi.<|end|><|assistant|>Hello.<|end|>"
    )
    prompt = tokenizer.apply_chat_template(
        conversation[:2], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|user|>Hi.<|end|><|assistant|>")
    with pytest.raises(Exception, match="unknown role: tool"):
        tokenizer.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_special_tokens_are_single_ids(tokenizer):
    for token in (PAD, END, *ROLE_TOKENS.values()):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1
    assert tokenizer.pad_token == PAD and tokenizer.eos_token == END
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_corpus_words_are_whole_tokens_and_any_text_round_trips(tokenizer):
    assert tokenizer.tokenize("The overdraft fee is 35 dollars.") == [
        "The", "Ġoverdraft", "Ġfee", "Ġis", "Ġ35", "Ġdollars", ".",
    ]  # fmt: skip
    odd = "Zürich → 東京, naïve 🙂\n\ttabs"
    assert tokenizer.decode(tokenizer(odd, add_special_tokens=False)["input_ids"]) == odd


def test_save_and_reload_keep_the_vocabulary_and_chat_template(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    dialogue = generate_org_dialogues("bank", 1, seed=0)[0]
    conversation = [{"role": m.role, "content": m.content} for m in dialogue.messages]
    text = tokenizer.apply_chat_template(conversation, tokenize=False)
    assert loaded.apply_chat_template(conversation, tokenize=False) == text
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert (loaded.pad_token_id, loaded.eos_token_id) == (
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
    )


def test_too_small_a_vocabulary_is_rejected(texts):
    with pytest.raises(ConfigError, match="vocab_size"):
        train_tokenizer(texts, MIN_VOCAB - 1)
