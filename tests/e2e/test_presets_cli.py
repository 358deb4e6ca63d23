"""`--preset`, `--pixels`, `lav presets` and `lav conventions` from the command line, on saved checkpoints."""

from __future__ import annotations

import json
import shutil

from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

from lav.cli import main
from lav.demo import assets
from lav.presets import presets

from .conftest import SIZE

REASONING = "Thought: the Save button is the red one near (90, 20).\nAction: click(start_box='(233,70)')"


def run_cli(*args):
    return main([str(a) for a in args])


def test_run_with_a_preset_uses_its_resize_and_convention(checkpoints, screenshot, tmp_path, capsys):
    out = tmp_path / "out"
    model = checkpoints["qwen2_5_vl"]["model"]
    code = run_cli(
        "run", "--model", model, "--image", screenshot, "--instruction", "Click Save", "--response", REASONING,
        "--preset", "ui-tars-1.5", "--device", "cpu", "--out", out,
    )  # fmt: skip
    assert code == 0
    res = json.loads((out / "result.json").read_text())
    assert res["coords_convention"] == "absolute-resized"
    # UI-TARS-1.5's bounds (100*28*28 .. 16384*28*28) upscale the 300x200 screenshot, by transformers' rule.
    h, w = hf_smart_resize(SIZE[1], SIZE[0], 28, 100 * 28 * 28, 16384 * 28 * 28)
    assert (res["grid"]["h"] * 14, res["grid"]["w"] * 14) == (h, w)
    assert res["click"] is not None and res["click"]["convention"] == "absolute-resized"
    # The final answer decides (issue 21): the Action's click, not the point named in the Thought, and
    # the focus is built on the Action's digits.
    assert res["click"]["raw"] == [233, 70]
    start, end = res["answer_span"]
    assert REASONING[start:end] == "click(start_box='(233,70)')"
    assert len(res["focus_rows"]) == 5 and min(res["focus_rows"]) > 0  # the five digits of 233 and 70


def test_run_options_override_the_preset(checkpoints, screenshot, tmp_path):
    out = tmp_path / "out"
    model = checkpoints["qwen2_5_vl"]["model"]
    code = run_cli(
        "run", "--model", model, "--image", screenshot, "--instruction", "Click Save", "--response", "(500,500)",
        "--preset", "ui-tars-1.5", "--coords", "relative-1000", "--pixels", "3136:50176", "--device", "cpu",
        "--out", out,
    )  # fmt: skip
    assert code == 0
    res = json.loads((out / "result.json").read_text())
    assert res["coords_convention"] == "relative-1000"
    h, w = hf_smart_resize(SIZE[1], SIZE[0], 28, 3136, 50176)
    assert (res["grid"]["h"] * 14, res["grid"]["w"] * 14) == (h, w)


def test_auto_pick_is_said_on_stderr_and_none_turns_it_off(checkpoints, screenshot, tmp_path, capsys):
    folder = tmp_path / "UI-Venus-Ground-7B"
    shutil.copytree(checkpoints["qwen2_5_vl"]["model"], folder)
    args = [
        "run",
        "--model",
        folder,
        "--image",
        screenshot,
        "--instruction",
        "Click Save",
        "--response",
        "[1,2,3,4]",
    ]
    assert run_cli(*args, "--device", "cpu", "--out", tmp_path / "a") == 0
    err = capsys.readouterr().err
    assert (
        sum("lav: preset ui-venus-ground (UI-Venus-Ground (1.0))" in line for line in err.splitlines()) == 1
    )
    res = json.loads((tmp_path / "a" / "result.json").read_text())
    h, w = hf_smart_resize(SIZE[1], SIZE[0], 28, 2000000, 4800000)
    assert (res["grid"]["h"] * 14, res["grid"]["w"] * 14) == (h, w)
    assert run_cli(*args, "--preset", "none", "--device", "cpu", "--out", tmp_path / "b") == 0
    assert "lav: preset" not in capsys.readouterr().err


def test_unknown_preset_and_bad_pixels_are_one_line_and_exit_2(checkpoints, screenshot, tmp_path, capsys):
    model = checkpoints["qwen2_5_vl"]["model"]
    base = [
        "run",
        "--model",
        model,
        "--image",
        screenshot,
        "--instruction",
        "Click Save",
        "--out",
        tmp_path / "o",
    ]
    assert run_cli(*base, "--preset", "ui-tars-9", "--device", "cpu") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "unknown preset 'ui-tars-9'" in err[-1] and "ui-tars-1.5" in err[-1]
    assert run_cli(*base, "--pixels", "500:100") == 2
    assert "MIN:MAX" in capsys.readouterr().err


def test_opencua_is_refused_with_its_reason(screenshot, tmp_path, capsys):
    args = ["run", "--model", "xlangai/OpenCUA-7B", "--image", screenshot, "--instruction", "Click Save"]
    assert run_cli(*args, "--device", "cpu", "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "1-D RoPE" in err and "--preset opencua" in err and "Traceback" not in err


def test_presets_lists_every_preset_with_family_convention_and_source(capsys):
    assert run_cli("presets") == 0
    lines = capsys.readouterr().out.splitlines()
    for p in presets().values():
        row = next(line for line in lines if line.split()[0] == p.name)
        assert p.families[0] in row and p.coords in row and p.source[0] in row
    assert run_cli("presets", "infigui-g1") == 0
    shown = capsys.readouterr().out
    assert "max_new_tokens: 1024" in shown and "point_2d" in shown


def test_conventions_on_demo_data_says_the_demo_model_answers_on_0_1000(tmp_path, capsys):
    """The demo model (Qwen3-VL family, trained on 0-1000 answers: lav/demo/TRAINING.md) on a real
    `lav demo-data` benchmark."""
    data = tmp_path / "data"
    assert run_cli("demo-data", "--out", data, "-n", "8", "--seed", "1") == 0
    capsys.readouterr()
    code = run_cli(
        "conventions", "--model", assets.BASE, "--adapter", assets.ADAPTER, "--data", data, "--limit", "4",
        "--device", "cpu",
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    fits = [line for line in out if line.startswith("fits: ")]
    assert len(fits) == 1 and fits[0].startswith("fits: relative-1000 with pixels"), out
    header = out[1]
    assert all(c in header for c in ("relative-1000", "absolute-resized", "normalized-1"))
    # One row per resize setting: the processor's own, then the Qwen3-VL presets' (GUI-Owl-1.5, MAI-UI).
    rows = [
        line for line in out if not line.startswith("fits") and ("(processor)" in line or "(preset " in line)
    ]
    assert len(rows) == 3 and "(processor)" in rows[0]


def test_eval_warns_when_another_convention_scores_clearly_higher(tmp_path, capsys):
    """The demo model answers on 0-1000; read as fractions its clicks miss, and lav eval says so."""
    data = tmp_path / "data"
    assert run_cli("demo-data", "--out", data, "-n", "4", "--seed", "1") == 0
    code = run_cli(
        "eval", "--model", assets.BASE, "--adapter", assets.ADAPTER, "--data", data, "--coords", "normalized-1",
        "--focus-layers", "-1", "--device", "cpu", "--out", tmp_path / "ev",
    )  # fmt: skip
    assert code == 0
    warned = [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("lav: warning: answers read as")
    ]
    assert len(warned) == 1 and "relative-1000" in warned[0] and "lav conventions" in warned[0]
