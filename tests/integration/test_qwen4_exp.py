"""Qwen4-Exp: indexed (QSA) attention recorded as the model computes it, and the indexer_selection map.

Every test runs the indexer ON with a budget small enough that each query drops part of the image,
and where it matters OFF. transformers 5.24 cannot build Qwen4-Exp with the ``indexer_*`` fields
unset (``Qwen4ExpTextQSAIndexer.__init__`` divides None by None), so OFF is a budget that covers
every key: the indexer then selects all of them and the layer is plain causal attention.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

import lav
from lav import methods
from lav.capture import capture, decoder_allowed, decoder_rows, vision_received
from lav.errors import InputError
from lav.eval import Dataset, Sample
from lav.geometry import grids_from_thw
from lav.models import inspect_model
from lav.testing import PAD_TOKEN_ID, available_families, tiny_checkpoint, tiny_model

from ..core.probe import qk_probe, raster_from_block_major, received_reference, with_lora
from ..helpers import image_inputs
from .qsa_reference import indexer_inputs, reference_selection

pytestmark = pytest.mark.skipif(
    "qwen4_exp" not in available_families(),
    reason=f"transformers {transformers.__version__} has no Qwen4-Exp (qwen4_exp arrived in 5.x)",
)

#: One image of 12 merged tokens after 3 text tokens: blocks of 4 keys, 2 blocks per query.
GRIDS = [(1, 6, 8)]
QSA = {"on": {}, "off": {"indexer_budget": 4096}}


def _model(qsa, backend="sdpa"):
    return tiny_model("qwen4_exp", attn_implementation=backend, text=QSA[qsa])


def _image_span(inputs):
    return (inputs["input_ids"][0] == lav.testing.IMAGE_TOKEN_ID).nonzero().flatten()


def test_tiny_family_is_available_with_its_indexed_and_linear_layers():
    parts = inspect_model(_model("on"))
    assert parts.family == "qwen4_exp"
    assert parts.decoder_layer_ids == (1, 3)  # layers 0 and 2 are Gated DeltaNet
    assert parts.decoder_layer_kinds == ("indexed_attention", "indexed_attention")


@pytest.mark.parametrize("backend", ["sdpa", "eager"])
@pytest.mark.parametrize("qsa", ["on", "off"])
def test_capture_leaves_logits_bit_identical(qsa, backend):
    model = _model(qsa, backend)
    inputs = image_inputs(model.config, GRIDS)
    plain = model(**inputs).logits
    parts = inspect_model(model)
    with capture(model, vision_blocks=range(len(parts.vision_attention)), decoder_layers=[0, 1], rows_from=0):
        captured = model(**inputs).logits
    assert torch.equal(plain, captured)


@pytest.mark.parametrize("lora", [False, True], ids=["bare", "lora"])
def test_vision_received_matches_float64_softmax_of_each_blocks_own_qk(lora):
    model = _model("on")
    if lora:
        model = with_lora(model)
    parts = inspect_model(model)
    inputs = image_inputs(model.config, [(1, 6, 10), (1, 8, 4)])
    blocks = list(range(len(parts.vision_attention)))
    with qk_probe(model, parts.vision_attention) as calls:
        model(**inputs)
    with capture(model, vision_blocks=blocks) as rec:
        model(**inputs)
    grids = grids_from_thw(inputs["image_grid_thw"], parts.merge)
    for block in blocks:
        seq = torch.cat([received_reference(q, k, s) for q, k, s in calls[block]], dim=1)
        start = 0
        for got, (t, h, w) in zip(vision_received(rec, block, grids), [(1, 6, 10), (1, 8, 4)], strict=True):
            ref = raster_from_block_major(seq[:, start : start + t * h * w], t, h, w, parts.merge).numpy()
            start += t * h * w
            assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-4


def test_reference_indexer_is_the_models_own_selection():
    """The float64 re-implementation agrees with what the model's indexer returned."""
    model = _model("on")
    inputs = image_inputs(model.config, GRIDS)
    with indexer_inputs(model) as (calls, indexers):
        model(**inputs)
    for layer_calls, indexer in zip(calls, indexers, strict=True):
        hidden, cos, sin, selection = layer_calls[0]
        ref = reference_selection(indexer, hidden, cos, sin)
        assert torch.equal(selection[0, 0], ref)


