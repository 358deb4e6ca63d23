"""Checks of a request that need no model: types, ranges and text, each refused with what to pass.

`validate_request` runs before any weights load: `check_item` for the instruction and response,
`check_options` for the options (run by `lav.AnalysisOptions` when built, so once per call).
`check_prompt_text` and `check_length` need the tokenizer or the model's context length and run
once they are at hand. Torch-free.
"""

from __future__ import annotations

import numbers
import os
import re
import stat
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from .coords import CONVENTIONS
from .errors import InputError

#: Longest instruction, response, system prompt or template, in characters. A screenshot
#: instruction is a sentence; a 100,000-character one runs for minutes past the context.
MAX_TEXT_CHARS = 10_000
#: Most tokens `generate` may add: an answer with a point or a box is a few dozen.
MAX_NEW_TOKENS = 4096


def validate_request(
    instruction: object,
    response: object = None,
    *,
    system: object = None,
    template: object = None,
    max_new_tokens: object = 64,
    edge_layers: object = (-2, -1),
    focus_layers: object = -1,
    coords: object = None,
) -> None:
    """Refuse, with an `InputError` that says what to pass, a request no model could answer.

    Checks Python types (a `str` where text goes, an `int` and never a `bool` where a count goes),
    the text lengths (at most `MAX_TEXT_CHARS` characters each), ``max_new_tokens`` in
    1..`MAX_NEW_TOKENS`, the layer selections' syntax (an index, indices, ``"all"``, or a string of
    indices; their range needs the model), ``template`` holding ``{instruction}`` and ``coords`` being
    one of `lav.coords.CONVENTIONS`.
    """
    check_item(instruction, response)
    check_options(
        system=system,
        template=template,
        max_new_tokens=max_new_tokens,
        edge_layers=edge_layers,
        focus_layers=focus_layers,
        coords=coords,
    )


def check_item(instruction: object, response: object = None) -> None:
    """Refuse an instruction or forced response no model could answer (the per-item half of
    `validate_request`; the options are `check_options`'s)."""
    _text(instruction, "instruction", 'e.g. "Click the Save button"')
    if not instruction.strip():  # type: ignore[union-attr]
        raise InputError("the instruction is empty; say what to click, e.g. 'Click the Save button'")
    _no_tag(instruction, "instruction")
    if response is not None:
        _text(response, "response", 'the answer to force, e.g. "(120, 45)", or None to generate')
        if not response.strip():  # type: ignore[union-attr]
            raise InputError("the forced response is empty; omit it to let the model generate")


def check_options(
    *,
    system: object = None,
    template: object = None,
    max_new_tokens: object = None,
    edge_layers: object = None,
    focus_layers: object = None,
    coords: object = None,
) -> None:
    """Refuse analysis options no model could use (`lav.AnalysisOptions` runs it when built)."""
    for what, text in (("system prompt", system), ("template", template)):
        _no_tag(text, what)
    if system is not None:
        _text(system, "system prompt", "a string, or None for the model's default")
    if template is not None:
        _text(template, "template", 'a string such as "Task: {instruction}"')
        if "{instruction}" not in template:  # type: ignore[operator]
            raise InputError(
                "the template must contain '{instruction}' where the instruction goes, "
                'e.g. "Task: {instruction}"'
            )
    if max_new_tokens is not None:  # None: the preset's, else the default
        _count(max_new_tokens, "max_new_tokens", 1, MAX_NEW_TOKENS)
    _layers(edge_layers, "edge_layers", "vision blocks")
    _layers(focus_layers, "focus_layers", "full-attention decoder layers")
    if coords is not None and coords not in CONVENTIONS:
        raise InputError(
            f"coords must be one of {', '.join(CONVENTIONS)} (or None for the family's default), got {coords!r}"
        )


def _no_tag(text: object, what: str) -> None:
    # Every supported family's control tokens are spelled <|...|>: refuse them before a model loads
    # (check_prompt_text refuses the tokenizer's exact list once it is at hand).
    tag = _TAG.search(text) if isinstance(text, str) else None
    if tag:
        raise InputError(
            f"the {what} contains {tag.group(0)!r}, a special token Qwen tokenizers read as prompt "
            "structure, not text; remove it or write it differently (e.g. with spaces)"
        )


def check_prompt_text(text: str, what: str, tokenizer: Any, allow: Collection[str] = ()) -> None:
    """Refuse ``text`` that holds one of ``tokenizer``'s special tokens (``<|im_start|>``, ``<|image_pad|>``...).

    Such a token typed into an instruction would be tokenised as the real token and become prompt
    structure: a new role turn, or an image placeholder the processor expands. Refused are the
    tokenizer's ``all_special_tokens``, its added tokens marked special, and every added token
    spelled ``<|...|>``; ``allow`` lists ones the caller accepts (e.g. a Qwen2-VL
    ``<|box_start|>`` in a forced response). ``what`` names the text in the error ("instruction").
    """
    for token in sorted(special_tokens(tokenizer) - set(allow), key=len, reverse=True):
        if token and token in text:
            raise InputError(
                f"the {what} contains {token!r}, one of the tokenizer's special tokens, which would become "
                "prompt structure instead of text; remove it or write it differently (e.g. with spaces)"
            )


