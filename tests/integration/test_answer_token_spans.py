"""Each answer token's text (`Result.answer_tokens`, the spans the focus rows and the agreement are
read from) is what transformers' own ``tokenizer.decode`` gives for the growing prefixes of the
answer, whether lav decodes through the tokenizer's `tokenizers` backend directly (a Qwen fast
tokenizer that does not clean up spaces) or through transformers' decode (any other)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import lav
from lav.testing import tiny_checkpoint

INSTRUCTION = "Click the Save button"
# Multi-byte characters (byte-level BPE splits them: prefixes end inside a character), a space
# before punctuation (what clean-up would change) and Qwen2-VL's box markers (special tokens that
# skip_special_tokens drops: zero-width spans).
RESPONSE = "Clique sur « Enregistrer » , 点击 <|box_start|>(107,243)<|box_end|> ✓"


def _expected(tok, ids: list[int]) -> list[str]:
    """The token texts by transformers' decode of each prefix, computed here."""
    text = tok.decode(ids, skip_special_tokens=True)
    ends = [len(tok.decode(ids[: i + 1], skip_special_tokens=True)) for i in range(len(ids))]
    return [text[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


@pytest.mark.parametrize("clean_up", [False, True], ids=["as-shipped", "clean-up-on"])
def test_answer_tokens_are_transformers_decode_of_each_prefix(clean_up, tmp_path):
    viz = lav.load(tiny_checkpoint("qwen2_vl", tmp_path / "m"), device="cpu")
    tok = viz.processor.tokenizer
    tok.clean_up_tokenization_spaces = clean_up
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (80, 96, 3), dtype=np.uint8))
    res = viz.analyze(image, INSTRUCTION, response=RESPONSE)
    ids = tok(RESPONSE)["input_ids"]
    assert len(ids) > len(RESPONSE.encode()) // 2  # byte-level: not one token per character
    expected = _expected(tok, ids)
    assert res.answer_tokens == expected
    assert "".join(expected) == res.response
    assert any(t == "" for t in expected)  # the box markers, and bytes inside a character
    assert res.click is not None and res.click.raw == (107.0, 243.0)


# Pieces of long answers: reasoning, coordinates, multi-byte characters (split inside by byte-level
# BPE, so a block may start after a partial character), punctuation after a space (clean-up), the
# special tokens skip_special_tokens drops, a four-byte emoji.
PIECES = [
    "a",
    "b",
    " ",
    "1",
    "2",
    ",",
    "(",
    ")",
    " ,",
    " 's",
    "ü",
    "点击",
    "✓",
    "😀",
    "<|im_end|>",
    "<|box_start|>",
]


@pytest.mark.parametrize("clean_up", [False, True], ids=["as-shipped", "clean-up-on"])
@pytest.mark.parametrize("block", [1, 3, 7, 32])
def test_long_answers_get_the_spans_of_decoding_every_prefix(block, clean_up, tmp_path, monkeypatch):
    """The blockwise decoding (linear in the answer's length) gives every token the span that
    decoding each growing prefix whole gives, wherever the blocks start, on the demo's tokenizer and
    a tiny checkpoint's."""
    from lav.demo import assets
    from lav.stages import _decode_with_offsets

    monkeypatch.setattr("lav.stages.DECODE_BLOCK", block)
    rng = np.random.default_rng(block)
    for path in (str(assets.BASE), tiny_checkpoint("qwen2_vl", tmp_path / "m")):
        tok = lav.load(path, device="cpu").processor.tokenizer
        tok.clean_up_tokenization_spaces = clean_up
        for _ in range(6):
            text = "".join(rng.choice(PIECES, size=int(rng.integers(1, 300))))
            ids = tok(text)["input_ids"]
            expected = _expected(tok, ids)
            got_text, spans = _decode_with_offsets(tok, ids)
            assert got_text == tok.decode(ids, skip_special_tokens=True)
            assert [got_text[a:b] for a, b in spans] == expected
