"""Presets on tiny models of their families: the prompt the processor gets, the resize, the answer
length, auto-pick, overrides and the refusal of a model lav cannot run."""

from __future__ import annotations

import json

import pytest
import transformers
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

import lav
from lav.analysis import Visualizer
from lav.errors import InputError, LavWarning, UnsupportedModelError
from lav.loading import apply_preset
from lav.presets import get_preset, presets
from lav.testing import available_families, build_processor, tiny_checkpoint, tiny_model

INSTRUCTION = "Click the Save button"
#: Long system prompts (computer_use tools) are thousands of characters, one token each in the tiny
#: tokenizer: a context that holds them.
CONTEXT = {"max_position_embeddings": 16384}
#: The tiny processor's own bounds (lav.testing) and the default system prompt of its chat template.
TEMPLATE_DEFAULT_SYSTEM = {
    "qwen2_vl": "You are a helpful assistant.",
    "qwen2_5_vl": "You are a helpful assistant.",
}
IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"


def _runnable():
    return [p for p in presets().values() if p.unsupported is None and p.families[0] in available_families()]


class RecordingProcessor:
    """The real processor, keeping the text of every call: what the processor was given."""

    def __init__(self, processor):
        self._processor = processor
        self.texts: list[str] = []

    def __call__(self, *args, **kwargs):
        self.texts.extend(kwargs["text"])
        return self._processor(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._processor, name)


@pytest.fixture(scope="module")
def vizes():
    """One tiny in-memory model and processor per family (no preset yet)."""
    built = {}

    def get(family):
        if family not in built:
            built[family] = (tiny_model(family, text=CONTEXT), build_processor(family))
        model, processor = built[family]
        return Visualizer(model, RecordingProcessor(processor), model_name=f"tiny-{family}")

    return get


def _processor_text(viz, image, instruction=INSTRUCTION, **options):
    """The text the processor was given for a forced answer, without the answer, and the result."""
    res = viz.analyze(image, instruction, response="(1,2)", maps=["focus"], edge_layers=-1, **options)
    text = viz.processor.texts[-1]
    assert text.endswith("(1,2)")
    return text[: -len("(1,2)")], res


def _expected(preset, family, size):
    """The chat text the preset describes, built from its fields by hand (not by lav's prompt code)."""

    def put(text):
        return (
            text.replace("{instruction}", INSTRUCTION)
            .replace("{width}", str(size[0]))
            .replace("{height}", str(size[1]))
        )

    user = put(preset.template or "{instruction}")
    user = user.replace("{image}", IMAGE) if "{image}" in user else IMAGE + user
    system = put(preset.system) if preset.system else TEMPLATE_DEFAULT_SYSTEM.get(family)
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return f"{head}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("name", [p.name for p in _runnable()])
def test_each_preset_gives_the_prompt_and_resize_it_describes(name, vizes, screenshot):
    preset = get_preset(name)
    family = preset.families[0]
    viz = vizes(family)
    apply_preset(viz, preset)
    text, res = _processor_text(viz, screenshot)
    h, w = res.grid["h"], res.grid["w"]
    patch = viz.parts.patch
    size = (w * patch, h * patch)
    assert text == _expected(preset, family, size)
    # The resize: transformers' own smart_resize with the preset's bounds, else the processor's own.
    low, high = preset.image_pixels or (
        viz.processor.image_processor.size["shortest_edge"],
        viz.processor.image_processor.size["longest_edge"],
    )
    want = hf_smart_resize(screenshot.height, screenshot.width, patch * viz.parts.merge, low, high)
    assert (h * patch, w * patch) == want
    for sentinel in preset.refusal_sentinels:
        assert sentinel in viz.answer_rules.refusal_sentinels


def test_prompts_read_from_the_sources_verbatim(vizes, screenshot):
    """A few prompts checked against text copied by hand from the official code (see each source)."""
    viz = vizes("qwen2_5_vl")
    apply_preset(viz, get_preset("ui-tars-1.5"))
    text, _ = _processor_text(viz, screenshot)
    # codes/ui_tars/prompt.py COMPUTER_USE_DOUBAO, {language}=English, then the screenshot.
    assert text.startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "You are a GUI agent. You are given a task and your action history, with screenshots."
    )
    assert "- Use English in `Thought` part.\n" in text
    assert text.endswith(f"## User Instruction\n{INSTRUCTION}\n{IMAGE}<|im_end|>\n<|im_start|>assistant\n")
    apply_preset(viz, get_preset("ui-venus-ground"))
    text, _ = _processor_text(viz, screenshot)
    assert text.endswith(
        f"user\n{IMAGE}Outline the position corresponding to the instruction: {INSTRUCTION}. "
        "The output should be only [x1,y1,x2,y2].<|im_end|>\n<|im_start|>assistant\n"
    )
    viz = vizes("qwen2_vl")
    apply_preset(viz, get_preset("showui"))
    text, _ = _processor_text(viz, screenshot)
    assert text.endswith(
        "user\nBased on the screenshot of the page, I give a text description and you give its corresponding "
        "location. The coordinate represents a clickable location [x, y] for an element, which is a relative "
        f"coordinate on the screenshot, scaled from 0 to 1.{IMAGE}{INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n"
    )


