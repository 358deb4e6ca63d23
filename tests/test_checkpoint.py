"""Tiny checkpoints load through the Auto classes like real Qwen-VL ones, in transformers 4.57 and 5."""

from __future__ import annotations

import json
import string
import unicodedata

import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

from lav import testing
from lav.errors import InputError
from lav.testing import (
    TINY_MAX_PIXELS,
    available_families,
    build_processor,
    build_tokenizer,
    chat_template_for,
    save_checkpoint,
    tiny_checkpoint,
)

TRANSFORMERS_5 = int(transformers.__version__.split(".")[0]) >= 5
#: (patch size, expected grid of a 200x120 image) per family: smart_resize rounds each side to a
#: multiple of patch*merge (32 or 28 px), so 120 -> 128 or 112 rows and 200 -> 192 or 196 columns.
GEOMETRY = {
    "qwen2_vl": (14, [1, 8, 14]),
    "qwen2_5_vl": (14, [1, 8, 14]),
    "qwen3_vl": (16, [1, 8, 12]),
    "qwen3_vl_moe": (16, [1, 8, 12]),
    "qwen3_5": (16, [1, 8, 12]),
    "qwen3_5_moe": (16, [1, 8, 12]),
    "qwen4_exp": (16, [1, 8, 12]),
}


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def _screenshot() -> Image.Image:
    """200x120 with a dark button, so the vision tower sees more than a constant."""
    image = Image.new("RGB", (200, 120), (240, 240, 240))
    image.paste((30, 90, 200), (120, 70, 180, 100))
    return image


def _messages(image: Image.Image, instruction: str = "Click the blue button.") -> list[dict]:
    return [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": instruction}],
        }
    ]


# --- tokenizer -------------------------------------------------------------------------------------


def test_tokenizer_has_the_tiny_vocabulary_and_its_special_ids(tokenizer):
    assert len(tokenizer) == testing.VOCAB_SIZE
    ids = {
        "<|endoftext|>": testing.PAD_TOKEN_ID,
        "<|im_start|>": testing.IM_START_TOKEN_ID,
        "<|im_end|>": testing.IM_END_TOKEN_ID,
        "<|image_pad|>": testing.IMAGE_TOKEN_ID,
        "<|video_pad|>": testing.VIDEO_TOKEN_ID,
        "<|vision_start|>": testing.VISION_START_TOKEN_ID,
        "<|vision_end|>": testing.VISION_END_TOKEN_ID,
    }
    assert {t: tokenizer.convert_tokens_to_ids(t) for t in ids} == ids
    assert tokenizer.eos_token_id == testing.IM_END_TOKEN_ID
    assert tokenizer.pad_token_id == testing.PAD_TOKEN_ID
    assert tokenizer.unk_token_id is not None
    assert tokenizer.bos_token is None


def test_tokenizer_names_the_tokens_qwen_processors_read(tokenizer):
    assert tokenizer.image_token == "<|image_pad|>"
    assert tokenizer.image_token_id == testing.IMAGE_TOKEN_ID
    assert tokenizer.video_token_id == testing.VIDEO_TOKEN_ID
    assert tokenizer.vision_start_token_id == testing.VISION_START_TOKEN_ID
    assert tokenizer.vision_end_token_id == testing.VISION_END_TOKEN_ID


def test_every_character_of_a_click_is_one_token_with_its_offsets(tokenizer):
    text = "(107, 243)"
    encoded = tokenizer(text, return_offsets_mapping=True)
    assert len(encoded["input_ids"]) == len(text)
    assert [tuple(o) for o in encoded["offset_mapping"]] == [(i, i + 1) for i in range(len(text))]
    assert [tokenizer.decode([i]) for i in encoded["input_ids"]] == list(text)
    assert encoded["input_ids"][5] == tokenizer.convert_tokens_to_ids("Ġ")  # the space is a token of its own


def test_offsets_stay_on_characters_after_a_special_token(tokenizer):
    text = "<|im_start|>assistant\n(1, 2)"
    encoded = tokenizer(text, return_offsets_mapping=True)
    assert encoded["input_ids"][0] == testing.IM_START_TOKEN_ID
    spans = [text[a:b] for a, b in encoded["offset_mapping"]]
    assert spans == ["<|im_start|>", *"assistant\n(1, 2)"]


def test_decode_inverts_encode_for_printable_ascii(tokenizer):
    text = string.printable + "\n" + "".join(chr(c) for c in range(32, 127))
    ids = tokenizer.encode(text)
    assert len(ids) == len(text)
    assert tokenizer.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8")))
