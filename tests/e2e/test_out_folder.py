"""The output folder end to end: writers killed mid-write, and `lav run --out` on the shipped demo model.

Bad ``--out`` values get exit code 2 and one ``lav: error:`` line, no traceback, and leave every file
as it was; good ones (a symlink to a folder, the current directory, lav's own earlier output) work.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lav.cli import main
from lav.outdir import MANIFEST, write_output_folder

from ..unit.outdir_helpers import PRELUDE, assert_is_output_of, run_script, tree, write_files, writer_files

DEMO = Path(__file__).resolve().parents[2] / "src" / "lav" / "demo"
OUTPUTS = {"result.json", "maps.npz", "overlay.png", "report.html", MANIFEST}


# --- writers that die ---------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_writer_killed_mid_write_leaves_old_output_and_a_leftover_the_next_run_removes(tmp_path, sig):
    target = tmp_path / "o"
    write_output_folder(target, lambda d: write_files(d, writer_files("old")))
    code = f"""
import time
from pathlib import Path
from lav.outdir import write_output_folder
def write(tmp):
    (tmp / "maps.npz").write_bytes(b"half")
    print("writing", flush=True)
    time.sleep(60)
write_output_folder({str(target)!r}, write)
"""
    with subprocess.Popen([sys.executable, "-c", PRELUDE + code], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout.readline().strip() == "writing"
            child.send_signal(sig)
            child.wait(timeout=30)
        finally:
            child.kill()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "o"]
    assert leftovers and all(name.startswith(f".lav-tmp-o-{child.pid}-") for name in leftovers)
    assert_is_output_of(target, writer_files("old"))

    write_output_folder(target, lambda d: write_files(d, writer_files("new")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    assert_is_output_of(target, writer_files("new"))


# --- lav run --out -------------------------------------------------------------------------------
def lav_run(capsys, out) -> tuple[int, list[str]]:
    """``lav run`` of the shipped demo model; the exit code and stderr's lines."""
    code = main(
        [
            "run",
            "--model",
            str(DEMO / "weights" / "base"),
            "--adapter",
            str(DEMO / "weights" / "adapter"),
            "--image",
            str(DEMO / "data" / "screen.png"),
            "--instruction",
            "Click the purple triangle",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    return code, capsys.readouterr().err.strip().splitlines()


def assert_refused(code: int, err: list[str], *words: str) -> None:
    assert code == 2, err
    assert err and err[-1].startswith("lav: error:"), err
    assert not any("Traceback" in line for line in err), err
    assert all(w in err[-1] for w in words), err[-1]


def lav_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.slow
def test_run_refuses_a_folder_holding_the_users_result_json(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "result.json").write_text('{"mine": true}')
    before = tree(tmp_path)
    code, err = lav_run(capsys, tmp_path / "o")
    assert_refused(code, err, "result.json", "empty or new folder")
    assert not any("loading" in line for line in err), err  # refused before minutes of model work
    assert tree(tmp_path) == before


@pytest.mark.slow
def test_run_keeps_the_users_folder_named_report_html(tmp_path, capsys):
    (tmp_path / "o" / "report.html").mkdir(parents=True)
    (tmp_path / "o" / "report.html" / "thesis.tex").write_text("\\chapter{One}")
    before = tree(tmp_path)
    assert_refused(*lav_run(capsys, tmp_path / "o"), "report.html")
    assert tree(tmp_path) == before


@pytest.mark.slow
@pytest.mark.parametrize(("out", "words"), [("/proc/lav-out", ["/proc"]), ("notes.txt/out", ["notes.txt"])])
def test_run_with_an_impossible_out_is_one_line(tmp_path, capsys, monkeypatch, out, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    assert_refused(*lav_run(capsys, out), *words)
    assert lav_files(tmp_path) == {"notes.txt"}


@pytest.mark.slow
def test_run_into_a_symlinked_folder_twice_fills_it_and_keeps_the_link(tmp_path, capsys):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    for _ in range(2):  # the second run replaces lav's own output
        code, err = lav_run(capsys, tmp_path / "link")
        assert code == 0, err
        assert (tmp_path / "link").is_symlink()
        assert lav_files(tmp_path / "real") >= OUTPUTS
    assert lav_files(tmp_path) == {"link", "real"}  # no .link.old-PID, no temporary folder


@pytest.mark.slow
def test_run_into_the_empty_current_directory(tmp_path, capsys, monkeypatch):
    here = tmp_path / "empty"
    here.mkdir()
    monkeypatch.chdir(here)
    code, err = lav_run(capsys, ".")
    assert code == 0, err
    assert lav_files(here) >= OUTPUTS
    assert not any(name.startswith(".lav-tmp") for name in lav_files(here) | lav_files(tmp_path))


@pytest.mark.slow
def test_run_onto_a_read_only_disk_is_one_line(tmp_path):
    # As root, permission bits stop nothing; a read-only tmpfs in a private mount namespace does.
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("cannot make a private mount namespace (unshare -m) to mount a read-only tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    code = f"""
import sys
from lav.cli import main
sys.exit(main(["run", "--model", {str(DEMO / "weights" / "base")!r}, "--image",
    {str(DEMO / "data" / "screen.png")!r}, "--instruction", "Click the purple triangle",
    "--device", "cpu", "--out", {str(mnt / "o")!r}]))
"""
    res = run_script(code, mount_tmpfs=str(mnt), ro=True, bare=False)
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr[-2000:]
    assert err[-1].startswith("lav: error:") and "Read-only file system" in err[-1], err[-1]
    assert "Traceback" not in res.stderr