def test_gta1_states_the_resized_size_the_model_sees(vizes, screenshot):
    viz = vizes("qwen2_5_vl")
    apply_preset(viz, get_preset("gta1"))
    text, res = _processor_text(viz, screenshot)
    h, w = res.grid["h"], res.grid["w"]
    assert f"The image resolution is height {h * 14} and width {w * 14}." in text
    assert "{height}" not in text and "{width}" not in text


def test_explicit_options_override_the_preset(vizes, screenshot):
    viz = vizes("qwen2_5_vl")
    apply_preset(viz, get_preset("ui-tars-1.5"))
    text, _ = _processor_text(viz, screenshot, system="Be brief.", template="Task: {instruction}")
    assert (
        text
        == f"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{IMAGE}Task: {INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n"
    )
    res = viz.analyze(screenshot, INSTRUCTION, response="(100,50)", coords="relative-1000")
    assert res.coords_convention == "relative-1000"
    res = viz.analyze(screenshot, INSTRUCTION, response="(100,50)")
    assert res.coords_convention == "absolute-resized"  # the preset's


def test_the_answer_length_is_the_presets_unless_given(vizes, screenshot, monkeypatch):
    viz = vizes("qwen2_5_vl")
    seen = []
    generate = viz.model.generate

    def spy(**kwargs):
        seen.append(kwargs["max_new_tokens"])
        return generate(**kwargs)

    monkeypatch.setattr(viz.model, "generate", spy)
    apply_preset(viz, get_preset("gta1"))
    viz.analyze(screenshot, INSTRUCTION)
    viz.analyze(screenshot, INSTRUCTION, max_new_tokens=5)
    apply_preset(viz, None)
    viz.analyze(screenshot, INSTRUCTION)
    assert seen == [32, 5, 64]


def test_a_preset_of_another_family_warns(vizes):
    viz = vizes("qwen3_vl")
    with pytest.warns(LavWarning, match="preset ui-tars-1.5 is for qwen2_5_vl"):
        apply_preset(viz, get_preset("ui-tars-1.5"))


def _rename_saved(folder, name_or_path):
    cfg = json.loads((folder / "config.json").read_text())
    cfg["_name_or_path"] = name_or_path
    (folder / "config.json").write_text(json.dumps(cfg))


def test_auto_pick_by_model_id_and_by_saved_name_or_path(tmp_path, capsys):
    by_id = tiny_checkpoint("qwen2_5_vl", tmp_path / "UI-TARS-1.5-7B-tiny")
    viz = lav.load(by_id, device="cpu")
    assert viz.preset is not None and viz.preset.name == "ui-tars-1.5"
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if line.startswith("lav: preset")] == [
        f"lav: preset ui-tars-1.5 (UI-TARS-1.5), since the model is {str(by_id)!r}; "
        "--preset NAME (preset=) picks another, --preset none runs without"
    ]
    assert viz.image_pixels == (100 * 28 * 28, 16384 * 28 * 28)
    plain = tiny_checkpoint("qwen3_vl", tmp_path / "my-finetune")
    _rename_saved(plain, "Tongyi-MAI/MAI-UI-8B")
    assert lav.load(plain, device="cpu").preset.name == "mai-ui"
    assert lav.load(plain, device="cpu", preset="none").preset is None
    assert lav.load(plain, device="cpu", preset="qwen3-vl").preset.name == "qwen3-vl"
    other = tiny_checkpoint("qwen3_vl", tmp_path / "ui-tars-runs" / "ft")  # a parent folder names nothing
    assert lav.load(other, device="cpu").preset is None
    with pytest.raises(InputError, match="unknown preset 'ui-tars-9'"):
        lav.load(plain, device="cpu", preset="ui-tars-9")
    assert lav.load(plain, device="cpu", image_pixels=(3136, 50176)).image_pixels == (3136, 50176)


def test_opencua_is_refused_by_name_before_anything_loads(tmp_path):
    with pytest.raises(UnsupportedModelError, match="1-D RoPE"):
        lav.load("xlangai/OpenCUA-7B", device="cpu")
    # Its preset still serves a Qwen-VL fine-tune trained on its answer form.
    folder = tiny_checkpoint("qwen2_5_vl", tmp_path / "cua-style-ft")
    assert lav.load(folder, device="cpu", preset="opencua").answer_rules.refusal_sentinels[0] == (-1.0, -1.0)


def test_transformers_version_is_one_we_run_on():
    assert int(transformers.__version__.split(".")[0]) in (4, 5)
