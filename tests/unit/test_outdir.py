"""`write_output_folder`: lav replaces only what it wrote, atomically, and says what went wrong in one line."""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lav import outdir
from lav.errors import LavError
from lav.outdir import MANIFEST, write_output_folder

from .outdir_helpers import assert_is_output_of, run_script, spawned_writer, tree, write_files, writer_files


# --- helpers -------------------------------------------------------------------------------------
def writer(files: dict[str, bytes]):
    return lambda tmp: write_files(tmp, files)


def no_temporaries(*folders: Path) -> None:
    for folder in folders:
        left = [p.name for p in folder.iterdir() if p.name.startswith(".lav-tmp")]
        assert left == [], f"temporary folders left in {folder}: {left}"


A = writer_files("a", size=1000)
B = {"result.json": b'{"writer": "b"}', "overlay.png": b"png of b"}


@pytest.fixture
def lav_output(tmp_path):
    target = tmp_path / "o"
    write_output_folder(target, writer(A))
    return target


# --- writing and replacing ----------------------------------------------------------------------
def test_new_folder_gets_the_files_and_a_manifest(tmp_path):
    out = write_output_folder(tmp_path / "o", writer(A))
    assert out == tmp_path / "o"
    assert_is_output_of(out, A)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_own_earlier_output_is_replaced_and_files_it_no_longer_writes_go(lav_output):
    write_output_folder(lav_output, writer(B))
    assert_is_output_of(lav_output, B)
    assert sorted(p.name for p in lav_output.parent.iterdir()) == ["o"]


def test_empty_existing_folder_is_filled(tmp_path):
    (tmp_path / "o").mkdir()
    write_output_folder(tmp_path / "o", writer(A))
    assert_is_output_of(tmp_path / "o", A)


def test_lav_file_the_user_deleted_does_not_block_a_rerun(lav_output):
    (lav_output / "maps.npz").unlink()
    write_output_folder(lav_output, writer(B))
    assert_is_output_of(lav_output, B)


def test_missing_parent_folders_are_created(tmp_path):
    out = write_output_folder(tmp_path / "runs" / "today" / "o", writer(A))
    assert_is_output_of(out, A)


# --- refusing what lav did not write --------------------------------------------------------------
def refused(target: Path, *words: str) -> str:
    before = tree(target.parent)
    with pytest.raises(LavError) as info:
        write_output_folder(target, writer(B))
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    assert tree(target.parent) == before, "a refused write changed the folder"
    return message


def test_users_own_result_json_is_refused(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "result.json").write_text('{"mine": true}')
    refused(tmp_path / "o", "result.json", MANIFEST, "give an empty or new folder")


def test_user_folder_named_like_an_output_file_is_kept(tmp_path):
    # The case of issue #12: report.html is the user's folder, thesis.tex their file.
    (tmp_path / "o" / "report.html").mkdir(parents=True)
    (tmp_path / "o" / "report.html" / "thesis.tex").write_text("\\chapter{One}")
    refused(tmp_path / "o", "report.html")


def test_user_folder_in_place_of_a_lav_file_is_kept(lav_output):
    (lav_output / "result.json").unlink()
    (lav_output / "result.json").mkdir()
    (lav_output / "result.json" / "thesis.tex").write_text("\\chapter{One}")
    refused(lav_output, "a folder result.json")


@pytest.mark.parametrize("edit", ["append", "same_size"])
def test_lav_file_the_user_edited_is_refused(lav_output, edit):
    path = lav_output / "result.json"
    data = path.read_bytes()
    # Same size, one byte changed: only the checksum can tell.
    path.write_bytes(data + b" " if edit == "append" else data[:-1] + b"!")
    refused(lav_output, "result.json", "changed")


def test_user_file_added_to_lav_output_is_refused(lav_output):
    (lav_output / "sub" / "notes.txt").write_text("mine")
    refused(lav_output, "sub/notes.txt")


def test_lav_output_without_its_manifest_is_refused(lav_output):
    (lav_output / MANIFEST).unlink()
    refused(lav_output, f"no {MANIFEST}")


