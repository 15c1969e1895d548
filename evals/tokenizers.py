"""Tokenizers built locally from nothing, for tiny test models and the GPU benchmark's random-weight models.

A byte-level BPE `Qwen2Tokenizer` with Qwen's special tokens and a chat template, and a small unigram
`T5Tokenizer`: nothing is fetched from a hub.
"""

from __future__ import annotations

import string

QWEN_SPECIALS = [
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<think>",
    "</think>",
]
# Jinja chat template in the shape of Qwen's: enough for `apply_chat_template(..., add_generation_prompt=True)`.
QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen_tokenizer():
    """A byte-level BPE `Qwen2Tokenizer` (256 byte tokens, no merges) with Qwen's special tokens."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2Tokenizer

    vocab = {c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))}
    tok = Qwen2Tokenizer(
        vocab=vocab, merges=[], unk_token=None, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    tok.add_special_tokens({"additional_special_tokens": QWEN_SPECIALS})
    tok.chat_template = QWEN_CHAT_TEMPLATE
    return tok


def t5_tokenizer():
    """A small unigram `T5Tokenizer`: letters, digits, punctuation and word-initial letters."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -1.0)]
    pieces += [(c, -2.0) for c in string.ascii_letters + string.digits + string.punctuation]
    pieces += [("▁" + c, -1.5) for c in string.ascii_lowercase]
    return T5Tokenizer(vocab=pieces, extra_ids=0, unk_id=2)
