"""The demo model by name (``--model demo`` / ``--adapter demo`` in every command, no network), and
``lav demo --instruction`` judged against the box of the instruction's own target on the bundled screen."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lav.cli import main
from lav.demo import assets
from lav.demo.screens import COLOURS

README = Path(__file__).resolve().parents[2] / "README.md"


def _box_of_colour(colour: str) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), x1/y1 exclusive, of the pixels of ``colour`` (within the screens' jitter)
    in the bundled screenshot: read from the picture, not from the code that drew it."""
    img = np.asarray(Image.open(assets.SCREEN).convert("RGB"), dtype=int)
    near = np.abs(img - np.array(COLOURS[colour])).max(axis=2) <= 20
    ys, xs = np.nonzero(near)
    assert len(xs) > 20, f"no {colour} shape on the bundled screen"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _demo(tmp_path, capsys, instruction: str) -> str:
    assert main(["demo", "--instruction", instruction, "--out", str(tmp_path / "out")]) == 0
    return capsys.readouterr().out


def _click(out: str) -> tuple[float, float]:
    m = re.search(r"click \(([\d.]+), ([\d.]+)\) px with the adapter", out)
    assert m, out
    return float(m[1]), float(m[2])


@pytest.mark.parametrize(
    "instruction, colour", [("Click the yellow triangle", "yellow"), ("Click the purple triangle", "purple")]
)
def test_demo_judges_the_click_against_the_instructions_own_target(instruction, colour, tmp_path, capsys):
    out = _demo(tmp_path, capsys, instruction)
    box = _box_of_colour(colour)
    line = [x for x in out.splitlines() if x.startswith("target box")]
    assert line == [
        f"target box {box}: the click is {'inside' if _inside(_click(out), box) else 'OUTSIDE'} it"
    ]


def _inside(click, box) -> bool:
    return box[0] <= click[0] < box[2] and box[1] <= click[1] < box[3]


def test_demo_says_when_the_instruction_names_no_target_on_the_screen(tmp_path, capsys):
    out = _demo(tmp_path, capsys, "Click the orange square")
    assert "target box" not in out
    assert 'the bundled screen has no target for "Click the orange square"' in out
    assert "yellow triangle" in out  # it lists what is there


def test_readme_demo_examples_name_targets_on_the_bundled_screen():
    text = README.read_text()
    named = re.findall(r'lav demo[^\n]*?--instruction "([^"]+)"', text)
    named += re.findall(r'`--instruction "([^"]+)"` \(another target on the bundled screen\)', text)
    assert named, "the README shows no lav demo --instruction example"
    for instruction in named:
        assert assets.boxes_for(instruction), f"README: {instruction!r} is not on the bundled screen"


def test_plan_takes_the_demo_by_name(capsys):
    assert (
        main(
            ["plan", "--model", "demo", "--adapter", "demo", "--image-size", "256", "192", "--device", "cpu"]
        )
        == 0
    )
    assert "12x16 patches" in capsys.readouterr().out  # 256x192 at patch 16: the demo's grid


class _Hub:
    """A socket on 127.0.0.1 standing in for the hub: it counts who connects (and answers nothing)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.slow
def test_model_demo_runs_quietly_without_touching_the_network(tmp_path):
    hub = _Hub()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    # Online as a user is, with the hub (and the kernels hub bitsandbytes asks) pointed at the counter.
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_ETAG_TIMEOUT="2",
        HF_HUB_DOWNLOAD_TIMEOUT="2",
    )
    args = ["run", "--model", "demo", "--adapter", "demo", "--image", str(assets.SCREEN)]
    args += ["--instruction", "Click the purple triangle", "--compare-base", "--out", str(tmp_path / "out")]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lav.cli", *args], env=env, capture_output=True, text=True, timeout=600
        )
    finally:
        hub.close()
    assert proc.returncode == 0, proc.stderr
    assert hub.connections == 0, "lav run --model demo talked to the hub"
    noise = [line for line in proc.stderr.splitlines() if not line.startswith("lav: ")]
    assert noise == [], "stderr beyond lav's own lines (a loading bar, bitsandbytes, a warning)"
    assert (tmp_path / "out" / "result.json").is_file()
