"""Methods beyond raw attention (issue #11) against independent float64 references, adapter on and
off, on a tiny model of every family; and a planted attention sink that dominates the raw focus but
neither the sink-aware nor the relative focus."""

from __future__ import annotations

import numpy as np
import peft
import pytest
import torch

import lav
from lav.methods import GENERIC_INSTRUCTION
from lav.methods.sink import SINK_TAU
from lav.testing import available_families

from .conftest import load
from .methods_reference import (
    Rows,
    grad_reference,
    reference_model,
    relative_reference,
    rollout_reference,
    selected_heads_reference,
    sink_masked_reference,
)
from .reference64 import load_float64_eager

INSTRUCTION = "Click the red button"
RESPONSE = "(107, 243)"
ATOL = 1e-4
MAPS = ["focus", "focus_sink_masked", "focus_selected", "focus_relative"]
HEADS = [(-1, 0), (-2, 3), (-1, 2)]


def _adapter(model):
    torch.manual_seed(5)
    cfg = peft.LoraConfig(r=4, lora_alpha=16, target_modules=["qkv", "q_proj", "k_proj", "v_proj"])
    wrapped = peft.get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    return wrapped


def _check(res: lav.Result, reference, processor, screenshot, tag: str) -> None:
    layers = res.maps["focus"].layers
    task = Rows(reference, processor, screenshot, INSTRUCTION, RESPONSE)
    generic = Rows(reference, processor, screenshot, GENERIC_INSTRUCTION, RESPONSE)
    count = len(task.attn)
    sink = sink_masked_reference(task, layers, SINK_TAU)
    got = res.maps["focus_sink_masked"]
    np.testing.assert_allclose(got.values, sink["values"], atol=ATOL, rtol=0, err_msg=f"{tag} sink")
    assert got.info["masked_cells"] == sink["cells"], tag
    heads = [(layer % count, head) for layer, head in HEADS]
    np.testing.assert_allclose(
        res.maps["focus_selected"].values,
        selected_heads_reference(task, heads),
        atol=ATOL,
        rtol=0,
        err_msg=f"{tag} heads",
    )
    assert res.maps["focus_selected"].info["heads"] == [list(h) for h in heads]
    relative = relative_reference(task, generic, layers)
    np.testing.assert_allclose(
        res.maps["focus_relative"].values, relative, atol=ATOL, rtol=0, err_msg=f"{tag} relative"
    )
    assert res.maps["focus_relative"].info["generic"] == GENERIC_INSTRUCTION
    assert relative.std() > 0.05  # not a degenerate comparison


@pytest.mark.parametrize("family", available_families())
def test_methods_equal_float64_references_with_the_adapter_on_and_off(
    family, checkpoint, screenshot, tmp_path
):
    folder = checkpoint(family)
    model, processor = load(folder)
    viz = lav.Visualizer(_adapter(model), processor)
    res = viz.analyze(
        screenshot,
        INSTRUCTION,
        response=RESPONSE,
        focus_layers=(-2, -1),
        maps=MAPS,
        focus_heads=HEADS,
        compare_base=True,
    )
    assert list(res.maps) == MAPS and list(res.base.maps) == MAPS
    # The adapter changes what is compared (the base pass is not a copy of the adapter's).
    assert not np.allclose(
        res.maps["focus_relative"].values, res.base.maps["focus_relative"].values, atol=1e-3
    )
    _check(res, reference_model(viz.model, tmp_path / "merged"), processor, screenshot, f"{family} lora")
    # The base pass: the checkpoint as saved (get_peft_model wraps the layers of ``model`` in place).
    _check(res.base, load_float64_eager(folder), processor, screenshot, family)


