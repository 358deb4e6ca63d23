"""Model specs: every family is found (also under PEFT) and anything else is refused clearly."""

from __future__ import annotations

import pytest
import transformers

from lav.errors import InputError, UnsupportedModelError
from lav.models import SUPPORTED_MODEL_TYPES, inspect_model, resolve_layers
from lav.testing import available_families, tiny_config, tiny_model

from .probe import with_lora


@pytest.mark.parametrize("family", available_families())
def test_parts_match_the_config(family):
    model = tiny_model(family)
    parts = inspect_model(model)
    cfg = model.config
    assert len(parts.vision_attention) == cfg.vision_config.depth
    types = (
        getattr(cfg.text_config, "layer_types", None)
        or ["full_attention"] * cfg.text_config.num_hidden_layers
    )
    full = [i for i, t in enumerate(types) if t in ("full_attention", "indexed_attention")]
    assert parts.decoder_layer_ids == tuple(full)
    assert len(parts.decoder_attention) == len(full)
    assert parts.patch == cfg.vision_config.patch_size
    assert parts.merge == cfg.vision_config.spatial_merge_size
    assert parts.image_token_id == cfg.image_token_id


def test_qwen3_5_focus_layers_are_the_full_attention_ones():
    if "qwen3_5" not in available_families():
        pytest.skip("transformers release without Qwen3.5")
    parts = inspect_model(tiny_model("qwen3_5"))
    assert parts.decoder_layer_ids == (1, 3)  # layers 0 and 2 are Gated DeltaNet


@pytest.mark.parametrize("family", available_families())
def test_spec_classes_agree_with_the_models_own_recordable_attention(family):
    model = tiny_model(family)
    parts = inspect_model(model)
    listed = set()
    for m in model.modules():
        target = (getattr(type(m), "_can_record_outputs", None) or {}).get("attentions")
        if target is not None:
            listed.add(getattr(target, "target_class", target))
    found = {type(m) for m in (*parts.vision_attention, *parts.decoder_attention)}
    # Where the release lists its attention classes, ours are among them.
    assert not listed or (found & listed)
    assert {type(m) for m in parts.decoder_attention} <= listed or transformers.__version__.startswith("4.")


@pytest.mark.parametrize("family", available_families())
def test_peft_wrapped_model_has_the_same_parts(family):
    model = tiny_model(family)
    bare = inspect_model(model)
    wrapped = inspect_model(with_lora(model))
    assert [id(m) for m in wrapped.vision_attention] == [id(m) for m in bare.vision_attention]
    assert [id(m) for m in wrapped.decoder_attention] == [id(m) for m in bare.decoder_attention]


def test_windowed_family_reports_its_windowed_blocks():
    parts = inspect_model(tiny_model("qwen2_5_vl"))
    assert parts.full_attention_blocks == (1, 3)
    assert parts.windowed_blocks == (0, 2)
    assert inspect_model(tiny_model("qwen3_vl")).windowed_blocks == ()


def test_unsupported_architecture_names_the_supported_ones():
    cfg = transformers.LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    model = transformers.LlamaForCausalLM(cfg)
    with pytest.raises(UnsupportedModelError) as err:
        inspect_model(model)
    message = str(err.value)
    assert "'llama'" in message
    for model_type in SUPPORTED_MODEL_TYPES:
        assert model_type in message


def test_unchecked_decoder_layer_type_is_refused():
    cfg = tiny_config("qwen3_vl")
    model = transformers.AutoModelForImageTextToText.from_config(cfg)
    model.config.text_config.layer_types = ["full_attention", "sliding_attention", "full_attention"]
    with pytest.raises(UnsupportedModelError, match="sliding_attention"):
        inspect_model(model)


def test_sliding_window_decoder_is_refused():
    cfg = tiny_config("qwen2_vl")
    model = transformers.AutoModelForImageTextToText.from_config(cfg)
    model.config.text_config.use_sliding_window = True
    with pytest.raises(UnsupportedModelError, match="sliding-window"):
        inspect_model(model)


@pytest.mark.parametrize(
    ("selection", "expected"),
    [(-1, (3,)), ([-2, -1], (2, 3)), ("all", (0, 1, 2, 3)), ("0,-1", (0, 3)), ([1, 1], (1,))],
)
def test_layer_selection_accepts_negative_indices_and_all(selection, expected):
    assert resolve_layers(selection, 4, "blocks") == expected


@pytest.mark.parametrize("selection", [4, [-5], [], "first"])
def test_bad_layer_selection_says_what_exists(selection):
    with pytest.raises(InputError):
        resolve_layers(selection, 4, "vision blocks")


def test_every_family_keeps_its_tiny_config_and_processor_beside_its_spec():
    from lav.models import FAMILIES, spec_for_config

    for spec in FAMILIES:
        assert spec.tiny is not None and spec.processor is not None, spec.family
        assert spec.title, spec.family
    # Each family builds its own config class, whose model_type finds the same spec again.
    assert len({s.tiny.config_class for s in FAMILIES}) == len(FAMILIES)
    for family in available_families():
        config = tiny_config(family)
        assert spec_for_config(config).family == family


def test_derived_families_are_their_relatives_plus_one_difference():
    from lav.models import BY_FAMILY

    qwen2, qwen25 = BY_FAMILY["qwen2_vl"], BY_FAMILY["qwen2_5_vl"]
    assert qwen25.windowed and not qwen2.windowed
    assert qwen25.tiny.text == qwen2.tiny.text  # same decoder, windowed vision tower
    qwen3, qwen35 = BY_FAMILY["qwen3_vl"], BY_FAMILY["qwen3_5"]
    assert set(qwen35.layer_kinds) == {"full_attention", "linear_attention"}
    assert qwen35.processor == qwen3.processor  # Qwen3.5 checkpoints ship Qwen3-VL's processor


@pytest.mark.parametrize("family", available_families())
def test_attention_sizes_from_the_config_are_those_the_live_modules_use(family):
    from lav.models import attention_sizes

    # Qwen2-VL's blocks are embed_dim wide, its vision hidden_size is the merger's output: made to differ.
    model = tiny_model(family, vision={"embed_dim": 128} if family == "qwen2_vl" else None)
    sizes = attention_sizes(model.config)
    parts = inspect_model(model)
    vision, text = parts.vision_attention[0], parts.decoder_attention[0]
    assert (sizes.patch, sizes.merge) == (parts.patch, parts.merge)
    assert (sizes.vision_heads, sizes.vision_head_dim) == (vision.num_heads, vision.head_dim)
    assert vision.qkv.in_features == sizes.vision_heads * sizes.vision_head_dim
    kv = text.k_proj.out_features // text.head_dim
    assert (sizes.text_heads, sizes.text_kv_heads, sizes.text_head_dim) == (
        kv * text.num_key_value_groups,
        kv,
        text.head_dim,
    )


def test_qwen2_vl_vision_head_size_is_embed_dim_over_heads():
    from lav.models import attention_sizes

    # transformers' Qwen2VLConfig defaults are Qwen2-VL-7B-Instruct's: embed_dim 1280, 16 heads of 80.
    sizes = attention_sizes(transformers.Qwen2VLConfig())
    assert (sizes.vision_heads, sizes.vision_head_dim) == (16, 80)