def special_tokens(tokenizer: Any) -> set[str]:
    """The strings ``tokenizer`` turns into control tokens rather than text (see `check_prompt_text`)."""
    tokens = {str(t) for t in (getattr(tokenizer, "all_special_tokens", None) or ())}
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    for added in decoder.values():
        content = str(getattr(added, "content", added))
        if getattr(added, "special", False) or _is_tag(content):
            tokens.add(content)
    get_added = getattr(tokenizer, "get_added_vocab", None)
    if callable(get_added):
        tokens.update(t for t in get_added() if _is_tag(t))
    tokens.discard("")
    return tokens


def check_length(n_tokens: int, limit: int | None, what: str) -> None:
    """Refuse a ``what`` ("prompt") of ``n_tokens`` tokens longer than ``limit`` (no limit when None)."""
    if limit is not None and n_tokens > limit:
        raise InputError(
            f"the {what} is {n_tokens:,} tokens, more than the {limit:,} the model takes; "
            "shorten the instruction or use a smaller image (--max-pixels)"
        )


def context_length(config: Any) -> int | None:
    """The model's context length in tokens (``max_position_embeddings`` of its text config), if set."""
    text = getattr(config, "text_config", None) or config
    value = getattr(text, "max_position_embeddings", None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def check_out(out: object) -> Path:
    """``out`` as a `Path`, refused early if it is an existing file or lies under one.

    Whether the folder can really be written (and what it may replace) is decided when writing.
    """
    if not isinstance(out, (str, os.PathLike)) or not os.fspath(out).strip():
        raise InputError(f"the output folder must be a path, got {out!r}")
    path = Path(os.fspath(out)).expanduser()
    if "\x00" in str(path):
        raise InputError(f"the output folder {str(path)!r} contains a NUL character; pass a real path")
    for p in (path, *path.parents):
        try:
            st = os.stat(p)
        except OSError:
            continue  # missing, or a name the system refuses: the probe below words it
        if not stat.S_ISDIR(st.st_mode):
            if p == path:
                what = "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a file"
                raise InputError(f"--out {path} is {what}; pass a folder (lav writes several files into it)")
            raise InputError(f"--out {path} lies under {p}, which is a file; pass a folder path")
    from .outdir import check_output_folder

    # The one place every command's --out is judged before work: too long, dangling link, a FIFO,
    # /proc, unwritable, files lav did not write, a folder another lav run holds.
    check_output_folder(path)
    return path


def _text(value: object, what: str, hint: str) -> None:
    if not isinstance(value, str):
        raise InputError(f"the {what} must be a string ({hint}), got {type(value).__name__} {value!r:.60}")
    if len(value) > MAX_TEXT_CHARS:
        raise InputError(
            f"the {what} is {len(value):,} characters, more than the {MAX_TEXT_CHARS:,} lav accepts; shorten it"
        )


def _count(value: object, what: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(
            f"{what} must be an integer from {low} to {high}, got {type(value).__name__} {value!r}"
        )
    if not low <= int(value) <= high:
        raise InputError(f"{what} must be from {low} to {high}, got {int(value)}")


def _layers(value: object, what: str, layers: str) -> None:
    hint = f"pass an index of the {layers} (negative counts from the end), a list of them, or 'all'"
    if value is None:
        return
    if isinstance(value, str):
        if value == "all":
            return
        parts = value.replace(",", " ").split()
        if not parts or not all(_is_int_text(p) for p in parts):
            raise InputError(f"{what}={value!r} is not 'all' or a list of integers; {hint}")
        return
    items: Iterable[object]
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, list, tuple, range)):
        raise InputError(
            f"{what} must be an integer, a list of integers or 'all', got {type(value).__name__} {value!r:.60}; {hint}"
        )
    items = [value] if isinstance(value, numbers.Integral) else list(value)
    if not items:
        raise InputError(f"{what} is empty; {hint}")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise InputError(f"{what} holds {item!r} ({type(item).__name__}), not an integer; {hint}")


def _is_int_text(text: str) -> bool:
    body = text[1:] if text[:1] in "+-" else text
    return body.isascii() and body.isdigit()


_TAG = re.compile(r"<\|[^<>|\s]{1,40}\|>")


def _is_tag(token: str) -> bool:
    return token.startswith("<|") and token.endswith("|>") and len(token) > 4


def split_names(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: the names of a comma-separated list (``--maps``)."""
    return [n.strip() for n in text.split(",") if n.strip()]
