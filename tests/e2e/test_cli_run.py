"""`lav run` end to end on tiny checkpoints saved as real folders, against independent references."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from lav.cli import main
from lav.render import CLICK_MARKER

from .conftest import SIZE
from .reference import edge_reference, focus_reference, load_reference_model, prompt_inputs

RESPONSE = "(107, 243)"
DIGITS = [1, 2, 3, 6, 7, 8]  # answer tokens that spell 107 and 243 (one character per token)


def run_cli(*args):
    return main([str(a) for a in args])


@pytest.mark.parametrize("adapter", [False, True], ids=["bare", "lora"])
@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_maps_equal_independent_float64_and_eager_references(
    family, adapter, checkpoints, screenshot, tmp_path
):
    ck = checkpoints[family]
    out = tmp_path / "out"
    lora = ck["adapter"] if adapter else None
    code = run_cli(
        "run",
        "--model",
        ck["model"],
        *(["--adapter", lora] if adapter else []),
        "--image",
        screenshot,
        "--instruction",
        "Click the red button",
        "--response",
        RESPONSE,
        "--out",
        out,
    )
    assert code == 0
    maps = np.load(out / "maps.npz")
    processor = transformers.AutoProcessor.from_pretrained(ck["model"])
    model = load_reference_model(ck["model"], lora)
    inputs, start = prompt_inputs(processor, screenshot, "Click the red button", RESPONSE)
    depth = transformers.AutoConfig.from_pretrained(ck["model"]).vision_config.depth
    edge = edge_reference(model, inputs, [depth - 2, depth - 1])
    np.testing.assert_allclose(maps["edge"], edge, atol=1e-4)
    focus = focus_reference(ck["model"], inputs, start, DIGITS, adapter=lora)
    np.testing.assert_allclose(maps["focus"], focus, atol=1e-4)
    assert maps["edge"].dtype == np.float32 and maps["edge"].min() == 0 and maps["edge"].max() == 1
    result = json.loads((out / "result.json").read_text())
    assert result["forced_response"] is True
    assert result["focus_tokens"] == "coordinate digits"
    assert result["edge_layers"] == [depth - 2, depth - 1]


def test_click_is_converted_by_family_convention(checkpoints, screenshot, tmp_path):
    # Qwen2.5-VL answers in pixels of the resized image; Qwen3-VL on a 0-1000 scale.
    for family, expected in (
        ("qwen3_vl", (107 / 1000 * SIZE[0], 243 / 1000 * SIZE[1])),
        ("qwen2_5_vl", None),
    ):
        out = tmp_path / family
        assert (
            run_cli(
                "run",
                "--model",
                checkpoints[family]["model"],
                "--image",
                screenshot,
                "--instruction",
                "Click it",
                "--response",
                "(100, 50)" if expected is None else RESPONSE,
                "--out",
                out,
            )
            == 0
        )
        result = json.loads((out / "result.json").read_text())
        click = result["click"]
        if expected is None:
            rw, rh = result["resized_size"]
            expected = (100 * SIZE[0] / rw, 50 * SIZE[1] / rh)
            assert result["coords_convention"] == "absolute-resized"
        else:
            assert result["coords_convention"] == "relative-1000"
        assert (click["x"], click["y"]) == pytest.approx(expected)


def test_crosshair_is_drawn_at_the_click_pixel(checkpoints, screenshot, tmp_path):
    out = tmp_path / "out"
    assert (
        run_cli(
            "run",
            "--model",
            checkpoints["qwen3_vl"]["model"],
            "--image",
            screenshot,
            "--instruction",
            "Click it",
            "--response",
            "(500, 250)",
            "--out",
            out,
        )
        == 0
    )
    overlay = np.asarray(Image.open(out / "overlay.png").convert("RGB"))
    assert overlay.shape == (SIZE[1], SIZE[0], 3)
    x, y = round(0.5 * SIZE[0]), round(0.25 * SIZE[1])
    assert tuple(overlay[y, x]) == CLICK_MARKER
    far = overlay[y + 60 :, :]
    assert not (far == np.array(CLICK_MARKER)).all(axis=-1).any()


class _Panels(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        d = dict(attrs)
        if "id" in d:
            self.ids.add(d["id"])


def test_adapter_comparison_writes_base_and_difference_panels(checkpoints, screenshot, tmp_path):
    ck = checkpoints["qwen3_vl"]
    out = tmp_path / "cmp"
    assert (
        run_cli(
            "run",
            "--model",
            ck["model"],
            "--adapter",
            ck["adapter"],
            "--image",
            screenshot,
            "--instruction",
            "Click it",
            "--response",
            RESPONSE,
            "--compare-base",
            "--out",
            out,
        )
        == 0
    )
    maps = np.load(out / "maps.npz")
    for key in ("edge", "focus", "base_edge", "base_focus", "edge_diff", "focus_diff", "focus_x", "focus_y"):
        assert key in maps, key
    np.testing.assert_allclose(maps["edge_diff"], maps["edge"] - maps["base_edge"], atol=1e-7)
    # The adapter really changes the maps (its B matrices are non-zero) ...
    assert np.abs(maps["focus_diff"]).max() > 1e-3
    # ... and with it disabled the maps are exactly those of the bare model, computed independently.
    bare = tmp_path / "bare"
    assert (
        run_cli(
            "run",
            "--model",
            ck["model"],
            "--image",
            screenshot,
            "--instruction",
            "Click it",
            "--response",
            RESPONSE,
            "--out",
            bare,
        )
        == 0
    )
    bare_maps = np.load(bare / "maps.npz")
    np.testing.assert_allclose(maps["base_edge"], bare_maps["edge"], atol=1e-5)
    np.testing.assert_allclose(maps["base_focus"], bare_maps["focus"], atol=1e-5)
    parser = _Panels()
    parser.feed((out / "report.html").read_text())
    assert {"panel-base", "panel-adapter", "panel-difference"} <= parser.ids
    result = json.loads((out / "result.json").read_text())
    assert result["adapter"] == str(ck["adapter"]) and result["base"]["adapter_enabled"] is False
    for name in ("overlay.png", "overlay_base.png", "overlay_diff.png"):
        assert Image.open(out / name).size == SIZE


def test_zero_b_adapter_gives_exactly_the_base_maps(checkpoints, screenshot, tmp_path):
    ck = checkpoints["qwen3_vl"]
    out = tmp_path / "zero"
    assert (
        run_cli(
            "run",
            "--model",
            ck["model"],
            "--adapter",
            ck["zero_adapter"],
            "--image",
            screenshot,
            "--instruction",
            "Click it",
            "--response",
            RESPONSE,
            "--compare-base",
            "--out",
            out,
        )
        == 0
    )
    maps = np.load(out / "maps.npz")
    np.testing.assert_array_equal(maps["edge"], maps["base_edge"])
    np.testing.assert_array_equal(maps["focus"], maps["base_focus"])


def test_generated_answer_is_the_models_greedy_answer(checkpoints, screenshot, tmp_path):
    ck = checkpoints["qwen3_vl"]
    out = tmp_path / "gen"
    assert (
        run_cli(
            "run",
            "--model",
            ck["model"],
            "--image",
            screenshot,
            "--instruction",
            "Click it",
            "--max-new-tokens",
            "6",
            "--out",
            out,
        )
        == 0
    )
    result = json.loads((out / "result.json").read_text())
    processor = transformers.AutoProcessor.from_pretrained(ck["model"])
    model = transformers.AutoModelForImageTextToText.from_pretrained(ck["model"]).eval()
    inputs, start = prompt_inputs(processor, screenshot, "Click it", "")
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=6, do_sample=False)[0, start:]
    ends = {processor.tokenizer.eos_token_id, processor.tokenizer.pad_token_id}
    kept = []
    for t in ids.tolist():
        if t in ends:
            break
        kept.append(t)
    assert result["response"] == processor.tokenizer.decode(kept, skip_special_tokens=True)
    assert result["forced_response"] is False
    assert len(result["answer_tokens"]) == len(kept)


def test_answer_without_coordinates_keeps_a_focus_over_all_tokens(checkpoints, screenshot, tmp_path, capsys):
    out = tmp_path / "none"
    assert (
        run_cli(
            "run",
            "--model",
            checkpoints["qwen3_vl"]["model"],
            "--image",
            screenshot,
            "--instruction",
            "Click it",
            "--response",
            "I cannot see it",
            "--out",
            out,
        )
        == 0
    )
    result = json.loads((out / "result.json").read_text())
    assert result["click"] is None and result["click_error"]
    assert result["focus_tokens"].startswith("all answer tokens")
    assert result["focus_rows"] == list(range(len("I cannot see it")))
    assert "click: none" in capsys.readouterr().out


def test_coordinates_outside_the_image_are_kept_and_flagged(checkpoints, screenshot, tmp_path, capsys):
    out = tmp_path / "outside"
    assert (
        run_cli(
            "run",
            "--model",
            checkpoints["qwen3_vl"]["model"],
            "--image",
            screenshot,
            "--instruction",
            "Click it",
            "--response",
            "(1500, 243)",
            "--out",
            out,
        )
        == 0
    )
    click = json.loads((out / "result.json").read_text())["click"]
    assert click["x"] == pytest.approx(1.5 * SIZE[0])
    assert click["in_range"] is False and click["inside_image"] is False and click["warning"]
    assert "warning:" in capsys.readouterr().out


def test_installed_command_reports_progress_and_outputs(checkpoints, screenshot, tmp_path):
    out = tmp_path / "proc"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lav.cli",
            "run",
            "--model",
            str(checkpoints["qwen3_vl"]["model"]),
            "--image",
            str(screenshot),
            "--instruction",
            "Click it",
            "--response",
            RESPONSE,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "lav: loading" in proc.stderr and "lav: writing" in proc.stderr
    assert str(out) in proc.stdout and "click: (" in proc.stdout