def test_new_methods_are_opt_in_and_focus_heads_adds_its_map(checkpoint, screenshot):
    model, processor = load(checkpoint("qwen2_vl"))
    viz = lav.Visualizer(model, processor)
    assert list(viz.analyze(screenshot, INSTRUCTION, response=RESPONSE).maps) == ["edge", "focus"]
    res = viz.analyze(screenshot, INSTRUCTION, response=RESPONSE, focus_heads="-1:1, 0:0")
    assert list(res.maps) == ["edge", "focus", "focus_selected"]
    assert res.maps["focus_selected"].info["heads"] == [[2, 1], [0, 0]]
    with pytest.raises(lav.InputError, match="layer:head"):
        viz.analyze(screenshot, INSTRUCTION, response=RESPONSE, focus_heads="-1")
    with pytest.raises(lav.InputError, match="has heads 0..3"):
        viz.analyze(screenshot, INSTRUCTION, response=RESPONSE, focus_heads=[(0, 4)])
    with pytest.raises(lav.InputError, match="needs heads"):
        viz.analyze(screenshot, INSTRUCTION, response=RESPONSE, maps=["focus_selected"])


# --- a planted sink ---------------------------------------------------------------------------


#: Added to the lowest-frequency rotary dimension of every query, and of the sink token's keys: its
#: logit rises by about QUERY * KEY * scale for every query (RoPE turns that dimension by < 0.1 rad
#: over the tiny prompt), so it takes most of each row's attention whatever the query asks.
QUERY, KEY = 6.0, 6.0
SINK_TOKEN = 5  # among the image tokens (raster over the merged grid)
#: The massive activation real sinks carry (Kang et al.): this value in dimension `DIM` of the last
#: layer's attention input, at the first token and at the sink, well above the rule's threshold.
MASSIVE, DIM = 3 * SINK_TAU, 7


def plant_sink(model, sink_position: int, head_dim: int):
    """Hooks on the last decoder layer that make one position a sink; their handles.

    Its attention input gets a massive activation at the first token and at the sink (what the
    hidden-state rule reads), and q_proj / k_proj outputs make every query match the sink's key
    (what makes it take most of the attention).
    """
    layers = [m for m in model.modules() if hasattr(m, "self_attn") and hasattr(m, "input_layernorm")]
    attention = layers[-1].self_attn
    low = head_dim // 2 - 1

    def massive(module, args, out):
        out = out.clone()
        out[:, [0, sink_position], DIM] = MASSIVE
        return out

    def queries(module, args, out):
        out = out.clone()
        out[..., low::head_dim] += QUERY
        return out

    def keys(module, args, out):
        out = out.clone()
        out[:, sink_position, low::head_dim] += KEY
        return out

    return [
        layers[-1].input_layernorm.register_forward_hook(massive),
        attention.q_proj.register_forward_hook(queries),
        attention.k_proj.register_forward_hook(keys),
    ]


def test_a_planted_sink_dominates_raw_focus_but_not_sink_aware_or_relative_focus(
    checkpoint, screenshot, tmp_path
):
    folder = checkpoint("qwen2_vl")  # no q/k norm: the planted key survives as planted
    model, processor = load(folder)
    viz = lav.Visualizer(model, processor)
    reference = reference_model(model, tmp_path / "ref")
    task = Rows(reference, processor, screenshot, INSTRUCTION, RESPONSE)
    position = int(task.image[SINK_TOKEN])
    head_dim = model.config.text_config.hidden_size // model.config.text_config.num_attention_heads
    handles = plant_sink(model, position, head_dim) + plant_sink(reference, position, head_dim)
    try:
        res = viz.analyze(screenshot, INSTRUCTION, response=RESPONSE, maps=MAPS, focus_heads=HEADS)
        _check(res, reference, processor, screenshot, "planted sink")
    finally:
        for h in handles:
            h.remove()
    width = res.focus.shape[1]
    cell = divmod(SINK_TOKEN, width)
    focus = res.maps["focus"].arrays["focus_raw"]
    # Raw focus: the sink takes most of the image's attention, and every other cell is dark.
    assert focus[cell] > 0.5 * focus.sum()
    assert np.sort(res.focus.ravel())[-2] < 0.1
    masked = res.maps["focus_sink_masked"]
    assert masked.info["masked_cells"] == [list(cell)]
    assert DIM in masked.info["sink_dims"][str(model.config.text_config.num_hidden_layers - 1)]
    assert masked.arrays["focus_sink_masked_cells"][cell] == 1
    assert masked.values[cell] == 0 and masked.values.max() == 1 and masked.values.std() > 0.1
    assert res.maps["focus_sink_masked"].arrays["focus_sink_share"].min() > 0.5
    relative = res.maps["focus_relative"].values
    # Any prompt gives the sink about the same share: its ratio is near 1 and no longer darkens the
    # rest of the map (under raw focus every other cell is below 0.1).
    others = np.delete(relative.ravel(), SINK_TOKEN)
    assert np.median(others) > 0.2 and relative.std() > 0.1
    ratio = res.maps["focus_relative"].arrays["focus_relative_raw"]
    assert 0.5 < ratio[cell] < 2


