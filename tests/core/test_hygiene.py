"""Capture (and `override`, under every pass that swaps the attention function) and the scoring hooks
(`lav.scoring`) leave no registration, config change or hook behind, after success, an exception or a
refused target."""

from __future__ import annotations

import threading

import pytest
import torch
import transformers
from transformers.masking_utils import AttentionMaskInterface
from transformers.modeling_utils import AttentionInterface

from lav import scoring
from lav.capture import capture, model_lock, override
from lav.errors import UnsupportedModelError
from lav.models import inspect_model
from lav.scoring import scoring_steps
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


# --------------------------------------------------------------------------------------------
# `override`: the one routine that points attention modules at a function of lav's (capture, the
# gradient and rollout passes all run through it).


def _passing(calls):
    """An attention function that runs the model's own backend and counts its calls."""

    def attention(backend):
        def forward(module, query, key, value, *args, **kwargs):
            calls.append(id(module))
            return backend(module, query, key, value, *args, **kwargs)

        return forward

    return attention


def test_override_runs_the_function_inside_and_leaves_nothing_after():
    model = tiny_model("qwen3_vl")
    parts = inspect_model(model)
    inputs = _inputs(model)
    before = _state(model)
    own = {m.config._attn_implementation for m in parts.decoder_attention}
    calls = []
    with override(model, _passing(calls), parts.decoder_attention) as backend:
        names = {m.config._attn_implementation for m in parts.decoder_attention}
        assert {backend.name} == own and len(names) == 1 and names != own
        assert (
            names <= AttentionInterface._global_mapping.keys() & AttentionMaskInterface._global_mapping.keys()
        )
        # Only the configs of the modules named change: the vision tower keeps its own.
        assert {m.config._attn_implementation for m in parts.vision_attention} == {backend.name}
        model(**inputs)
    assert set(calls) == {id(m) for m in parts.decoder_attention}
    assert _state(model) == before
    seen = len(calls)
    model(**inputs)
    assert len(calls) == seen


def test_override_leaves_nothing_after_an_exception_inside():
    model = tiny_model("qwen2_5_vl")
    parts = inspect_model(model)
    before = _state(model)
    with pytest.raises(ZeroDivisionError), override(model, _passing([]), parts.vision_attention):
        model(**_inputs(model))
        1 / 0  # noqa: B018
    assert _state(model) == before


def test_override_refuses_a_bad_target_and_changes_nothing():
    model = tiny_model("qwen3_vl")
    parts = inspect_model(model)
    # Two backends among the modules named: no one function can stand in for both.
    parts.decoder_attention[0].config._attn_implementation_internal = "eager"
    parts.vision_attention[0].config._attn_implementation_internal = "sdpa"
    before = _state(model)
    everything = (*parts.vision_attention, *parts.decoder_attention)
    with (
        pytest.raises(UnsupportedModelError, match="attn_implementation="),
        override(model, _passing([]), everything),
    ):
        pass
    assert _state(model) == before

    def broken(backend):
        raise ValueError("cannot build")

    with pytest.raises(ValueError, match="cannot build"), override(model, broken, parts.decoder_attention):
        pass
    assert _state(model) == before


def test_override_holds_the_models_lock():
    model = tiny_model("qwen3_vl")
    parts = inspect_model(model)
    taken = []

    def other_thread():
        lock = model_lock(model)
        taken.append(lock.acquire(blocking=False))
        if taken[-1]:
            lock.release()

    with override(model, _passing([]), parts.decoder_attention):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    other_thread()
    assert taken == [False, True]


# --------------------------------------------------------------------------------------------
# `lav.scoring`: the hooks that read each answer position's logits (digit confidence).


@pytest.mark.parametrize("lora", [False, True], ids=["bare", "lora"])
def test_step_scoring_leaves_no_hook_after_a_generate_or_an_exception(lora):
    model = tiny_model("qwen3_vl")
    if lora:
        model = with_lora(model)
    inputs = _inputs(model)
    prompt = inputs["input_ids"].shape[1]
    before = _state(model)
    with torch.inference_mode(), scoring_steps(model, prompt, 1) as scorer:
        assert _state(model) != before  # the hook is on the model generate runs
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False, return_dict_in_generate=True)
    n = out.sequences.shape[1] - prompt
    assert n > 0 and len(scorer.finish(out.sequences, [n])[0]) == n
    assert _state(model) == before
    with pytest.raises(ZeroDivisionError), scoring_steps(model, prompt, 1):
        1 / 0  # noqa: B018
    assert _state(model) == before


def test_step_scoring_holds_the_models_lock():
    model = tiny_model("qwen3_vl")
    taken = []

    def other_thread():
        lock = model_lock(model)
        taken.append(lock.acquire(blocking=False))
        if taken[-1]:
            lock.release()

    with scoring_steps(model, 1, 1):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    other_thread()
    assert taken == [False, True]


@pytest.mark.parametrize("keeps", [True, False], ids=["logits_to_keep", "head-hook"])
@pytest.mark.parametrize("lora", [False, True], ids=["bare", "lora"])
def test_forced_logits_are_the_full_forwards_tail_and_leave_nothing_behind(keeps, lora, monkeypatch):
    # Without `logits_to_keep` (Qwen2-VL on transformers 4.57) a pre-hook on the output embedding
    # hands it the answer positions only: test that path on every model.
    monkeypatch.setattr(scoring, "keeps_logits", lambda model: keeps)
    model = tiny_model("qwen3_vl")
    if lora:
        model = with_lora(model)
    inputs = _inputs(model)
    before = _state(model)
    with torch.inference_mode():
        full = model(**inputs, use_cache=False).logits
        kept = scoring.forced_logits(model, inputs, 5)
    assert kept.shape[1] == full.shape[1] - 5
    torch.testing.assert_close(kept, full[:, 5:], atol=1e-6, rtol=0)
    assert _state(model) == before
    bad = dict(inputs, image_grid_thw=torch.tensor([[1, 2, 2]]))  # does not match the image tokens
    with pytest.raises(Exception):  # noqa: B017
        scoring.forced_logits(model, bad, 5)
    assert _state(model) == before