def test_decode_inverts_encode_for_any_nfc_text(tokenizer, text):
    text = unicodedata.normalize("NFC", text)  # Qwen tokenizers normalise to NFC, so does this one
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_special_tokens_typed_in_text_are_single_tokens(tokenizer):
    ids = tokenizer.encode("<|vision_start|><|image_pad|><|vision_end|>")
    assert ids == [testing.VISION_START_TOKEN_ID, testing.IMAGE_TOKEN_ID, testing.VISION_END_TOKEN_ID]
    assert tokenizer.decode(ids, skip_special_tokens=True) == ""


# --- chat template ---------------------------------------------------------------------------------


def test_chat_template_renders_qwen_turns(tokenizer):
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Answer with a point."}]},
        *_messages(None, "Click OK."),
        {"role": "assistant", "content": [{"type": "text", "text": "(1, 2)"}]},
        {"role": "user", "content": "Now Cancel."},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nAnswer with a point.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Click OK.<|im_end|>\n"
        "<|im_start|>assistant\n(1, 2)<|im_end|>\n"
        "<|im_start|>user\nNow Cancel.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_default_system_prompt_only_when_none_is_given():
    template = chat_template_for("You are a helpful assistant.")
    tokenizer = build_tokenizer(template)
    plain = [{"role": "user", "content": "Hi"}]
    assert tokenizer.apply_chat_template(plain, tokenize=False) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    )
    own = [{"role": "system", "content": "Be brief."}, *plain]
    assert tokenizer.apply_chat_template(own, tokenize=False).count("<|im_start|>system") == 1


@pytest.mark.skipif(
    not TRANSFORMERS_5,
    reason="transformers 4.57's processor takes the assistant span's positions from the text before the "
    "image pads are expanded and the offsets from after, so with an image the mask lands early "
    "(on 'ck OK.<|im_end|>' here); without images it is right",
)
def test_assistant_tokens_mask_covers_the_answer():
    processor = build_processor("qwen3_vl")
    messages = [
        *_messages(_screenshot(), "Click OK."),
        {"role": "assistant", "content": [{"type": "text", "text": "(1, 2)"}]},
    ]
    inputs = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True
    )
    masked = inputs["input_ids"][0][inputs["assistant_masks"][0].bool()]
    assert processor.tokenizer.decode(masked) == "(1, 2)<|im_end|>"


# --- processors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", available_families())
def test_processor_is_the_familys_real_one(family):
    processor = build_processor(family)
    patch, grid = GEOMETRY[family]
    images = processor.image_processor
    assert (images.patch_size, images.merge_size, images.temporal_patch_size) == (patch, 2, 2)
    assert processor.video_processor.patch_size == patch
    model_type = testing.tiny_config(family).model_type
    assert type(processor).__name__ == PROCESSOR_MAPPING_NAMES[model_type]
    inputs = processor(images=[_screenshot()], text=["<|vision_start|><|image_pad|><|vision_end|>"])
    assert inputs["image_grid_thw"].tolist() == [grid]


def test_pixel_limits_bound_the_resized_image():
    processor = build_processor("qwen3_vl", min_pixels=64 * 64, max_pixels=128 * 128)
    big = processor.image_processor(images=[Image.new("RGB", (1600, 900))], return_tensors="pt")
    t, h, w = big["image_grid_thw"][0].tolist()
    assert h * w * 16 * 16 <= 128 * 128
    small = processor.image_processor(images=[Image.new("RGB", (20, 20))], return_tensors="pt")
    t, h, w = small["image_grid_thw"][0].tolist()
    assert h * w * 16 * 16 >= 64 * 64


def test_default_pixel_limit_keeps_tiny_models_fast():
    processor = build_processor("qwen2_5_vl")
    out = processor.image_processor(images=[Image.new("RGB", (3000, 2000))], return_tensors="pt")
    assert out["image_grid_thw"][0].prod().item() * 14 * 14 <= TINY_MAX_PIXELS


def test_unknown_family_is_an_input_error():
    with pytest.raises(InputError, match="unknown family 'llava'"):
        build_processor("llava")


def test_inverted_pixel_limits_are_an_input_error():
    with pytest.raises(InputError, match="min_pixels <= max_pixels"):
        build_processor("qwen3_vl", min_pixels=100_000, max_pixels=1_000)


def test_vision_override_that_breaks_the_processor_geometry_is_refused(tmp_path):
    with pytest.raises(InputError, match="does not match its processor"):
        tiny_checkpoint("qwen3_vl", tmp_path, vision={"patch_size": 14})


