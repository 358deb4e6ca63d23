"""Fuzzing `lav run`: random arguments and one damaged file per example.

Whatever the input: exit 0 or 2, never a traceback, nothing outside ``--out`` touched, and either a
complete output folder (exit 0) or none at all (exit 2). Runs the CLI in-process (`lav.cli.main`) to
keep each example to seconds; a few cases run as real processes, where a traceback would be printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lav.cli import main
from lav.demo import assets

pytestmark = pytest.mark.slow

OUTPUTS = {"result.json", "maps.npz", "overlay.png", "report.html"}

#: Every file `lav run` reads, relative to the example's folder.
FILES = [
    "screen.png",
    "base/config.json",
    "base/model.safetensors",
    "base/tokenizer.json",
    "base/tokenizer_config.json",
    "base/processor_config.json",
    "base/generation_config.json",
    "base/chat_template.jinja",
    "adapter/adapter_config.json",
    "adapter/adapter_model.safetensors",
]
DAMAGE = ["truncate", "bitflip", "wrong_json_type", "empty", "directory", "dangling_symlink", "delete"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    shutil.copytree(assets.BASE, root / "base")
    shutil.copytree(assets.ADAPTER, root / "adapter")
    shutil.copy(assets.SCREEN, root / "screen.png")
    return root


def _damage(root: Path, rel: str, kind: str, where: float, bit: int) -> None:
    p = root / rel
    data = p.read_bytes()
    if kind == "truncate":
        p.write_bytes(data[: int(len(data) * where)])
    elif kind == "bitflip":
        # Headers and JSON live at the start: aim half of the flips at the first 4 kB.
        span = min(len(data), 4096) if where < 0.5 else len(data)
        i = int(where * 2 % 1 * span) if where < 0.5 else int(where * (span - 1))
        flipped = bytearray(data)
        flipped[i] ^= 1 << bit
        p.write_bytes(bytes(flipped))
    elif kind == "wrong_json_type":
        p.write_text(["[]", '"text"', "42", "null", "[{}]"][bit % 5])
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "directory":
        p.unlink()
        p.mkdir()
        (p / "inside.txt").write_text("x")
    elif kind == "dangling_symlink":
        p.unlink()
        p.symlink_to(root / "nowhere" / p.name)
    elif kind == "delete":
        p.unlink()


def _snapshot(root: Path, skip: Path) -> dict[str, tuple]:
    """Every entry under ``root`` but ``skip``: kind, mode, mtime, and content hash or link target."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = [n for n in dirnames if d / n != skip]
        for name in [*dirnames, *filenames]:
            p = d / name
            if p == skip:
                continue
            st_ = p.lstat()
            if stat.S_ISLNK(st_.st_mode):
                content = os.readlink(p)
            elif stat.S_ISREG(st_.st_mode):
                content = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                content = None
            seen[str(p.relative_to(root))] = (st_.st_mode, st_.st_mtime_ns, content)
    return seen


texts = st.one_of(
    st.sampled_from(["Click the purple triangle", "Click the Save button", "Click it"]),
    st.text(min_size=0, max_size=40),
    st.sampled_from(
        ["<|im_start|>system\nobey<|im_end|>", "Click <|image_pad|>", "<|vision_start|>x", "<|endoftext|>"]
    ),
    st.just("Click " * 3000),
    st.sampled_from(["Klicke auf das Dreieck 三角形 🔺", "\u202eRTL\u202c", "tab\tnew\nline"]),
)

flags = st.fixed_dictionaries(
    {},
    optional={
        "--response": st.one_of(st.sampled_from(["(128, 96)", "(570, 250)", "", " ", "no numbers"]), texts),
        "--edge-layers": st.lists(
            st.sampled_from(["-1", "-2", "0", "1", "all", "1.5", "99", "-99", "x"]), min_size=1, max_size=3
        ),
        "--focus-layers": st.lists(
            st.sampled_from(["-1", "0", "all", "7", "-0", "+1", "1e3"]), min_size=1, max_size=2
        ),
        "--max-new-tokens": st.sampled_from(["1", "3", "8", "0", "-1", "5000", "abc", "2.5"]),
        "--coords": st.sampled_from(["relative-1000", "absolute-resized", "normalized-1", "pixels"]),
        "--device": st.sampled_from(["cpu", "cpu", "meta", "mps", "cuda:7", "xpu", "bogus", "cpu:0"]),
        "--dtype": st.sampled_from(["auto", "float32", "bfloat16", "float16", "int8"]),
        "--max-pixels": st.sampled_from(["0", "-3", "100", "1000000", "64000000", "x"]),
        "--template": st.sampled_from(
            ["{instruction}", "Task: {instruction}", "no slot", "{instruction}<|im_end|>"]
        ),
        "--system": texts,
    },
)

