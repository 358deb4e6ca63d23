"""Helpers for the output-folder tests: snapshots of folders, and `lav.outdir` run in other processes
(spawned writers, another user, a private mount).

`import lav` pulls in torch (about 10 s per process on the test machines), and `lav.outdir` needs
none of it; a child here registers a bare `lav` package (no ``__init__`` run) and imports only
``lav.errors`` and ``lav.outdir``. Nothing in this module imports lav at import time, so spawned
children that unpickle a function from it start in well under a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import types
from pathlib import Path

MANIFEST = ".lav-manifest.json"  # lav.outdir.MANIFEST, not imported here (see above)
LAV_PACKAGE = Path(__file__).resolve().parents[2] / "src" / "lav"

#: Put at the top of a ``python -c`` script: afterwards ``from lav.outdir import ...`` is torch-free.
PRELUDE = f"""
import sys, types
_pkg = types.ModuleType("lav")
_pkg.__path__ = [{str(LAV_PACKAGE)!r}]
sys.modules.setdefault("lav", _pkg)
"""


def tree(root: Path) -> dict[str, object]:
    """Everything under ``root`` (not following links): relative path -> (kind, mode, content)."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
    return out


def assert_is_output_of(folder: Path, files: dict[str, bytes]) -> None:
    """``folder`` holds exactly ``files`` plus a manifest that lists each with its size and sha256."""
    on_disk = {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST
    }
    assert on_disk == files
    dirs = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_dir()}
    assert dirs == {
        Path(rel).parents[i].as_posix() for rel in files for i in range(len(Path(rel).parents) - 1)
    }
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["format"] == "lav-output" and manifest["version"] == 1
    assert manifest["files"] == {
        rel: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()} for rel, data in files.items()
    }
    assert "replacing" not in manifest


def bare_lav() -> None:
    """Register the bare `lav` package in this process unless the real one is already imported."""
    if "lav" not in sys.modules:
        pkg = types.ModuleType("lav")
        pkg.__path__ = [str(LAV_PACKAGE)]
        sys.modules["lav"] = pkg


def writer_files(tag: str, size: int = 200_000) -> dict[str, bytes]:
    """The files writer ``tag`` puts in its output: each names the writer, one is big enough that a
    copy or rename caught half-way would show (size in bytes)."""
    blob = hashlib.sha256(tag.encode()).digest() * (size // 32)
    return {
        "result.json": f'{{"writer": "{tag}"}}'.encode(),
        "maps.npz": tag.encode() + blob,
        "sub/report.txt": tag.encode() * 10,
    }


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


def spawned_writer(target: str, tag: str, start: object, rounds: int) -> list[str]:
    """Body of one spawned process: wait for ``start`` (a Barrier), then save ``rounds`` times.

    Returns one line per round: ``ok``, or ``LavError: ...``; any other exception escapes and fails
    the test through the pool.
    """
    bare_lav()
    from lav.errors import LavError
    from lav.outdir import write_output_folder

    outcomes = []
    start.wait()  # type: ignore[attr-defined]
    for i in range(rounds):
        files = writer_files(f"{tag}-{i}")
        try:
            write_output_folder(target, lambda tmp, files=files: write_files(tmp, files))
            outcomes.append("ok")
        except LavError as exc:
            outcomes.append(f"LavError: {exc}")
    return outcomes


def run_script(
    code: str, *, uid: int | None = None, mount_tmpfs: str | None = None, ro: bool = False, bare: bool = True
):
    """Run ``PRELUDE + code`` in a fresh interpreter; return the CompletedProcess (text output).

    ``bare``: start with the PRELUDE (torch-free ``lav.outdir``); False for a script that needs all of lav.
    ``uid``: run as that user (we are root in CI, where permission bits do not stop root).
    ``mount_tmpfs``: mount a 256 KiB tmpfs there first, in a private mount namespace (``unshare -m``)
    so nothing outside the child sees it; ``ro`` mounts it read-only.
    """
    if uid is not None:
        # The interpreter lives under /root, which another user may not read: import what the script
        # needs while still root, then drop to ``uid``.
        code = f"import lav.errors, lav.outdir, os\nos.setgid({uid})\nos.setuid({uid})\n{code}"
    argv = [sys.executable, "-c", (PRELUDE if bare else "") + code]
    if mount_tmpfs is not None:
        opts = "size=256k" + (",ro" if ro else "")
        shell = f'mount -t tmpfs -o {opts} none "$1" && shift && exec "$@"'
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", shell, "sh", mount_tmpfs, *argv]

    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