@pytest.mark.parametrize("family", available_families())
def test_focus_grad_equals_autograd_through_the_float64_eager_model_adapter_on_and_off(
    family, checkpoint, screenshot, tmp_path
):
    folder = checkpoint(family)
    model, processor = load(folder)
    viz = lav.Visualizer(_adapter(model), processor)
    flags = [p.requires_grad for p in viz.model.parameters()]
    res = viz.analyze(
        screenshot,
        INSTRUCTION,
        response=RESPONSE,
        focus_layers=(-2, -1),
        maps=["focus", "focus_grad"],
        compare_base=True,
    )
    assert [p.requires_grad for p in viz.model.parameters()] == flags  # put back as found
    layers = res.maps["focus"].layers
    for result, reference, tag in (
        (res, reference_model(viz.model, tmp_path / "merged"), "lora"),
        (res.base, load_float64_eager(folder), "base"),
    ):
        want = grad_reference(reference, processor, screenshot, INSTRUCTION, RESPONSE, layers)
        got = result.maps["focus_grad"]
        assert want.std() > 0.05
        np.testing.assert_allclose(got.values, want, atol=ATOL, rtol=0, err_msg=f"{family} {tag}")
    assert not np.allclose(res.maps["focus_grad"].values, res.base.maps["focus_grad"].values, atol=1e-3)


@pytest.mark.parametrize("family", available_families())
def test_edge_rollout_equals_the_dense_float64_product_adapter_on_and_off(
    family, checkpoint, screenshot, tmp_path
):
    folder = checkpoint(family)
    model, processor = load(folder)
    viz = lav.Visualizer(_adapter(model), processor)
    res = viz.analyze(screenshot, INSTRUCTION, response=RESPONSE, maps=["edge_rollout"], compare_base=True)
    depth = len(viz.parts.vision_attention)
    for result, reference, tag in (
        (res, reference_model(viz.model, tmp_path / "merged"), "lora"),
        (res.base, load_float64_eager(folder), "base"),
    ):
        want = rollout_reference(reference, processor, screenshot, INSTRUCTION, RESPONSE, depth - 1)
        got = result.maps["edge_rollout"]
        assert want.std() > 0.05 and got.info["blocks"] == depth
        np.testing.assert_allclose(got.values, want, atol=ATOL, rtol=0, err_msg=f"{family} {tag}")
    assert not np.allclose(res.maps["edge_rollout"].values, res.base.maps["edge_rollout"].values, atol=1e-3)


def test_edge_rollout_of_a_batch_equals_one_by_one(checkpoint, screenshot):
    model, processor = load(checkpoint("qwen2_5_vl"))
    viz = lav.Visualizer(model, processor)
    small = screenshot.resize((120, 90))
    items = [(screenshot, INSTRUCTION), (small, "Click the long blue thing")]
    batch = viz.analyze_many(items, maps=["edge_rollout"], max_new_tokens=4)
    for res, (image, text) in zip(batch, items, strict=True):
        one = viz.analyze(image, text, maps=["edge_rollout"], max_new_tokens=4)
        np.testing.assert_allclose(
            res.maps["edge_rollout"].values, one.maps["edge_rollout"].values, atol=1e-5
        )


def test_focus_grad_under_a_callers_inference_mode_is_the_same_map(checkpoint, screenshot):
    model, processor = load(checkpoint("qwen2_vl"))
    viz = lav.Visualizer(model, processor)
    free = viz.analyze(screenshot, INSTRUCTION, response=RESPONSE, maps=["focus_grad"])
    with torch.inference_mode():
        inside = viz.analyze(screenshot, INSTRUCTION, response=RESPONSE, maps=["focus_grad"])
    np.testing.assert_array_equal(free.maps["focus_grad"].values, inside.maps["focus_grad"].values)
    assert all(p.requires_grad for p in model.parameters())
