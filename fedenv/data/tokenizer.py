"""The embedded tokenizer: byte-level BPE trained locally with ``tokenizers``, with chat roles.

A dialogue renders as ``<|user|>Hi.<|end|><|assistant|>The fee is 5 dollars.<|end|>``: one
special token opens each turn with its role, ``<|end|>`` closes it (and is the EOS token). The
Jinja ``chat_template`` wraps assistant turns in ``{% generation %}`` so that
``apply_chat_template(..., return_assistant_tokens_mask=True)`` works too. Training is
deterministic: the same texts and vocabulary size give the same tokenizer, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from fedenv.errors import ConfigError

PAD, END = "<|pad|>", "<|end|>"
ROLE_TOKENS: dict[str, str] = {
    "system": "<|system|>",
    "user": "<|user|>",
    "assistant": "<|assistant|>",
}
SPECIAL_TOKENS: tuple[str, ...] = (PAD, END, *ROLE_TOKENS.values())

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{ raise_exception('unknown role: ' + message['role']) }}"
    "{%- endif -%}"
    "<|{{ message['role'] }}|>"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{%- else -%}"
    "{{ message['content'] }}<|end|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)

MIN_VOCAB = 256 + len(SPECIAL_TOKENS)  # the byte alphabet and the special tokens


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with at most ``vocab_size`` tokens, trained on ``texts``.

    Every byte is in the alphabet, so any text encodes (words unseen in training split into
    smaller pieces). Merges stop early when the texts offer nothing left to merge.
    """
    if not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB:
        raise ConfigError("vocab_size", f"must be an integer >= {MIN_VOCAB}, got {vocab_size!r}")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return wrap_tokenizer(core)


def wrap_tokenizer(core: Tokenizer) -> PreTrainedTokenizerFast:
    """``core`` as a ``PreTrainedTokenizerFast`` with the chat roles and template."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        eos_token=END,
        extra_special_tokens=list(ROLE_TOKENS.values()),
        model_max_length=1 << 30,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
