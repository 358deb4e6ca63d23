"""Capture leaves no registration, config change or hook behind, after success or an exception."""

from __future__ import annotations

import pytest
import torch
import transformers
from transformers.masking_utils import AttentionMaskInterface
from transformers.modeling_utils import AttentionInterface

from lav.capture import capture
from lav.testing import tiny_model

from ..helpers import image_inputs
from .probe import with_lora


def _state(model):
    configs = {
        id(m.config): (m.config._attn_implementation_internal, m.config.to_json_string())
        for m in model.modules()
        if hasattr(m, "config") and hasattr(m.config, "_attn_implementation_internal")
    }
    hooks = sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
    )
    return (
        dict(AttentionInterface._global_mapping),
        dict(AttentionMaskInterface._global_mapping),
        configs,
        hooks,
        torch.nn.modules.module._global_forward_hooks.copy(),
    )


def _inputs(model):
    inputs = image_inputs(
        model.config if not hasattr(model, "get_base_model") else model.get_base_model().config, [(1, 4, 4)]
    )
    if transformers.__version__.startswith("4."):
        inputs.pop("mm_token_type_ids")
    return inputs


@pytest.mark.parametrize("lora", [False, True], ids=["bare", "lora"])
def test_nothing_survives_a_normal_run(lora):
    model = tiny_model("qwen3_vl")
    if lora:
        model = with_lora(model)
    before = _state(model)
    with capture(model, vision_blocks=[0, 2], decoder_layers=[1], rows_from=0):
        model(**_inputs(model))
    assert _state(model) == before


def test_nothing_survives_an_exception_inside():
    model = tiny_model("qwen2_5_vl")
    before = _state(model)
    with pytest.raises(ZeroDivisionError), capture(model, vision_blocks=[0], decoder_layers=[0], rows_from=0):
        model(**_inputs(model))
        1 / 0  # noqa: B018
    assert _state(model) == before


def test_nothing_survives_a_model_that_raises():
    model = tiny_model("qwen3_vl")
    before = _state(model)
    bad = _inputs(model)
    bad["image_grid_thw"] = torch.tensor([[1, 2, 2]])  # does not match the image tokens
    with pytest.raises(Exception), capture(model, vision_blocks=[0], decoder_layers=[0], rows_from=0):  # noqa: B017
        model(**bad)
    assert _state(model) == before


def test_outside_the_context_the_model_runs_its_own_backend():
    model = tiny_model("qwen3_vl")
    inputs = _inputs(model)
    with capture(model, vision_blocks=[0], decoder_layers=[0], rows_from=0) as rec:
        model(**inputs)
    recorded = len(rec.vision[0])
    model(**inputs)
    assert len(rec.vision[0]) == recorded
