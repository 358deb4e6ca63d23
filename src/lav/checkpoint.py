"""Complete Hugging Face folders for tiny Qwen-VL models, loadable like a real checkpoint.

`tiny_checkpoint("qwen3_vl", folder)` writes what a hub download holds (config, safetensors weights,
tokenizer, image/video processor configs, chat template), so that
``AutoProcessor.from_pretrained(folder)`` and ``AutoModelForImageTextToText.from_pretrained(folder)``
take the same code paths as for ``Qwen/Qwen3-VL-2B-Instruct``, offline and in milliseconds.

The tokenizer is a Qwen byte-level BPE without merges: the same pre-tokenizer, normaliser, decoder
and class as the real one, so every character of ASCII text is a token of its own (digits and the
space before a number included, as in Qwen tokenizers) and its offsets point at that character.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE

from . import testing
from .errors import InputError

#: Tokens that are not bytes, at fixed ids; the six vision and turn tokens are those of `lav.testing`.
SPECIAL_TOKENS: dict[int, str] = {
    testing.PAD_TOKEN_ID: "<|endoftext|>",
    244: "<|object_ref_start|>",
    245: "<|object_ref_end|>",
    testing.IM_START_TOKEN_ID: "<|im_start|>",
    testing.IM_END_TOKEN_ID: "<|im_end|>",
    248: "<|box_start|>",
    249: "<|box_end|>",
    testing.IMAGE_TOKEN_ID: "<|image_pad|>",
    testing.VIDEO_TOKEN_ID: "<|video_pad|>",
    testing.VISION_START_TOKEN_ID: "<|vision_start|>",
    testing.VISION_END_TOKEN_ID: "<|vision_end|>",
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
    free = (i for i in range(testing.VOCAB_SIZE) if i not in SPECIAL_TOKENS)
    vocab = {
        byte_chars[b]: i for b, i in zip((b for b in range(256) if b not in _UNUSED_BYTES), free, strict=True)
    }
    vocab.update({token: i for i, token in SPECIAL_TOKENS.items()})
    if sorted(vocab.values()) != list(range(testing.VOCAB_SIZE)):
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
    """A character-level Qwen2 tokenizer of `lav.testing.VOCAB_SIZE` ids.

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


@dataclass(frozen=True)
class _ProcessorSpec:
    """What a family's processor is built from (the values of the real checkpoints' configs)."""

    processor: str
    video_processor: str
    patch_size: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    default_system: str | None


_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_QWEN2_VL = _ProcessorSpec(
    "Qwen2VLProcessor", "Qwen2VLVideoProcessor", 14, _CLIP_MEAN, _CLIP_STD, "You are a helpful assistant."
)
_QWEN3_VL = _ProcessorSpec("Qwen3VLProcessor", "Qwen3VLVideoProcessor", 16, (0.5,) * 3, (0.5,) * 3, None)
_PROCESSORS: dict[str, _ProcessorSpec] = {
    "qwen2_vl": _QWEN2_VL,
    "qwen2_5_vl": replace(_QWEN2_VL, processor="Qwen2_5_VLProcessor"),
    "qwen3_vl": _QWEN3_VL,
    # Qwen3-VL-MoE and Qwen3.5 checkpoints ship Qwen3-VL's processor.
    "qwen3_vl_moe": _QWEN3_VL,
    "qwen3_5": _QWEN3_VL,
    "qwen3_5_moe": _QWEN3_VL,
}

#: Pixel limits of the tiny processors: a few dozen image tokens, so tiny models stay fast.
TINY_MIN_PIXELS = 32 * 32 * 4
TINY_MAX_PIXELS = 448 * 448


def _image_processor_class() -> type:
    # transformers 5 made the torchvision processor the plain name (the PIL one is `...Pil`);
    # 4.57 calls it `...Fast` and keeps a PIL/numpy one under the plain name.
    if hasattr(transformers, "Qwen2VLImageProcessorPil"):
        return transformers.Qwen2VLImageProcessor
    return transformers.Qwen2VLImageProcessorFast