def test_damaged_manifest_is_refused(lav_output):
    (lav_output / MANIFEST).write_text("{not json")
    refused(lav_output, "damaged")


@pytest.mark.parametrize("path", ["../precious.txt", "/etc/hostname", "sub/../../precious.txt", ""])
def test_manifest_naming_paths_outside_its_folder_is_refused(tmp_path, monkeypatch, path):
    # In place, lav deletes the files its manifest lists: a damaged one must not aim outside.
    (tmp_path / "precious.txt").write_text("keep")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    write_output_folder(".", writer(A))
    manifest = json.loads((here / MANIFEST).read_text())
    manifest["files"][path] = {"size": 4, "sha256": hashlib.sha256(b"keep").hexdigest()}
    (here / MANIFEST).write_text(json.dumps(manifest))
    refused(here, "outside its folder")
    assert (tmp_path / "precious.txt").read_text() == "keep"


def test_symlink_inside_is_refused_and_its_target_kept(lav_output, tmp_path):
    (tmp_path / "precious.txt").write_text("keep")
    (lav_output / "link").symlink_to(tmp_path / "precious.txt")
    refused(lav_output, "link", "not a plain file")


def test_target_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "o").write_text("a file of the user")
    refused(tmp_path / "o", "is a file")


def test_user_file_saved_while_lav_writes_is_kept(lav_output):
    # After the first check and before the move: the check under the lock must see it.
    def write(tmp):
        write_files(tmp, B)
        (lav_output / "late.txt").write_text("saved meanwhile")

    with pytest.raises(LavError, match="late.txt"):
        write_output_folder(lav_output, write)
    assert (lav_output / "late.txt").read_text() == "saved meanwhile"
    (lav_output / "late.txt").unlink()
    assert_is_output_of(lav_output, A)
    no_temporaries(lav_output.parent)


# --- failures while writing -----------------------------------------------------------------------
def test_writer_that_raises_leaves_the_old_output_and_no_temporary(lav_output):
    def write(tmp):
        write_files(tmp, {"result.json": b"half"})
        raise ValueError("renderer bug")

    with pytest.raises(ValueError, match="renderer bug"):
        write_output_folder(lav_output, write)
    assert_is_output_of(lav_output, A)
    no_temporaries(lav_output.parent)


def test_disk_full_while_writing_is_one_line_and_old_output_stays(lav_output):
    def write(tmp):
        write_files(tmp, {"result.json": b"half"})
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(LavError, match="disk is full") as info:
        write_output_folder(lav_output, write)
    assert str(lav_output) in str(info.value)
    assert_is_output_of(lav_output, A)
    no_temporaries(lav_output.parent)


def test_writer_may_not_use_the_manifest_name(tmp_path):
    with pytest.raises(RuntimeError, match="reserved"):
        write_output_folder(tmp_path / "o", writer({MANIFEST: b"{}"}))
    assert list(tmp_path.iterdir()) == []


def _needs_private_mount():
    probe = (
        subprocess.run(["unshare", "-m", "true"], capture_output=True) if shutil.which("unshare") else None
    )
    if probe is None or probe.returncode != 0:
        pytest.skip("cannot make a private mount namespace (unshare -m) to mount a small tmpfs")


def test_real_disk_full_mid_write_keeps_old_output(tmp_path):
    _needs_private_mount()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    code = f"""
from pathlib import Path
from lav.errors import LavError
from lav.outdir import write_output_folder
t = Path({str(mnt)!r}) / "o"
write_output_folder(t, lambda d: (d / "result.json").write_bytes(b"old"))
try:
    write_output_folder(t, lambda d: (d / "maps.npz").write_bytes(b"x" * 400_000))
except LavError as e:
    print("LavError:", e)
print(sorted(p.name for p in t.parent.iterdir()), sorted(p.name for p in t.iterdir()))
print((t / "result.json").read_bytes())
"""
    res = run_script(code, mount_tmpfs=str(mnt))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("LavError:") and "No space left on device" in lines[0]
    assert lines[1] == "['o'] ['.lav-manifest.json', 'result.json']"
    assert lines[2] == "b'old'"