@pytest.mark.parametrize("backend", ["sdpa", "eager"])
@pytest.mark.parametrize("qsa", ["on", "off"])
def test_rows_equal_eager_attentions_and_are_zero_on_keys_the_indexer_dropped(qsa, backend):
    eager = _model(qsa, "eager")
    inputs = image_inputs(eager.config, GRIDS)
    with indexer_inputs(eager) as (calls, indexers):
        reference = eager(**inputs, output_attentions=True).attentions
    assert len(reference) == 2  # the linear-attention layers have no attention map
    model = _model(qsa, backend)
    length = inputs["input_ids"].shape[1]
    image = _image_span(inputs)
    with capture(model, decoder_layers=[0, 1], rows_from=0) as rec:
        model(**inputs)
    tol = 1e-6 if backend == "eager" else 1e-5
    for layer in range(2):
        positions, rows = decoder_rows(rec, layer)  # (R, B, H, K)
        assert positions == list(range(length))
        expected = reference[layer][:, :, positions].permute(2, 0, 1, 3)
        torch.testing.assert_close(rows, expected.float(), atol=tol, rtol=0)
        selected = reference_selection(indexers[layer], *calls[layer][0][:3])  # (Q, K)
        assert (rows[:, 0][~selected[:, None].expand(-1, rows.shape[2], -1)] == 0).all()
        _, allowed = decoder_allowed(rec, layer)
        assert torch.equal(allowed[:, 0, 0], selected)
        after = selected[int(image[-1]) + 1 :, image]  # queries after the image, on image keys
        if qsa == "on":
            assert after.any() and not after.all(), "the tiny budget must drop part of the image"
        else:
            assert selected.equal(torch.ones(length, length, dtype=torch.bool).tril())


@pytest.mark.parametrize("lora", [False, True], ids=["bare", "lora"])
@pytest.mark.parametrize("qsa", ["on", "off"])
def test_rows_equal_eager_attentions_step_by_step_during_generate(qsa, lora):
    model = _model(qsa, "eager")
    if lora:
        model = with_lora(model)
    inputs = image_inputs(lav.models.unwrap(model).config, GRIDS)
    length = inputs["input_ids"].shape[1]
    image = _image_span(inputs)
    gen = dict(max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=PAD_TOKEN_ID)
    ref = model.generate(**inputs, output_attentions=True, return_dict_in_generate=True, **gen)
    with capture(model, decoder_layers=[0, 1], rows_from=length - 1) as rec:
        out = model.generate(**inputs, **gen)
    assert torch.equal(out, ref.sequences)
    dropped = 0
    for layer in range(2):
        positions, rows = decoder_rows(rec, layer)
        _, allowed = decoder_allowed(rec, layer)
        assert positions == list(range(length - 1, length - 1 + len(ref.attentions)))
        for step, attn in enumerate(ref.attentions):
            expected = attn[layer][:, :, -1].float()  # (B, H, K): the KV cache holds every key so far
            width = expected.shape[-1]
            torch.testing.assert_close(rows[step, :, :, :width], expected, atol=1e-6, rtol=0)
            keep = allowed[step, :, :, :width].expand_as(expected)
            assert (rows[step, :, :, :width][~keep] == 0).all()
            assert rows[step, :, :, width:].abs().sum() == 0
            dropped += int((~allowed[step, 0, 0, image]).sum())
    assert (dropped > 0) == (qsa == "on")


# --- the indexer_selection map ---

RESPONSE = "(107, 243)"
DIGITS = [1, 2, 3, 6, 7, 8]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_checkpoint("qwen4_exp", tmp_path_factory.mktemp("qwen4") / "tiny")