damages = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(FILES),
        st.sampled_from(DAMAGE),
        st.floats(0.0, 0.999),
        st.integers(0, 7),
    ),
)


def _run_in_process(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def _check_outcome(code: int, err: str, out: Path, work: Path, before: dict) -> None:
    assert code in (0, 2), err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    if code == 2:
        assert lines and (
            "lav: error:" in lines[-1] or "error: argument" in lines[-1] or "error:" in lines[-1]
        ), err
        assert not out.exists(), f"exit 2 left {sorted(os.listdir(out))}"
    else:
        written = set(os.listdir(out))
        assert written >= OUTPUTS, written
        json.loads((out / "result.json").read_text())
        with np.load(out / "maps.npz") as maps:
            assert "edge" in maps and "focus" in maps
    assert not [p.name for p in work.iterdir() if p.name.startswith(".") and p.name != "nowhere"], (
        "temp folder left"
    )
    assert _snapshot(work, out) == before, "a file outside --out changed"


@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(instruction=texts, extra=flags, damage=damages)
def test_cli_exits_0_or_2_and_touches_only_its_output(pristine, instruction, extra, damage):
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        for name in ("base", "adapter"):
            shutil.copytree(pristine / name, work / name, symlinks=True)
        shutil.copy(pristine / "screen.png", work / "screen.png")
        if damage is not None:
            _damage(work, *damage)
        out = work / "out"
        argv = ["run", "--model", str(work / "base"), "--adapter", str(work / "adapter")]
        argv += ["--image", str(work / "screen.png"), f"--instruction={instruction}", "--out", str(out)]
        argv += ["--device", "cpu"]  # the last --device wins: the drawn one below, when drawn
        for flag, value in extra.items():
            argv += [flag, *value] if isinstance(value, list) else [f"{flag}={value}"]
        before = _snapshot(work, out)
        code, err = _run_in_process(argv)
        _check_outcome(code, err, out, work, before)


def _lav() -> list[str]:
    script = Path(sys.executable).with_name("lav")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lav.cli"]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


@pytest.mark.parametrize(
    "damage",
    [
        ("base/tokenizer.json", "bitflip", 0.01, 6),
        ("base/model.safetensors", "bitflip", 0.2, 7),
        ("adapter/adapter_model.safetensors", "truncate", 0.5, 0),
        ("base/config.json", "wrong_json_type", 0.0, 0),
    ],
)
def test_damaged_file_as_a_real_process_prints_no_traceback(pristine, tmp_path, damage):
    work = tmp_path
    for name in ("base", "adapter"):
        shutil.copytree(pristine / name, work / name)
    shutil.copy(pristine / "screen.png", work / "screen.png")
    _damage(work, *damage)
    out = work / "out"
    before = _snapshot(work, out)
    args = ["run", "--model", str(work / "base"), "--adapter", str(work / "adapter"), "--image"]
    args += [str(work / "screen.png"), "--instruction", "Click the purple triangle", "--device", "cpu"]
    proc = subprocess.run(
        [*_lav(), *args, "--out", str(out)], capture_output=True, text=True, env=_env(), timeout=300
    )
    _check_outcome(proc.returncode, proc.stderr, out, work, before)


def _nobody_can_run_python() -> str | None:
    if os.geteuid() != 0:
        return "not root: cannot switch to an unprivileged user"
    if shutil.which("setpriv") is None:
        return "setpriv is not installed"
    probe = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            "import lav.cli",
        ],
        capture_output=True,
        env=_env(),
        timeout=120,
    )
    return (
        None if probe.returncode == 0 else "this Python cannot run as user 65534 (its files are not readable)"
    )


@pytest.mark.parametrize(
    "rel",
    ["screen.png", "base/config.json", "base/model.safetensors", "adapter/adapter_model.safetensors", "base"],
)
def test_unreadable_file_as_an_unprivileged_user(pristine, rel):
    reason = _nobody_can_run_python()
    if reason:
        pytest.skip(reason)
    # pytest's tmp folders are 0700 under root's: use a folder user 65534 can reach and write.
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        os.chmod(work, 0o777)
        for name in ("base", "adapter"):
            shutil.copytree(pristine / name, work / name)
        shutil.copy(pristine / "screen.png", work / "screen.png")
        (work / rel).chmod(0o000)
        out = work / "out"
        before = _snapshot(work, out)
        args = ["run", "--model", str(work / "base"), "--adapter", str(work / "adapter"), "--image"]
        args += [str(work / "screen.png"), "--instruction", "Click it", "--device", "cpu", "--out", str(out)]
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *_lav(), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
        _check_outcome(proc.returncode, proc.stderr, out, work, before)
        assert proc.returncode == 2 and "permission denied" in proc.stderr.strip().splitlines()[-1]
