"""Which answer tokens spell each coordinate number, from character offsets."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

import lav.coords
from lav.coords import number_tokens, parse_answer, tokens_for_spans
from tests.deps import require


def _qwen_like(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Tokens as Qwen tokenizers cut them: a token per digit, whitespace alone, other runs whole."""
    pieces = [(m.group(), m.span()) for m in re.finditer(r"\d|\s+|[^\d\s]+", text)]
    return [p for p, _ in pieces], [s for _, s in pieces]


def test_digits_selected_and_space_before_number_left_out():
    text = "(107, 243)"
    tokens, offsets = _qwen_like(text)
    assert tokens == ["(", "1", "0", "7", ",", " ", "2", "4", "3", ")"]
    parsed = parse_answer(text)
    assert parsed is not None
    assert number_tokens(offsets, parsed) == {"x": [1, 2, 3], "y": [6, 7, 8]}


def test_zero_width_special_tokens_are_ignored():
    # (0, 0) as return_offsets_mapping gives specials; (3, 3) as a prefix decode that adds nothing.
    offsets = [(0, 0), (0, 1), (1, 2), (2, 3), (3, 3), (3, 4), (0, 0)]
    assert tokens_for_spans(offsets, [(1, 4)]) == [2, 3, 5]


def test_token_straddling_a_number_edge_is_selected():
    # A merged ",2" token carries part of the number, so its query matters.
    offsets = [(0, 1), (1, 2), (2, 4), (4, 5)]
    assert tokens_for_spans(offsets, [(3, 4)]) == [2]


def test_tokens_touching_a_span_without_overlap_are_not_selected():
    offsets = [(0, 3), (3, 6), (6, 9)]
    assert tokens_for_spans(offsets, [(3, 6)]) == [1]


def test_result_is_sorted_and_unique_across_spans():
    offsets = [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert tokens_for_spans(offsets, [(2, 4), (0, 1), (2, 3)]) == [0, 2, 3]


def test_box_x_tokens_cover_both_x_numbers():
    text = "[10, 20, 30, 40]"
    _, offsets = _qwen_like(text)
    parsed = parse_answer(text)
    assert parsed is not None
    got = number_tokens(offsets, parsed)
    assert [text[slice(*offsets[i])] for i in got["x"]] == ["1", "0", "3", "0"]
    assert [text[slice(*offsets[i])] for i in got["y"]] == ["2", "0", "4", "0"]


def test_digit_in_a_json_key_is_not_a_number_token():
    text = '{"point_2d": [41, 7]}'
    tokens, offsets = _qwen_like(text)
    parsed = parse_answer(text)
    assert parsed is not None
    got = number_tokens(offsets, parsed)
    assert tokens[:2] == ['{"point_', "2"]
    assert 1 not in got["x"] + got["y"]
    assert [tokens[i] for i in got["x"]] == ["4", "1"]
    assert [tokens[i] for i in got["y"]] == ["7"]


# Templates whose only digits are the numbers, so "exactly the digit tokens" is the whole claim.
templates = st.sampled_from(
    ["({x}, {y})", "[{x},{y}]", "x={x}, y={y}", "click(x={x}, y={y})", "<point>{x} {y}</point>"]
)
no_digits = st.text(st.characters(exclude_categories=("Nd", "Cs")), max_size=20)


@given(templates, st.integers(0, 99_999), st.integers(0, 99_999), no_digits, no_digits, st.booleans())
def test_synthetic_digit_tokens_are_exactly_the_number_tokens(template, x, y, prefix, suffix, specials):
    text = f"{prefix} {template.format(x=x, y=y)} {suffix}"
    tokens, offsets = _qwen_like(text)
    if specials:  # special tokens, with the (0, 0) offsets a tokenizer gives them
        tokens, offsets = ["<s>", *tokens, "</s>"], [(0, 0), *offsets, (0, 0)]
    parsed = parse_answer(text)
    assert parsed is not None

    got = number_tokens(offsets, parsed)

    digits = [i for i, t in enumerate(tokens) if t.isdecimal()]
    assert sorted(got["x"] + got["y"]) == digits
    assert "".join(tokens[i] for i in got["x"]) == str(x)
    assert "".join(tokens[i] for i in got["y"]) == str(y)


def test_real_byte_level_tokenizer_with_qwen_pre_tokenizer_offsets():
    tokenizers = require("tokenizers", "pip install -e '.[dev]' (transformers brings tokenizers)")
    from tokenizers import Regex, models, pre_tokenizers

    # Qwen2's pre-tokenizer (transformers' tokenization_qwen2.PRETOKENIZE_REGEX), byte-level.
    qwen_split = (
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
        r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
    )
    pre = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(qwen_split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    text = "I will click (107, 243) to save"
    # Merges that rebuild each pre-token whole, as a trained vocabulary would for common words.
    vocab = {c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    merges = []
    for piece, _ in pre.pre_tokenize_str(text):
        for k in range(1, len(piece)):
            merges.append((piece[:k], piece[k]))
            vocab.setdefault(piece[: k + 1], len(vocab))
    tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre
    enc = tok.encode(text)
    assert enc.tokens[3:11] == ["Ġ(", "1", "0", "7", ",", "Ġ", "2", "4"]
    parsed = parse_answer(text)
    assert parsed is not None

    got = number_tokens(enc.offsets, parsed)

    assert [enc.tokens[i] for i in got["x"]] == ["1", "0", "7"]
    assert [enc.tokens[i] for i in got["y"]] == ["2", "4", "3"]


def test_public_names_are_sorted_and_importable():
    assert lav.coords.__all__ == sorted(lav.coords.__all__)
    for name in lav.coords.__all__:
        assert hasattr(lav.coords, name)
