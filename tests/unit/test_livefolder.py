"""`OutputFolder`: a folder a long run fills in place (lav eval, lav evolve) under `lav run`'s rule.

lav writes only files its manifest lists, refuses a user's edit or file before any work, holds a lock
naming its PID for the whole run, and a run stopped at any point leaves a folder the next run accepts.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lav import outdir
from lav.errors import LavError
from lav.livefolder import OutputFolder
from lav.outdir import MANIFEST, write_output_folder

from .outdir_helpers import PRELUDE


def _filled(folder):
    with OutputFolder(folder) as out:
        out.write_text("summary.json", '{"n": 1}\n')
        out.write_text("report.html", "<p>lav</p>")
        out.append("samples.jsonl", b'{"id": "a"}\n')
        out.write_bytes("thumbs/a.png", b"png")
    return folder


def _killed(folder, patch: str, action: str) -> None:
    """Run ``action`` on an `OutputFolder` of ``folder`` in a child process whose ``patch`` (code run
    first, with ``os``, ``signal``, ``Path``, ``folder`` and ``out`` defined) SIGKILLs it mid-way."""
    script = (
        PRELUDE
        + f"""
import os, signal
from pathlib import Path
from lav.livefolder import OutputFolder
folder = Path({str(folder)!r})
out = OutputFolder(folder)
"""
        + patch
        + action
    )
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == -9


_DIE_BEFORE_MOVING = """
real = os.replace
def die(src, dst):
    if str(dst).endswith({suffix!r}):
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
os.replace = die
"""


def test_own_files_are_rewritten_on_the_next_run(tmp_path):
    folder = _filled(tmp_path / "ev")
    with OutputFolder(folder) as out:
        out.write_text("report.html", "<p>again</p>")
        out.append("samples.jsonl", b'{"id": "b"}\n')
    assert (folder / "report.html").read_text() == "<p>again</p>"
    assert (folder / "samples.jsonl").read_text().splitlines() == ['{"id": "a"}', '{"id": "b"}']
    assert sorted(p.name for p in folder.iterdir()) == [
        MANIFEST,
        "report.html",
        "samples.jsonl",
        "summary.json",
        "thumbs",
    ]


@pytest.mark.parametrize("name", ["report.html", "summary.json", "thumbs/a.png"])
def test_a_file_the_user_edited_stops_the_next_run_before_any_work(tmp_path, name):
    folder = _filled(tmp_path / "ev")
    (folder / name).write_text("my notes")
    with pytest.raises(LavError, match=f"a file {name} that changed after lav wrote it"):
        OutputFolder(folder)
    assert (folder / name).read_text() == "my notes"


def test_a_users_file_beside_lavs_stops_the_run(tmp_path):
    folder = _filled(tmp_path / "ev")
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(LavError, match="notes.txt that is not in its"):
        OutputFolder(folder)


def test_an_appended_log_is_lavs_while_it_starts_with_what_lav_recorded(tmp_path):
    folder = _filled(tmp_path / "ev")
    with open(folder / "samples.jsonl", "ab") as fh:  # a run killed after appending, before recording
        fh.write(b'{"id": "z"}\n')
    OutputFolder(folder).close()
    (folder / "samples.jsonl").write_bytes(b'{"id": "X"}\n{"id": "z"}\n')  # its recorded part changed
    with pytest.raises(LavError, match="samples.jsonl that changed"):
        OutputFolder(folder)


def test_a_run_killed_before_recording_its_first_append_leaves_a_folder_the_next_run_accepts(tmp_path):
    """The first append creates the log; a kill after its bytes are on disk and before the manifest
    records their length must leave a file the manifest already claims (listed empty beforehand)."""
    folder = tmp_path / "ev"
    with OutputFolder(folder) as out:
        out.write_text("summary.json", '{"n": 0}\n')
    patch = """
log = folder / "samples.jsonl"
real = out._save_manifest
def die():
    if log.exists() and log.stat().st_size:
        os.kill(os.getpid(), signal.SIGKILL)  # the records are written, their length not recorded
    real()
out._save_manifest = die
"""
    _killed(folder, patch, """out.append("samples.jsonl", b'{"id": "a"}\\n{"id": "b"}\\n')\n""")
    assert (folder / "samples.jsonl").read_bytes().count(b"\n") == 2
    with OutputFolder(folder) as out:  # accepted: the log starts with what the manifest recorded
        out.append("samples.jsonl", b'{"id": "c"}\n')
    assert not (folder / outdir.LOCK_FILE).exists()


def test_a_nested_output_is_judged_by_its_own_manifest(tmp_path):
    folder = tmp_path / "ev"
    with OutputFolder(folder) as out:
        write_output_folder(out.nested("samples/a"), lambda tmp: (tmp / "result.json").write_text("{}"))
    OutputFolder(folder).close()
    (folder / "samples" / "a" / "result.json").write_text('{"mine": 1}')
    with pytest.raises(LavError, match="result.json that changed after lav wrote it in samples/a"):
        OutputFolder(folder)


def test_lav_run_may_not_replace_a_folder_a_run_holds(tmp_path):
    folder = _filled(tmp_path / "ev")
    with (
        OutputFolder(folder),
        pytest.raises(LavError, match=f"in use by another lav run \\(process {os.getpid()}\\)"),
    ):
        write_output_folder(folder, lambda tmp: (tmp / "x").write_text("x"))


def test_a_second_process_is_refused_with_the_first_ones_pid(tmp_path):
    folder = _filled(tmp_path / "ev")
    script = (
        PRELUDE
        + f"""
from lav.livefolder import OutputFolder
from lav.errors import LavError
try:
    OutputFolder({str(folder)!r})
except LavError as exc:
    print(exc)
"""
    )
    with OutputFolder(folder):
        said = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert f"in use by another lav run (process {os.getpid()})" in said.stdout
    OutputFolder(folder).close()  # released: the next run opens it


def test_a_run_killed_mid_write_leaves_a_folder_the_next_run_accepts(tmp_path):
    folder = _filled(tmp_path / "ev")
    # Killed after the manifest lists the new report, before the move.
    _killed(
        folder,
        _DIE_BEFORE_MOVING.format(suffix="report.html"),
        'out.write_text("report.html", "<p>new</p>")\n',
    )
    assert any(p.name.startswith(".lav-tmp-") for p in folder.iterdir())  # its temporary folder
    with OutputFolder(folder) as out:
        out.write_text("report.html", "<p>resumed</p>")
    assert not any(p.name.startswith(".lav-tmp-") for p in folder.iterdir())
    assert not (folder / outdir.LOCK_FILE).exists()


def test_a_run_killed_between_the_moves_of_a_batch_of_files_leaves_a_folder_the_next_run_accepts(tmp_path):
    folder = _filled(tmp_path / "ev")
    # Killed with b.png moved (and a.png replaced), c.png not yet.
    action = 'out.write_many({"thumbs/a.png": b"new a", "thumbs/b.png": b"b", "thumbs/c.png": b"c"})\n'
    _killed(folder, _DIE_BEFORE_MOVING.format(suffix="thumbs/c.png"), action)
    with OutputFolder(folder) as out:
        out.write_many({"thumbs/c.png": b"c", "thumbs/d.png": b"d"})
    with OutputFolder(folder) as out:  # each file is lav's, as listed before or after its move
        assert out.has("thumbs/c.png") and out.has("thumbs/d.png")
    assert [(folder / f"thumbs/{n}.png").read_bytes() for n in "abcd"] == [b"new a", b"b", b"c", b"d"]
    assert not any(p.name.startswith(".lav-tmp-") for p in folder.iterdir())