@pytest.fixture(scope="module")
def screenshot():
    rng = np.random.default_rng(5)
    return Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8))


def _reference_share(model, processor, screenshot, layer_ids):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Click it"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    start = processor(text=[text], images=[screenshot], return_tensors="pt")["input_ids"].shape[1]
    inputs = dict(processor(text=[text + RESPONSE], images=[screenshot], return_tensors="pt"))
    with indexer_inputs(model) as (calls, indexers), torch.no_grad():
        model(**inputs)
    image = (inputs["input_ids"][0] == lav.models.unwrap(model).config.image_token_id).nonzero().flatten()
    _, h, w = inputs["image_grid_thw"][0].tolist()
    out = []
    for layer in layer_ids:
        selected = reference_selection(indexers[layer], *calls[layer][0][:3])
        rows = selected[[start - 1 + i for i in DIGITS]][:, image].double().mean(dim=0)
        out.append(rows.numpy().reshape(h // 2, w // 2))
    return np.stack(out)


def test_indexer_selection_map_equals_an_independent_selection(folder, screenshot):
    viz = lav.load(folder, device="cpu")
    res = viz.analyze(screenshot, "Click it", response=RESPONSE, focus_layers="all")
    sel = res.map("indexer_selection")
    assert sel.grid == "merged" and sel.style == "focus"
    assert sel.info["decoder_layers"] == [1, 3] == res.map("focus").info["decoder_layers"]
    ref = _reference_share(viz.model, viz.processor, screenshot, [0, 1])
    np.testing.assert_allclose(sel.arrays["indexer_selection_layers"], ref, atol=1e-7)
    np.testing.assert_allclose(sel.values, ref.mean(axis=0), atol=1e-7)
    assert sel.values.min() == 0 and sel.values.max() > 0, "the tiny budget must drop part of the image"
    # Where no digit row selected a token in a layer, that layer's focus is exactly zero there.
    focus_layers = res.map("focus").arrays["focus_layers"]
    assert (focus_layers[ref == 0] == 0).all()


def test_indexer_selection_runs_only_where_the_model_has_an_indexer(folder, screenshot):
    viz = lav.load(folder, device="cpu")
    assert "indexer_selection" in viz.analyze(screenshot, "Click it", response=RESPONSE).maps
    other = lav.Visualizer(tiny_model("qwen3_vl"), lav.testing.build_processor("qwen3_vl"))
    assert "indexer_selection" not in other.analyze(screenshot, "Click it", response=RESPONSE).maps
    with pytest.raises(InputError, match="does not apply"):
        other.analyze(screenshot, "Click it", response=RESPONSE, maps=["indexer_selection"])
    assert "indexer_selection" in methods.registered()


def test_commands_that_always_draw_edge_and_focus_keep_the_indexer_selection(folder, screenshot, tmp_path):
    # lav eval / lav serve run the model's default maps plus the named ones: asking for one more
    # map must not drop Qwen4-Exp's indexer_selection, and lav eval scores only what was asked for.
    viz = lav.load(folder, device="cpu")
    assert methods.with_defaults(["focus_relative"], viz.parts) == [
        "edge",
        "focus",
        "indexer_selection",
        "focus_relative",
    ]
    assert methods.with_defaults(None, viz.parts) == ["edge", "focus", "indexer_selection"]
    path = tmp_path / "s.png"
    screenshot.save(path)
    sample = Sample("a", path, "Click it", "box", (0.0, 0.0, 40.0, 40.0))
    dataset = Dataset("toy", "jsonl", (sample,), (), ())
    ev = lav.evaluate(
        viz,
        dataset,
        tmp_path / "out",
        max_new_tokens=4,
        maps=["focus_relative"],
        save_maps=True,
        progress=False,
    )
    assert set(ev.records[0]["maps"]) == {"focus", "edge", "focus_relative"}
    assert list(ev.summary["methods"]) == ["focus_relative"]
    (saved,) = (tmp_path / "out" / "samples").iterdir()
    assert "indexer_selection" in lav.Result.load(saved).maps
