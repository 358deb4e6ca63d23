"""Steps of the user journeys (tests/e2e/test_journey_*.py, tests/browser): each runs the real
command a user types, in process through `lav.cli.main`, so the next step reads that command's own
output and never a folder written by hand."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from lav.cli import main
from tests.deps import missing

REPO = Path(__file__).resolve().parents[2]


def lav(*args: object) -> None:
    """``lav ARGS``; the journey stops here if the command fails."""
    argv = [str(a) for a in args]
    code = main(argv)
    assert code == 0, f"lav {shlex.join(argv)} exited with {code}"


def demo_data(out: Path, n: int) -> Path:
    lav("demo-data", "--out", out, "-n", n)
    return out


def demo_eval(data: Path, out: Path, *extra: object, save_maps: bool = True) -> Path:
    """``lav eval`` of the demo model with its adapter on ``data``, base compared, maps kept."""
    lav(
        "eval", "--model", "demo", "--adapter", "demo", "--data", data, "--out", out,
        "--compare-base", "--device", "cpu", "--batch-size", 2, *extra,
        *(["--save-maps"] if save_maps else []),
    )  # fmt: skip
    return out


def demo_eval_sharded(data: Path, out: Path, parts: int = 2) -> Path:
    """The same run as `demo_eval` in ``parts`` shards (``--shard I/N``); the last one merges."""
    for i in range(parts):
        demo_eval(data, out, "--shard", f"{i}/{parts}")
    return out


def make_commands(target: str) -> list[list[str]]:
    """The ``lav`` commands (arguments after ``lav``) that ``make TARGET`` runs, read from ``make -n``."""
    if shutil.which("make") is None:
        missing("make is not installed (apt-get install make)")
    # This interpreter's venv, so the Makefile's "install first" guard holds; -n only prints the rest.
    venv = sys.prefix
    text = subprocess.run(
        ["make", "-s", "-n", "-C", str(REPO), target, f"VENV={venv}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        words = shlex.split(line)
        if words and words[0] == f"{venv}/bin/lav":
            out.append(words[1:])
    return out