def processor_families() -> list[str]:
    """Families whose processor classes exist in the installed transformers (and have a tiny config)."""
    available = set(testing.available_families())
    return [f for f, spec in _PROCESSORS.items() if f in available and hasattr(transformers, spec.processor)]


def build_processor(
    family: str,
    tokenizer: transformers.PreTrainedTokenizerBase | None = None,
    min_pixels: int = TINY_MIN_PIXELS,
    max_pixels: int = TINY_MAX_PIXELS,
) -> transformers.ProcessorMixin:
    """The real processor class of ``family`` with its real image and video processors.

    Patch size 16 (Qwen3-VL, Qwen3.5) or 14 (Qwen2-VL, Qwen2.5-VL), merge 2, temporal patch 2, and the
    family's normalisation; images are resized into ``[min_pixels, max_pixels]`` (pixels of the resized
    image). ``tokenizer`` defaults to `build_tokenizer` with the family's chat template.
    """
    if family not in _PROCESSORS:
        raise InputError(f"unknown family {family!r}; pass one of: {', '.join(_PROCESSORS)}.")
    spec = _PROCESSORS[family]
    processor_cls = getattr(transformers, spec.processor, None)
    if processor_cls is None:
        raise InputError(
            f"{spec.processor} is not in transformers {transformers.__version__}; "
            f"pick a family it has: {', '.join(processor_families())}."
        )
    if not 0 < min_pixels <= max_pixels:
        raise InputError(f"need 0 < min_pixels <= max_pixels, got {min_pixels} and {max_pixels}.")
    template = chat_template_for(spec.default_system)
    if tokenizer is None:
        tokenizer = build_tokenizer(template)
    geometry = {"patch_size": spec.patch_size, "temporal_patch_size": 2, "merge_size": 2}
    norm = {"image_mean": list(spec.image_mean), "image_std": list(spec.image_std)}
    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    image_processor = _image_processor_class()(size=size, **geometry, **norm)
    video_processor = getattr(transformers, spec.video_processor)(size=size, **geometry, **norm)
    return processor_cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=template,
    )


def save_checkpoint(
    model: transformers.PreTrainedModel, processor: transformers.ProcessorMixin, folder: str | os.PathLike
) -> Path:
    """Write ``model`` (config + safetensors) and ``processor`` (tokenizer, processor configs, chat
    template) into ``folder`` as a hub checkpoint lays them out; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    _add_legacy_rope(folder / "config.json")
    processor.save_pretrained(folder)
    return folder


def _add_legacy_rope(config_file: Path) -> None:
    """Give every ``rope_parameters`` of the saved config its pre-5 spelling too.

    transformers 5 writes only ``rope_parameters``; 4.57 reads ``rope_scaling`` + ``rope_theta`` and
    fails without them. Hub checkpoints carry the old keys, which 5 converts on load, so with both the
    folder loads in either release the way a downloaded one does.
    """
    config = json.loads(config_file.read_text(encoding="utf-8"))

    def visit(node: dict[str, Any]) -> None:
        rope = node.get("rope_parameters")
        if isinstance(rope, dict) and "rope_type" in rope and node.get("rope_scaling") is None:
            node["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
            node.setdefault("rope_theta", rope.get("rope_theta"))
        for value in node.values():
            if isinstance(value, dict):
                visit(value)

    visit(config)
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def tiny_checkpoint(family: str, folder: str | os.PathLike, seed: int = 0, **config_overrides: Any) -> Path:
    """Save a randomly initialised tiny model of ``family`` (`lav.testing.tiny_model`) with its
    processor into ``folder``; ``config_overrides`` go to `tiny_model` (``text=``, ``vision=``)."""
    model = testing.tiny_model(family, seed=seed, **config_overrides)
    processor = build_processor(family)
    vision = model.config.vision_config
    image_processor = processor.image_processor
    if (vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size) != (
        image_processor.patch_size,
        image_processor.merge_size,
        image_processor.temporal_patch_size,
    ):
        raise InputError(
            f"the {family} vision config (patch {vision.patch_size}, merge {vision.spatial_merge_size}, "
            f"temporal {vision.temporal_patch_size}) does not match its processor; leave those keys "
            "out of the overrides."
        )
    return save_checkpoint(model, processor, folder)