# --- whole checkpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", available_families())
def test_saved_checkpoint_loads_through_the_auto_classes_like_a_real_one(tmp_path, family):
    model = testing.tiny_model(family, seed=3)
    processor = build_processor(family)
    folder = save_checkpoint(model, processor, tmp_path / family)

    loaded_processor = transformers.AutoProcessor.from_pretrained(folder)
    loaded_model = transformers.AutoModelForImageTextToText.from_pretrained(folder).eval()
    assert type(loaded_processor) is type(processor)
    assert type(loaded_model) is type(model)

    inputs = loaded_processor.apply_chat_template(
        _messages(_screenshot()),
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        add_generation_prompt=True,
    )
    grid = inputs["image_grid_thw"]
    assert grid.tolist() == [GEOMETRY[family][1]]
    image_tokens = (inputs["input_ids"] == testing.IMAGE_TOKEN_ID).sum().item()
    assert image_tokens == grid.prod().item() // 4
    text = loaded_processor.tokenizer.decode(inputs["input_ids"][0])
    assert text.endswith("<|vision_end|>Click the blue button.<|im_end|>\n<|im_start|>assistant\n")

    # The in-memory processor prepares the very same inputs.
    again = processor.apply_chat_template(
        _messages(_screenshot()),
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        add_generation_prompt=True,
    )
    assert again.keys() == inputs.keys()
    for key in inputs:
        assert torch.equal(again[key], inputs[key]), key

    saved, restored = model.state_dict(), loaded_model.state_dict()
    assert saved.keys() == restored.keys()
    for name, tensor in saved.items():
        assert torch.equal(restored[name], tensor), name
    with torch.no_grad():
        # Weights loaded from safetensors live in the file's memory map; torch 2.14's CPU grouped_mm
        # (the MoE experts) rounds differently on such buffers (7e-8 on qwen3_5_moe) than on freshly
        # allocated ones with the same values. Equal values in ordinary memory must give equal logits.
        for p in loaded_model.parameters():
            p.data = p.data.clone()
        expected = model(**inputs).logits
        got = loaded_model(**inputs).logits
    assert got.shape == (1, inputs["input_ids"].shape[1], testing.VOCAB_SIZE)
    assert torch.equal(got, expected)


def test_tiny_checkpoint_writes_a_hub_layout(tmp_path):
    folder = tiny_checkpoint("qwen3_vl", tmp_path / "ckpt", seed=1)
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert names & {"preprocessor_config.json", "processor_config.json"}
    assert names & {"chat_template.jinja", "chat_template.json"}
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "Qwen2Tokenizer"
    assert "local_files_only" not in tokenizer_config
    config = json.loads((folder / "config.json").read_text())
    # Both spellings of the rotary settings, as hub checkpoints have them (4.57 reads only the old one).
    assert config["text_config"]["rope_scaling"]["mrope_section"] == [2, 3, 3]


def test_tiny_checkpoint_seed_and_overrides_reach_the_model(tmp_path):
    a = tiny_checkpoint("qwen3_vl", tmp_path / "a", seed=1, text={"num_hidden_layers": 2})
    b = tiny_checkpoint("qwen3_vl", tmp_path / "b", seed=2)
    model_a = transformers.AutoModelForImageTextToText.from_pretrained(a)
    model_b = transformers.AutoModelForImageTextToText.from_pretrained(b)
    assert model_a.config.text_config.num_hidden_layers == 2
    reference = testing.tiny_model("qwen3_vl", seed=1, text={"num_hidden_layers": 2})
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model_a.state_dict()[name], tensor), name
    assert not torch.equal(
        model_b.get_input_embeddings().weight,
        testing.tiny_model("qwen3_vl", seed=1).get_input_embeddings().weight,
    )


def test_reloaded_tokenizer_matches_the_built_one(tmp_path, tokenizer):
    folder = tiny_checkpoint("qwen2_5_vl", tmp_path / "ckpt")
    loaded = transformers.AutoTokenizer.from_pretrained(folder)
    text = "<|im_start|>user\nClick (107, 243) — café<|im_end|>\n"
    assert loaded(text, return_offsets_mapping=True) == tokenizer(text, return_offsets_mapping=True)
    assert loaded.eos_token_id == testing.IM_END_TOKEN_ID
    assert loaded.image_token_id == testing.IMAGE_TOKEN_ID
    messages = [{"role": "user", "content": "Hi"}]
    assert loaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
