"""A character-level Qwen2 tokenizer and a Qwen-VL chat template for tiny checkpoints.

The tokenizer is a Qwen byte-level BPE without merges: the same pre-tokenizer, normaliser, decoder
and class as the real one, so every character of ASCII text is a token of its own (digits and the
space before a number included, as in Qwen tokenizers) and its offsets point at that character.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE

from ..errors import InputError
from ..models.tiny import (
    IM_END_TOKEN_ID,
    IM_START_TOKEN_ID,
    IMAGE_TOKEN_ID,
    PAD_TOKEN_ID,
    VIDEO_TOKEN_ID,
    VISION_END_TOKEN_ID,
    VISION_START_TOKEN_ID,
    VOCAB_SIZE,
)

#: Tokens that are not bytes, at fixed ids; the six vision and turn tokens are those of `lav.testing`.
SPECIAL_TOKENS: dict[int, str] = {
    PAD_TOKEN_ID: "<|endoftext|>",
    244: "<|object_ref_start|>",
    245: "<|object_ref_end|>",
    IM_START_TOKEN_ID: "<|im_start|>",
    IM_END_TOKEN_ID: "<|im_end|>",
    248: "<|box_start|>",
    249: "<|box_end|>",
    IMAGE_TOKEN_ID: "<|image_pad|>",
    VIDEO_TOKEN_ID: "<|video_pad|>",
    VISION_START_TOKEN_ID: "<|vision_start|>",
    VISION_END_TOKEN_ID: "<|vision_end|>",
    254: "<|vision_pad|>",
    255: "<|unk|>",
}
UNK_TOKEN = "<|unk|>"

# The pre-tokenizer of Qwen2 tokenizers (transformers' tokenization_qwen2.py). Without merges it
# only decides where words start; every byte still becomes a token of its own.
_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# The 13 bytes that no UTF-8 text contains make room for the special tokens in 256 ids. Every other
# byte has a token, so any text encodes without loss (`<|unk|>` exists for the processors but is
# never produced).
_UNUSED_BYTES = frozenset([0xC0, 0xC1, *range(0xF5, 0x100)])


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (space -> "Ġ", newline -> "Ċ")."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def _vocab() -> dict[str, int]:
    byte_chars = _bytes_to_unicode()
    free = (i for i in range(VOCAB_SIZE) if i not in SPECIAL_TOKENS)
    vocab = {
        byte_chars[b]: i for b, i in zip((b for b in range(256) if b not in _UNUSED_BYTES), free, strict=True)
    }
    vocab.update({token: i for i, token in SPECIAL_TOKENS.items()})
    if sorted(vocab.values()) != list(range(VOCAB_SIZE)):
        raise AssertionError("the tiny vocabulary must fill ids 0..VOCAB_SIZE-1 exactly")
    return vocab


def _backend() -> Tokenizer:
    """The `tokenizers` pipeline of a Qwen2 tokenizer, on the tiny vocabulary."""
    tok = Tokenizer(
        BPE(
            vocab=_vocab(),
            merges=[],
            unk_token=UNK_TOKEN,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    # Untrimmed offsets: the token of a space keeps the span of that space, as in Qwen's tokenizer.json.
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for _, t in sorted(SPECIAL_TOKENS.items())]
    )
    return tok


def _tokenizer_config() -> dict[str, Any]:
    return {
        # Real Qwen-VL checkpoints name this class; transformers 5 then rebuilds the Qwen2 pipeline from
        # the vocabulary and 4.57 reads tokenizer.json as it is. Both give the tokenizer built here.
        "tokenizer_class": "Qwen2Tokenizer",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": UNK_TOKEN,
        "errors": "replace",
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "split_special_tokens": False,
        "model_max_length": 4096,  # the tiny configs' max_position_embeddings
        # Named so that processors read `tokenizer.image_token` / `image_token_id` and friends.
        "extra_special_tokens": {
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
        "added_tokens_decoder": {
            str(i): {
                "content": t,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for i, t in sorted(SPECIAL_TOKENS.items())
        },
    }


def _tokenizer_class() -> type:
    # transformers 5 has one tokenizers-backed Qwen2Tokenizer; 4.57 keeps that in Qwen2TokenizerFast.
    if hasattr(transformers, "TokenizersBackend"):
        return transformers.Qwen2Tokenizer
    return transformers.Qwen2TokenizerFast


def build_tokenizer(chat_template: str | None = None) -> transformers.PreTrainedTokenizerFast:
    """A character-level Qwen2 tokenizer of `lav.VOCAB_SIZE` ids.

    Byte-level BPE without merges: each ASCII character (a digit, a space) is one token whose offsets
    span that character; other UTF-8 text falls into one token per byte. Special tokens sit at the ids
    of `lav.testing` (``<|image_pad|>`` = 250, ...); eos is ``<|im_end|>``, pad ``<|endoftext|>``.
    The tokenizer is loaded from files exactly as ``from_pretrained`` loads a saved checkpoint.
    """
    config = _tokenizer_config()
    config["chat_template"] = chat_template if chat_template is not None else chat_template_for()
    with tempfile.TemporaryDirectory() as tmp:
        _backend().save(os.path.join(tmp, "tokenizer.json"))
        with open(os.path.join(tmp, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
        tokenizer = _tokenizer_class().from_pretrained(tmp)
    # Where it was loaded from is no part of the tokenizer; transformers 5 would save these keys.
    tokenizer.name_or_path = ""
    for key in ("is_local", "local_files_only"):
        tokenizer.init_kwargs.pop(key, None)
    return tokenizer


def chat_template_for(default_system: str | None = None) -> str:
    """A Qwen-VL chat template (jinja).

    ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per turn, an image as
    ``<|vision_start|><|image_pad|><|vision_end|>`` (the processor expands the pad to the image's
    tokens), content as a string or a list of ``{"type": "image" | "video" | "text"}`` parts.
    Assistant turns are marked ``{% generation %}`` so ``return_assistant_tokens_mask`` works for
    training; ``add_generation_prompt`` opens an assistant turn. With ``default_system`` (Qwen2-VL
    and Qwen2.5-VL use "You are a helpful assistant.") a conversation without a system turn gets one.
    """
    if default_system is not None and ("{" in default_system or "<|" in default_system):
        raise InputError("the default system prompt must be plain text; put markup in the messages instead.")
    parts = [
        "{%- macro render(content) -%}",
        "{%- if content is string -%}{{ content }}",
        "{%- else -%}{%- for part in content -%}",
        "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}",
        "<|vision_start|><|image_pad|><|vision_end|>",
        "{%- elif part['type'] == 'video' or 'video' in part -%}",
        "<|vision_start|><|video_pad|><|vision_end|>",
        "{%- elif 'text' in part -%}{{ part['text'] }}",
        "{%- endif -%}{%- endfor -%}{%- endif -%}",
        "{%- endmacro -%}",
    ]
    if default_system is not None:
        parts += [
            "{%- if messages[0]['role'] != 'system' -%}",
            "<|im_start|>system\n" + default_system + "<|im_end|>{{ '\\n' }}",
            "{%- endif -%}",
        ]
    parts += [
        "{%- for message in messages -%}",
        "<|im_start|>{{ message['role'] }}{{ '\\n' }}",
        "{%- if message['role'] == 'assistant' -%}",
        "{% generation %}{{ render(message['content']) }}<|im_end|>{% endgeneration %}",
        "{%- else -%}{{ render(message['content']) }}<|im_end|>",
        "{%- endif -%}{{ '\\n' }}",
        "{%- endfor -%}",
        "{%- if add_generation_prompt -%}<|im_start|>assistant{{ '\\n' }}{%- endif -%}",
    ]
    return "".join(parts)
