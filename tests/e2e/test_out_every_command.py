"""One output-folder policy for every command (issue 27): a bad ``--out`` is refused the same way by
`lav run`, `demo`, `eval`, `evolve` and `demo-data` — exit 2, one line, before any model loads,
nothing changed — and folders holding files lav did not write are refused before any work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lav.cli import main
from lav.demo import assets


def tree(root: Path) -> dict[str, object]:
    """Everything under ``root``: relative path -> content (a named pipe as "fifo": reading it blocks)."""
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_fifo():
            out[rel] = "fifo"
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = p.read_bytes()
    return out


COMMANDS = {
    "run": ["run", "--model", "m", "--image", "x.png", "--instruction", "Click it"],
    "demo": ["demo"],
    "eval": ["eval", "--model", "m", "--data", "d.jsonl"],
    "evolve": ["evolve", "--model", "m", "--adapters", "a", "--data", "d.jsonl"],
    "demo-data": ["demo-data", "-n", "2"],
}


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a model starts loading: --out is checked first."""
    import lav.loading

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(lav.loading, "load", refuse)


def _bad_out(tmp_path: Path, kind: str) -> tuple[str, str]:
    """A bad --out of ``kind`` under ``tmp_path`` and a word the one line must hold."""
    if kind == "too long":
        return str(tmp_path / ("a" * 300)), "too long"
    if kind == "dangling link":
        os.symlink(tmp_path / "nowhere", tmp_path / "link")
        return str(tmp_path / "link"), "does not exist"
    if kind == "a file":
        (tmp_path / "file").write_text("mine")
        return str(tmp_path / "file"), "is a file"
    if kind == "under a file":
        (tmp_path / "file").write_text("mine")
        return str(tmp_path / "file" / "out"), "under"
    if kind == "a fifo":
        os.mkfifo(tmp_path / "fifo")
        return str(tmp_path / "fifo"), "pipe"
    if kind == "/proc":
        return "/proc/lav-out", "/proc"
    if kind == "unwritable":
        return "/sys/lav-out", "may not write"
    raise AssertionError(kind)


KINDS = ["too long", "dangling link", "a file", "under a file", "a fifo", "/proc", "unwritable"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_bad_out_is_one_line_before_any_work_for_every_command(
    command, kind, tmp_path, monkeypatch, capsys, no_model_load
):
    monkeypatch.chdir(tmp_path)
    out, words = _bad_out(tmp_path, kind)
    before = tree(tmp_path)
    code = main([*COMMANDS[command], "--out", out])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("lav: error:") and words in err[0], err
    assert tree(tmp_path) == before


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_folder_with_the_users_files_is_refused_before_any_work(
    command, tmp_path, monkeypatch, capsys, no_model_load
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    for name in ("report.html", "evolution.json", "evolution.csv", "summary.json"):
        (out / name).write_text("my own")
    before = tree(tmp_path)
    code = main([*COMMANDS[command], "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "evolution.csv" in err[0], err
    assert tree(tmp_path) == before


# --- messages that say what is wrong and what to do -----------------------------------------------
def test_a_model_path_under_an_existing_folder_says_the_folder_does_not_exist(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    code = main(["plan", "--model", "models/nope", "--image-size", "100", "100"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "models/nope does not exist" in err[0] and "hub" not in err[0].split(";")[0]


def test_flash_attention_where_it_cannot_run_points_to_sdpa(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine may have flash-attn")
    args = ["run", "--model", str(assets.BASE), "--image", str(assets.SCREEN), "--instruction", "Click it"]
    code = main(
        [*args, "--out", str(tmp_path / "o"), "--device", "cpu", "--attn-implementation", "flash_attention_2"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "sdpa" in err[-1] and "CUDA GPU" in err[-1]


def test_eval_with_images_from_the_wrong_folder_stops_naming_the_first_missing(
    tmp_path, capsys, no_model_load
):
    assert main(["demo-data", "--out", str(tmp_path / "data"), "-n", "3"]) == 0
    (tmp_path / "elsewhere").mkdir()
    code = main(
        ["eval", "--model", "m", "--data", str(tmp_path / "data"), "--images", str(tmp_path / "elsewhere")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "all 3 images" in err[0] and str(tmp_path / "elsewhere") in err[0] and "--images" in err[0]


@pytest.mark.parametrize("kind", ["too long", "dangling link", "a file", "a fifo"])
def test_a_bad_results_folder_for_serve_is_one_line(kind, tmp_path, capsys):
    path, _ = _bad_out(tmp_path, kind)
    code = main(["serve", "--results", path, "--port", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("lav: error: --results"), err


def test_eval_with_a_layer_the_model_lacks_is_one_line_not_every_sample_an_error(tmp_path, capsys):
    assert main(["demo-data", "--out", str(tmp_path / "data"), "-n", "2"]) == 0
    args = ["eval", "--model", str(assets.BASE), "--data", str(tmp_path / "data"), "--device", "cpu"]
    code = main([*args, "--edge-layers", "99", "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "99" in err[-1] and "vision blocks" in err[-1], err


def test_eval_where_every_sample_fails_exits_2_naming_the_reason(tmp_path, capsys):
    assert main(["demo-data", "--out", str(tmp_path / "data"), "-n", "2"]) == 0
    args = ["eval", "--model", str(assets.BASE), "--data", str(tmp_path / "data"), "--device", "cpu"]
    code = main([*args, "--max-pixels", "10", "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "all 2 samples failed" in err[-1] and "--max-pixels" in err[-1], err
