"""`lav.stages.prepare` calls the processor once per image mode, the tokenizer left-padding the rows,
and gives exactly the batch that one processor call per request, left-padded by hand here, gives:
every tensor equal (same keys, dtypes, row order), the same answer starts and grids; on tiny models
of every family; also with a tokenizer that has no pad token (one call per request, padded with the
end-of-sequence token).

A mixed batch: masked copies of one screenshot (one group), one with another instruction, one of
another size, one with the same size in another mode (RGBA); forced and generated answers, and a
system prompt that names the resized image's size (`lav.presets`' ``{width}`` / ``{height}``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import lav
from lav.geometry import Grid
from lav.geometry.pixels import smart_resize
from lav.stages import Request, pad_id, pixel_bounds, prepare, prompt_text
from lav.testing import available_families

pytestmark = pytest.mark.integration

SIZED = "You locate things. The image is {width}x{height} pixels."


def _masked(screenshot: Image.Image, k: int) -> Image.Image:
    img = np.asarray(screenshot).copy()
    img[: 30 * k, :] = 128
    return Image.fromarray(img)


def _requests(screenshot: Image.Image, response: str | None, system: str | None) -> list[Request]:
    same = [_masked(screenshot, k) for k in range(4)]
    smaller = screenshot.resize((screenshot.width * 4 // 5, screenshot.height * 4 // 5))
    ask = "click the red button"

    def r(image, instruction=ask):
        return Request(image, instruction, response, system=system)

    # The group of masked copies is spread over the batch: rows must come back in request order.
    return [
        r(same[0]),
        r(same[1], "click the blue link"),
        r(same[1]),
        r(smaller),
        r(same[2]),
        r(screenshot.convert("RGBA")),
        r(same[3]),
    ]


def _reference(viz, requests: list[Request]):
    """One processor call per request, left-padded here: inputs, answer starts, grids."""
    processor = viz.processor
    resize = {}
    if viz.image_pixels is not None:
        low, high = viz.image_pixels
        resize = {"size": {"shortest_edge": low, "longest_edge": high}}
    encoded, prompts = [], []
    for r in requests:
        size = None
        if r.system is not None and "{width}" in r.system:
            low, high = pixel_bounds(viz)
            h, w = smart_resize(r.image.height, r.image.width, viz.parts.patch * viz.parts.merge, low, high)
            size = (w, h)
        text = prompt_text(processor, r.instruction, r.system, r.template, size)
        enc = processor(text=[text + (r.response or "")], images=[r.image], return_tensors="pt", **resize)
        encoded.append({k: v for k, v in enc.items() if isinstance(v, torch.Tensor)})
        alone = processor(text=[text], images=[r.image], return_tensors="pt", **resize)
        prompts.append(alone["input_ids"].shape[1])
    length = max(e["input_ids"].shape[1] for e in encoded)
    inputs = {}
    for key in encoded[0]:
        if key in ("pixel_values", "image_grid_thw"):
            inputs[key] = torch.cat([e[key] for e in encoded])
            continue
        fill, rows = pad_id(viz) if key == "input_ids" else 0, []
        for e in encoded:
            row = e[key][0]
            rows.append(torch.cat([torch.full((length - row.shape[0],), fill, dtype=row.dtype), row]))
        inputs[key] = torch.stack(rows)
    if requests[0].response is None:
        starts = [length] * len(requests)
    else:
        starts = [length - (e["input_ids"].shape[1] - p) for e, p in zip(encoded, prompts, strict=True)]
    grids = [Grid(t, h, w, viz.parts.merge) for t, h, w in inputs["image_grid_thw"].tolist()]
    return inputs, starts, grids


@pytest.mark.parametrize("family", available_families())
def test_grouped_prepare_equals_one_processor_call_per_request(family, checkpoint, screenshot):
    viz = lav.load(str(checkpoint(family)), device="cpu")
    for response, system in ((None, None), ("(123, 456)", None), ("(123, 456)", SIZED), (None, SIZED)):
        requests = _requests(screenshot, response, system)
        got = prepare(viz, requests, 8)
        inputs, starts, grids = _reference(viz, requests)
        assert got.requests == requests
        assert got.forced == (response is not None)
        assert set(got.inputs) == set(inputs)
        for key, want in inputs.items():
            assert got.inputs[key].dtype == want.dtype, key
            assert got.inputs[key].shape == want.shape, key
            assert torch.equal(got.inputs[key], want), key
        assert got.answer_starts == starts
        assert got.grids == grids
        # Padding moved some rows (the other instruction, the other size): rows are told apart.
        assert len(set(got.inputs["attention_mask"].sum(1).tolist())) > 1


def test_a_tokenizer_without_a_pad_token_is_padded_with_its_end_of_sequence_token(checkpoint, screenshot):
    viz = lav.load(str(checkpoint("qwen3_vl")), device="cpu")
    tok = viz.processor.tokenizer
    tok.pad_token = None
    assert tok.pad_token_id is None and pad_id(viz) == tok.eos_token_id
    requests = _requests(screenshot, "(123, 456)", None)
    got = prepare(viz, requests)
    inputs, starts, _ = _reference(viz, requests)
    for key, want in inputs.items():
        assert torch.equal(got.inputs[key], want), key
    assert got.answer_starts == starts
    assert (got.inputs["input_ids"][got.inputs["attention_mask"] == 0] == tok.eos_token_id).all()


@pytest.mark.parametrize("family", available_families())
def test_one_processor_call_per_image_mode(family, checkpoint, screenshot, monkeypatch):
    viz = lav.load(str(checkpoint(family)), device="cpu")
    kind = type(viz.processor)
    call, calls = kind.__call__, []

    def counted(self, *args, **kwargs):
        calls.append(len(kwargs["text"]))
        return call(self, *args, **kwargs)

    monkeypatch.setattr(kind, "__call__", counted)
    images = [_masked(screenshot, k % 6) for k in range(20)]
    prepared = prepare(viz, [Request(im, "click the red button", "(123, 456)") for im in images])
    assert calls == [20]
    assert prepared.inputs["input_ids"].shape[0] == 20
    assert len(set(prepared.answer_starts)) == 1
    calls.clear()
    prepare(viz, _requests(screenshot, "(123, 456)", None))
    assert calls == [6, 1]  # the RGB screens (other instruction and size included), the RGBA one