def test_mount_point_is_filled_in_place(tmp_path):
    # A mount point cannot be renamed (EBUSY): lav writes into it file by file, twice.
    _needs_private_mount()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    code = f"""
import os
from lav.outdir import write_output_folder
for tag in (b"1", b"2"):
    write_output_folder({str(mnt)!r}, lambda d: (d / "result.json").write_bytes(tag))
print(sorted(os.listdir({str(mnt)!r})), open({str(mnt / "result.json")!r}).read())
"""
    res = run_script(code, mount_tmpfs=str(mnt))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["['.lav-manifest.json',", "'result.json']", "2"]


def test_read_only_disk_is_one_line(tmp_path):
    _needs_private_mount()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    code = f"""
from lav.errors import LavError
from lav.outdir import write_output_folder
try:
    write_output_folder({str(mnt / "o")!r}, lambda d: None)
except LavError as e:
    print(e)
"""
    res = run_script(code, mount_tmpfs=str(mnt), ro=True)
    assert res.returncode == 0, res.stderr
    assert "Read-only file system" in res.stdout and "writable disk" in res.stdout


@pytest.mark.parametrize(
    ("where", "words"),
    [
        ("/proc/lav-out", ["/proc", "No such file or directory"]),
        ("file.txt/out", ["file.txt", "a part of the path is a file"]),
        ("x" * 300, ["name is too long"]),
    ],
)
def test_impossible_places_are_one_line(tmp_path, monkeypatch, where, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("notes")
    with pytest.raises(LavError) as info:
        write_output_folder(where, writer(A))
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


@pytest.fixture
def world_readable_dir():
    """A folder uid 65534 can reach (pytest's tmp_path sits in a 0700 folder of root's)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="lav-test-outdir-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_unwritable_parent_as_an_unprivileged_user(world_readable_dir):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to uid 65534 (as a normal user, chmod alone would do)")
    parent = world_readable_dir / "shared"
    parent.mkdir(mode=0o755)
    mine = parent / "nobodys"  # a folder the user owns inside one they may not write
    mine.mkdir()
    os.chown(mine, 65534, 65534)
    code = f"""
from lav.errors import LavError
from lav.outdir import write_output_folder
try:
    write_output_folder({str(parent / "out")!r}, lambda d: None)
except LavError as e:
    print("LavError:", e)
out = write_output_folder({str(mine)!r}, lambda d: (d / "result.json").write_text("ok"))
print(sorted(p.name for p in out.iterdir()))
"""
    res = run_script(code, uid=65534)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("LavError:") and "Permission denied" in lines[0] and str(parent) in lines[0]
    # A folder one may write whose parent one may not: filled in place, not renamed.
    assert lines[1] == "['.lav-manifest.json', 'result.json']"
    assert sorted(p.name for p in parent.iterdir()) == ["nobodys"]


# --- permissions ---------------------------------------------------------------------------------
@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o077])
def test_new_folders_get_the_mode_mkdir_gives_under_the_umask(tmp_path, umask, mask):
    umask(mask)
    out = write_output_folder(tmp_path / "new" / "o", writer(A))
    for folder in (out, out.parent):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o777 & ~mask


@pytest.mark.parametrize("mode", [0o775, 0o700, 0o750])
def test_replacing_keeps_the_folders_mode(tmp_path, umask, mode):
    umask(0o022)
    target = tmp_path / "o"
    write_output_folder(target, writer(A))
    target.chmod(mode)
    write_output_folder(target, writer(B))
    assert stat.S_IMODE(os.stat(target).st_mode) == mode
    (tmp_path / "empty").mkdir(mode=0o777)
    (tmp_path / "empty").chmod(mode)
    write_output_folder(tmp_path / "empty", writer(B))
    assert stat.S_IMODE(os.stat(tmp_path / "empty").st_mode) == mode


# --- symlinks and the current directory -----------------------------------------------------------
def test_symlink_to_a_folder_fills_that_folder_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    link = tmp_path / "link"
    link.symlink_to("real")
    for files in (A, B):
        out = write_output_folder(link, writer(files))
        assert out == tmp_path / "real"
        assert link.is_symlink() and os.readlink(link) == "real"
        assert_is_output_of(tmp_path / "real", files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_dangling_symlink_is_refused_and_kept(tmp_path):
    (tmp_path / "link").symlink_to("nowhere")
    message = refused(tmp_path / "link", "symbolic link", "nowhere")
    assert "does not exist" in message


def test_symlink_to_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "link").symlink_to("notes.txt")
    refused(tmp_path / "link", "is a file")


def test_current_directory_is_filled_in_place(tmp_path, monkeypatch):
    here = tmp_path / "empty"
    here.mkdir()
    monkeypatch.chdir(here)
    inode = os.stat(".").st_ino
    for files in (A, B):
        out = write_output_folder(".", writer(files))
        assert out == here
        # Still the same folder: the shell's current directory was not renamed away.
        assert os.stat(".").st_ino == inode and os.stat(here).st_ino == inode
        assert_is_output_of(here, files)
        no_temporaries(here, tmp_path)


def test_current_directory_with_user_files_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "thesis.tex").write_text("mine")
    refused(Path("."), "thesis.tex")


def test_in_place_write_cut_half_way_is_still_recognised_as_lav(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_output_folder(".", writer(A))
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst).name == "overlay.png":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_replace(src, dst)

    monkeypatch.setattr(outdir.os, "replace", failing_replace)
    with pytest.raises(LavError, match="overlay.png"):
        write_output_folder(".", writer({**B, "overlay.png": b"new"}))
    monkeypatch.setattr(outdir.os, "replace", real_replace)
    write_output_folder(".", writer(B))
    assert_is_output_of(tmp_path, B)


# --- leftovers of writers that died ---------------------------------------------------------------
def dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def leftover(parent: Path, pid: int, marker: str | None = outdir.TMP_MARKER) -> Path:
    """A temporary folder as a lav writer of process ``pid`` leaves it when killed: made by lav
    (its token recorded), unfinished (``marker``) or sealed (``MANIFEST``)."""
    tmp = outdir.TempFolder(parent, "o")
    (tmp.path / "maps.npz").write_bytes(b"half")
    if marker == MANIFEST:
        tmp.seal()
    os.close(tmp._fd)  # the kernel releases a killed writer's lock
    rand = outdir.TMP_PATTERN.fullmatch(tmp.path.name)["rand"]
    folder = parent / f".lav-tmp-o-{pid}-{rand}"
    os.rename(tmp.path, folder)
    return folder


def test_leftover_of_a_dead_writer_is_removed(tmp_path):
    stale = leftover(tmp_path, dead_pid())
    sealed = leftover(tmp_path, dead_pid(), marker=MANIFEST)
    write_output_folder(tmp_path / "other", writer(A))
    assert not stale.exists() and not sealed.exists()


def test_leftover_of_a_live_writer_is_kept(tmp_path):
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        try:
            kept = leftover(tmp_path, alive.pid)
            write_output_folder(tmp_path / "o", writer(A))
            assert kept.exists()
        finally:
            alive.kill()


def test_leftover_of_another_user_is_left_to_them(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to give the leftover to uid 65534")
    stale = leftover(tmp_path, dead_pid())
    os.chown(stale, 65534, 65534)
    write_output_folder(tmp_path / "o", writer(A))
    assert stale.exists()


def test_leftover_whose_marker_is_locked_is_kept(tmp_path):
    # A dead PID but a held lock: a writer in another PID namespace, or a reused PID.
    import fcntl

    kept = leftover(tmp_path, dead_pid())
    with open(kept / outdir.TMP_MARKER) as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        write_output_folder(tmp_path / "o", writer(A))
    assert kept.exists()


@pytest.mark.parametrize(
    ("name", "marker"),
    [
        (".lav-tmp-o-{pid}-0123456789ab", False),  # lav's name, no lav marker
        (".lav-tmp-o-{pid}", True),  # marker, but not lav's exact name
        ("lav-tmp-o-{pid}-0123456789ab", True),
    ],
)
def test_lookalike_folders_without_the_marker_or_exact_name_are_kept(tmp_path, name, marker):
    folder = tmp_path / name.format(pid=dead_pid())
    folder.mkdir()
    (folder / "thesis.tex").write_text("mine")
    if marker:
        (folder / outdir.TMP_MARKER).write_text("lav")
    write_output_folder(tmp_path / "o", writer(A))
    assert (folder / "thesis.tex").read_text() == "mine"


def test_dead_in_place_leftover_inside_the_output_is_removed(tmp_path, monkeypatch):
    write_output_folder(tmp_path / "o", writer(A))
    stale = leftover(tmp_path / "o", dead_pid())
    write_output_folder(tmp_path / "o", writer(B))
    assert_is_output_of(tmp_path / "o", B)
    assert not stale.exists()


# --- several writers at once ------------------------------------------------------------------------
def consistent(target: Path, tags: list[str]) -> str:
    """The writer whose complete output ``target`` holds (fails unless it is exactly one of them)."""
    writer_tag = json.loads((target / "result.json").read_text())["writer"]
    assert writer_tag in tags
    assert_is_output_of(target, writer_files(writer_tag))
    return writer_tag


def test_threads_saving_to_one_folder_each_succeed_and_one_output_wins(tmp_path):
    target = tmp_path / "o"
    tags = [f"t{i}" for i in range(8)]
    start, errors = threading.Barrier(len(tags)), []

    def run(tag):
        start.wait()
        try:
            write_output_folder(target, writer(writer_files(tag)))
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(t,)) for t in tags]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    consistent(target, tags)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_processes_saving_to_one_folder_each_succeed_or_raise_lav_error(tmp_path):
    target, n, rounds = tmp_path / "o", 4, 3
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(n)
        with ctx.Pool(n) as pool:
            outcomes = pool.starmap(spawned_writer, [(str(target), f"p{i}", start, rounds) for i in range(n)])
    flat = [line for lines in outcomes for line in lines]
    assert all(line == "ok" or line.startswith("LavError: ") for line in flat), flat
    # Every writer replaces a folder that only lav wrote: nothing gives it a reason to refuse.
    assert flat.count("ok") == n * rounds, flat
    consistent(target, [f"p{i}-{r}" for i in range(n) for r in range(rounds)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


# --- fuzz: damaged folders ---------------------------------------------------------------------------
NAMES = [
    "result.json",
    "maps.npz",
    "overlay.png",
    "report.html",
    "sub",
    "sub/report.txt",
    "sub/x",
    ".hidden",
    MANIFEST,
    ".lav-tmp-o-1-0123456789ab",
]
OPS = st.one_of(
    st.tuples(st.just("file"), st.sampled_from(NAMES), st.binary(max_size=20)),
    st.tuples(st.just("dir"), st.sampled_from(NAMES)),
    st.tuples(
        st.just("link"),
        st.sampled_from(NAMES),
        st.sampled_from(["../outside/keep.txt", "../outside", "gone"]),
    ),
    st.tuples(st.just("edit"), st.sampled_from(NAMES)),
    st.tuples(st.just("delete"), st.sampled_from(NAMES)),
    st.tuples(st.just("chmod"), st.sampled_from(NAMES), st.sampled_from([0o000, 0o444, 0o700, 0o777])),
)


def damage(folder: Path, op: tuple) -> None:
    """Apply one user action to ``folder``; an action that does not fit the current state is skipped."""
    path = folder / op[1]
    free = path.parent.is_dir() and not path.parent.is_symlink() and not os.path.lexists(path)
    if op[0] == "file" and free:
        path.write_bytes(op[2])
    elif op[0] == "dir" and free:
        path.mkdir()
    elif op[0] == "link" and free:
        path.symlink_to(op[2])
    elif op[0] == "edit" and path.is_file() and not path.is_symlink():
        path.chmod(0o644)
        with open(path, "ab") as fh:
            fh.write(b"!")
    elif op[0] == "delete" and (path.is_symlink() or path.is_file()):
        path.unlink()
    elif op[0] == "chmod" and os.path.lexists(path) and not path.is_symlink():
        path.chmod(op[2] | (0o700 if path.is_dir() else 0))


def replaceable(folder: Path, original: dict[str, bytes] | None, manifest: bytes | None) -> bool:
    """The oracle, from what the test wrote rather than from lav's manifest: empty, or only lav's files."""
    if not os.path.lexists(folder):
        return True
    if folder.is_symlink() or not folder.is_dir():
        return False
    entries = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*")}
    if not entries:
        return True
    kept = entries.get(MANIFEST)
    if (
        original is None
        or kept is None
        or kept.is_symlink()
        or not kept.is_file()
        or kept.read_bytes() != manifest
    ):
        return False
    lav_dirs = {Path(rel).parent.as_posix() for rel in original} - {"."}
    for rel, p in entries.items():
        if rel == MANIFEST:
            continue
        if p.is_symlink():
            return False
        if p.is_dir() and rel not in lav_dirs:
            return False
        if p.is_file() and original.get(rel) != p.read_bytes():
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(
    start=st.sampled_from(["absent", "empty", "lav", "lav", "lav", "file", "dangling"]),
    # Untouched and only-harmless-actions states are drawn often enough to test replacing, too.
    ops=st.just([]) | st.lists(OPS, max_size=4),
    fail=st.sampled_from([False, False, False, True]),
)
def test_fuzz_damaged_folders_are_replaced_only_when_lav_wrote_everything(start, ops, fail):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "outside").mkdir()
        (root / "outside" / "keep.txt").write_text("not lav's")
        target = root / "o"
        original = manifest = None
        if start == "empty":
            target.mkdir()
        elif start == "lav":
            write_output_folder(target, writer(A))
            original, manifest = A, (target / MANIFEST).read_bytes()
        elif start == "file":
            target.write_text("a file")
        elif start == "dangling":
            target.symlink_to("gone")
        if start in ("empty", "lav"):
            for op in ops:
                damage(target, op)
        expect_ok = replaceable(target, original, manifest) and not fail
        event(f"start={start} replaceable={expect_ok}")
        before = tree(root)
        mode_before = stat.S_IMODE(os.stat(target).st_mode) if target.is_dir() else None

        def write(tmp_dir):
            write_files(tmp_dir, B)
            if fail:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        if expect_ok:
            write_output_folder(target, write)
            after = tree(root)
            outside = {k: v for k, v in before.items() if k != "o" and not k.startswith("o/")}
            assert {k: v for k, v in after.items() if k != "o" and not k.startswith("o/")} == outside
            assert_is_output_of(target, B)
            umask = os.umask(0)
            os.umask(umask)
            expected_mode = mode_before if mode_before is not None else 0o777 & ~umask
            assert stat.S_IMODE(os.stat(target).st_mode) == expected_mode
        else:
            with pytest.raises(LavError) as info:
                write_output_folder(target, write)
            assert "\n" not in str(info.value)
            assert tree(root) == before, "a refused or failed write changed something"
        no_temporaries(root)


# --- only folders lav can prove it made are removed (issue 27) -------------------------------------
@pytest.mark.parametrize("manifest", [None, "{}", "forged"])
def test_user_folder_named_like_a_dead_writers_leftover_is_kept(tmp_path, manifest):
    # Named exactly as lav names its temporary folders, with a dead PID: a name pattern is no proof.
    folder = tmp_path / f".lav-tmp-new-{dead_pid()}-0123456789ab"
    folder.mkdir()
    (folder / "thesis.tex").write_text("mine")
    if manifest == "{}":
        (folder / MANIFEST).write_text("{}")
    elif manifest == "forged":
        files = {"thesis.tex": {"size": 4, "sha256": hashlib.sha256(b"mine").hexdigest()}}
        forged = {"format": "lav-output", "version": 1, "files": files, "dirs": [], "tmp_token": "0" * 32}
        (folder / MANIFEST).write_text(json.dumps(forged))
    write_output_folder(tmp_path / "new", writer(A))
    assert (folder / "thesis.tex").read_text() == "mine"


def test_leftover_marker_with_a_token_that_does_not_match_its_name_is_kept(tmp_path):
    stale = leftover(tmp_path, dead_pid())
    (stale / outdir.TMP_MARKER).write_text(f"lav temporary output folder\ntoken {'1' * 32}\n")
    write_output_folder(tmp_path / "other", writer(A))
    assert stale.exists()
