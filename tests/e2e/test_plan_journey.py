"""`lav plan` -> load with the plan's device map -> analyze: the printed capture estimate against the
bytes capture really held (torch's CPU allocator events, `tests/memory_probe.py`), at two sizes."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

import lav
from lav.cli import main
from lav.testing import build_processor, save_checkpoint, tiny_model

from ..memory_probe import peaks, tagged_capture

SIZES = [(640, 480), (1280, 960)]  # 1,200 and 4,800 patches of 16 px
_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # Room for the larger screenshot: 4,800 patches are 1,200 image tokens.
    model = tiny_model("qwen3_vl", text={"max_position_embeddings": 8192})
    processor = build_processor("qwen3_vl", max_pixels=SIZES[-1][0] * SIZES[-1][1])
    return save_checkpoint(model, processor, tmp_path_factory.mktemp("plan") / "model")


def _printed(out: str) -> tuple[tuple[int, int], dict[str, int]]:
    grid = re.search(r"screenshot grid: (\d+)x(\d+) patches", out)
    capture = {
        dev: round(float(v) * _UNITS[unit])
        for dev, v, unit in re.findall(r"^(\S+): weights .*, capture ([\d.]+) (B|KiB|MiB|GiB)$", out, re.M)
    }
    assert grid and capture, out
    return (int(grid[1]), int(grid[2])), capture


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_plans_capture_estimate_is_within_a_quarter_of_what_capture_held(folder, size, capsys, monkeypatch):
    assert main(["plan", "--model", str(folder), "--image-size", *map(str, size), "--device", "cpu"]) == 0
    grid, capture = _printed(capsys.readouterr().out)
    assert list(capture) == ["cpu"]  # the plan's map (auto, on this machine): everything on the CPU

    viz = lav.load(folder, device="cpu", device_map="auto")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    first = viz.analyze(image, "Click the Save button")  # checks the fused ops once, as a first run does
    assert (first.grid["h"], first.grid["w"]) == grid  # the plan sized the screenshot as the processor does
    with tagged_capture(monkeypatch), torch.inference_mode():
        held, _ = peaks(lambda: viz.analyze(image, "Click the Save button"))
    assert abs(capture["cpu"] - held) <= 0.25 * held, (capture["cpu"], held)


def test_plans_faithfulness_cache_is_what_a_forced_forward_keeps(folder, capsys):
    """The faithfulness line's key/value cache per step image against the cache a forced forward of
    that screenshot really keeps (its tensors' bytes), within a quarter (the plan assumes a prompt of
    `lav.plan.PROMPT_TOKENS` and an answer of 64 tokens)."""
    from lav.scoring import cache_of
    from lav.stages import Request, prepare

    size = SIZES[-1]
    assert main(["plan", "--model", str(folder), "--image-size", *map(str, size), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    found = re.search(
        r"^faithfulness: key/value cache ([\d.]+) (B|KiB|MiB|GiB) per step image; (\d+) images", out, re.M
    )
    assert found, out
    planned = float(found[1]) * _UNITS[found[2]]
    viz = lav.load(folder, device="cpu")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    inputs = prepare(viz, [Request(image, "Click the Save button", "(500, 500)")]).inputs
    with torch.inference_mode():
        cache = cache_of(viz.model(**inputs, use_cache=True))
    held = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    assert abs(planned - held) <= 0.25 * held, (planned, held)
    assert int(found[3]) == 20  # a tiny model's cache is far below the budget: twice the default steps
