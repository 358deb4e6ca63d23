"""``lav run --maps`` / ``--focus-heads`` / ``--head-ranking``: the opt-in maps reach every output."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

import lav
from lav.cli import main
from lav.testing import tiny_checkpoint


def test_lav_run_maps_and_focus_heads_from_a_ranking(tmp_path):
    folder = tiny_checkpoint("qwen2_vl", tmp_path / "m")
    img = tmp_path / "s.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(img)
    ranking = tmp_path / "summary.json"
    ranking.write_text(json.dumps({"heads": [{"layer": 2, "head": 3, "pointing": 0.9, "n": 10}]}))
    out = tmp_path / "out"
    args = ["run", "--model", str(folder), "--image", str(img), "--instruction", "Click OK"]
    args += ["--response", "(10, 20)", "--device", "cpu", "--out", str(out)]
    maps = "focus,focus_sink_masked,focus_relative,focus_selected"
    assert main([*args, "--maps", maps, "--focus-heads", "top-1", "--head-ranking", str(ranking)]) == 0
    data = json.loads((out / "result.json").read_text())
    assert list(data["maps"]) == maps.split(",")
    assert data["maps"]["focus_selected"]["info"]["heads"] == [[2, 3]]
    assert "masked_cells" in data["maps"]["focus_sink_masked"]["info"]
    with np.load(out / "maps.npz") as npz:
        assert {"focus_relative", "focus_generic_raw", "focus_sink_masked_cells"} <= set(npz.files)
    assert 'data-toggle="focus_relative"' in (out / "report.html").read_text()
    assert lav.Result.load(out).maps["focus_relative"].info["generic"]


def test_lav_run_refuses_an_unknown_map_and_top_k_without_a_ranking(tmp_path, capsys):
    folder = tiny_checkpoint("qwen2_vl", tmp_path / "m")
    img = tmp_path / "s.png"
    Image.new("RGB", (64, 64)).save(img)
    args = [
        "run",
        "--model",
        str(folder),
        "--image",
        str(img),
        "--instruction",
        "Click OK",
        "--device",
        "cpu",
    ]
    assert main([*args, "--out", str(tmp_path / "a"), "--focus-heads", "top-2"]) == 2
    assert "needs --head-ranking" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "b"), "--maps", "focus,nope"]) == 2
    assert "unknown map method 'nope'" in capsys.readouterr().err


def test_an_unknown_map_name_is_refused_before_any_model_loads(tmp_path, capsys):
    img = tmp_path / "s.png"
    Image.new("RGB", (64, 48), "white").save(img)
    missing = tmp_path / "no-such-model"  # loading it would fail with another message
    for command in (
        ["run", "--image", str(img), "--instruction", "Click OK", "--out", str(tmp_path / "o")],
        ["eval", "--data", str(tmp_path / "no-data.json"), "--out", str(tmp_path / "e")],
    ):
        assert main([*command, "--model", str(missing), "--maps", "focus,nope"]) == 2
        err = capsys.readouterr().err
        assert "unknown map method 'nope'" in err and "no-such-model" not in err, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "e").exists()
