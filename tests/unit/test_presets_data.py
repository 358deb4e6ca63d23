"""The shipped presets as data: complete, sourced, consistent, and picked by the model ids they name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import lav.presets as presets_module
from lav.coords.rules import AnswerRules
from lav.errors import InputError, LavError
from lav.presets import PLACEHOLDERS, get_preset, pick, presets

#: Every convention a preset may name: today's three and those the answer-parser issue adds (#21).
KNOWN_CONVENTIONS = (
    "relative-1000",
    "absolute-resized",
    "normalized-1",
    "absolute-original",
    "relative-999",
    "relative-100",
    "relative-1000-yx",
)
#: The model families lav supports (lav.models), by their spec names.
FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe", "qwen4_exp")
#: What issue #21 asks to ship, at least.
REQUIRED = (
    "qwen2-vl", "qwen2.5-vl", "qwen2.5-vl-computer-use", "qwen3-vl", "qwen3-vl-computer-use", "ui-tars",
    "ui-tars-1.5", "os-atlas", "showui", "aguvis", "gta1", "ui-venus-ground", "ui-venus-1.5", "holo1.5",
    "gui-owl-1.5", "infigui-g1", "mai-ui", "opencua",
)  # fmt: skip


def test_every_required_preset_ships_with_a_source():
    assert set(REQUIRED) <= set(presets())
    for p in presets().values():
        assert p.source and all(s.startswith("https://") for s in p.source), p.name
        assert set(p.families) <= set(FAMILIES), p.name
        assert p.coords in KNOWN_CONVENTIONS, p.name
        assert 1 <= p.max_new_tokens <= 4096


def test_templates_use_only_known_placeholders_and_no_special_tokens():
    for p in presets().values():
        for text in (p.system, p.template):
            if text is None:
                continue
            assert set(re.findall(r"\{[a-z_]+\}", text)) <= set(PLACEHOLDERS), p.name
            assert not re.search(r"<\|[^<>|\s]{1,40}\|>", text), p.name  # would become prompt structure
        assert p.template is None or p.template.count("{image}") <= 1


def test_reasoning_models_get_room_to_reason():
    for p in presets().values():
        if any(mark in p.answer_form for mark in ("<think>", "Thought:", "grounding_think")):
            assert p.max_new_tokens >= 512, p.name


def test_match_substrings_are_unique_and_pick_the_real_model_ids():
    seen: dict[str, str] = {}
    for p in presets().values():
        for m in p.match:
            assert m not in seen, f"{m!r} picks both {seen[m]} and {p.name}"
            seen[m] = p.name
    ids = {
        "Qwen/Qwen2-VL-7B-Instruct": "qwen2-vl",
        "Qwen/Qwen2.5-VL-7B-Instruct": "qwen2.5-vl",
        "Qwen/Qwen3-VL-8B-Instruct": "qwen3-vl",
        "Qwen/Qwen3-VL-30B-A3B-Instruct": "qwen3-vl",
        "bytedance-research/UI-TARS-7B-DPO": "ui-tars",
        "ByteDance-Seed/UI-TARS-1.5-7B": "ui-tars-1.5",
        "OS-Copilot/OS-Atlas-Base-7B": "os-atlas",
        "showlab/ShowUI-2B": "showui",
        "xlangai/Aguvis-7B-720P": "aguvis",
        "HelloKKMe/GTA1-7B": "gta1",
        "inclusionAI/UI-Venus-Ground-7B": "ui-venus-ground",
        "inclusionAI/UI-Venus-1.5-8B": "ui-venus-1.5",
        "Hcompany/Holo1.5-7B": "holo1.5",
        "InfiX-ai/InfiGUI-G1-7B": "infigui-g1",
        "Tongyi-MAI/MAI-UI-8B": "mai-ui",
        "xlangai/OpenCUA-7B": "opencua",
        "/data/runs/UI-TARS-1.5-7B-lora-merged": "ui-tars-1.5",
    }
    for model_id, name in ids.items():
        found = pick(model_id)
        assert found is not None and found[0].name == name, model_id
    assert pick("/home/me/ui-tars-runs/checkpoint-500") is None  # only the last path component counts
    assert pick(None, "", "my-model") is None


def test_rules_keep_the_defaults_and_add_the_models_own():
    rules = get_preset("ui-venus-ground").rules()
    assert (-1.0, -1.0, -1.0, -1.0) in rules.refusal_sentinels
    assert set(AnswerRules().refusal_phrases) <= set(rules.refusal_phrases)
    assert '"status": "failure"' in get_preset("gui-owl-1.5").rules().refusal_phrases


def test_unknown_name_lists_the_presets():
    with pytest.raises(InputError, match="unknown preset 'nope'.*ui-tars-1.5"):
        get_preset("nope")


def test_a_malformed_preset_file_is_refused_with_its_name(tmp_path, monkeypatch):
    good = json.loads((Path(presets_module.__file__).parent / "gta1.json").read_text())
    bad = dict(good, extra=1)
    with pytest.raises(LavError, match="unknown fields \\['extra'\\]"):
        presets_module._from_json(bad, "gta1.json")
    with pytest.raises(LavError, match="give both min_pixels and max_pixels"):
        presets_module._from_json(dict(good, min_pixels=3136), "gta1.json")
    with pytest.raises(LavError, match="no \\{instruction\\}"):
        presets_module._from_json(dict(good, template="{image}"), "gta1.json")
