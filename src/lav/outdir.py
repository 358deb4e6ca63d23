"""Output folders that never lose a user's file: lav replaces only what lav itself wrote.

`write_output_folder(target, write)` lets ``write(tmp)`` fill an empty temporary folder, then puts it in
place of ``target``. Rules, in the order a reader meets them in the code:

- Ownership by content, not by name: every output folder holds ``.lav-manifest.json`` (format,
  version, each file's size and sha256). A folder may be replaced only if it is empty or holds
  nothing but files of its manifest with matching checksums; anything else is refused.
- Atomic: the temporary folder sits beside ``target`` and is renamed into place, so files land
  complete or not at all. A folder that cannot be renamed (the current directory, a mount point, a
  folder whose parent is not writable) is filled file by file with `os.replace` instead.
- Crash-safe: temporary folders are named ``.lav-tmp-<name>-<pid>-<random>`` and hold a marker that
  their writer keeps `flock`-ed. The marker records a random token whose sha256 begins with
  <random>; a finished one records it in its manifest. A later call removes a leftover only when
  that proof holds and its writer is gone: a folder merely named like one (a user's, or one with a
  forged or empty manifest) is never touched.
- Long runs that fill a folder over time (`lav eval`, `lav evolve`) use `OutputFolder`
  (`lav.livefolder`): the same manifest, kept up to date file by file, and a lock naming the
  running process. It follows these rules through the public names of this module
  (`resolve_target`, `os_step`, `read_manifest`, `write_json`, `refuse_foreign`, `live_temps`,
  `remove_stale`, `TempFolder`, `refuse_if_held`): one policy, two ways of filling a folder.
- One writer at a time per parent folder (`flock` on the parent directory, so no lock file is left
  behind); processes and threads alike.
- Every `OSError` becomes one `LavError` line in `os_step`: what failed, which path, what to do.

Torch-free: the record layer (`lav.result`) calls it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import jsonsafe
from .errors import LavError

#: The file in every output folder that lists what lav wrote there.
MANIFEST = ".lav-manifest.json"
MANIFEST_FORMAT = "lav-output"
MANIFEST_VERSION = 1
#: Marker inside a temporary folder while its writer runs; the writer holds an flock on it.
TMP_MARKER = ".lav-tmp"
#: ``.lav-tmp-<name>-<pid>-<random>``; <name> is cut to 64 characters so the whole stays under
#: NAME_MAX (255) for any target name that itself fits.
TMP_PATTERN = re.compile(r"\.lav-tmp-(?P<name>.*)-(?P<pid>[0-9]+)-(?P<rand>[0-9a-f]{12})")
_TMP_NAME_CHARS = 64
# The in-place manifest listing old and new files, before it replaces the folder's manifest.
_PENDING = ".lav-pending.json"
#: The lock file of a folder a long run fills in place (`lav.livefolder`); it holds the run's PID.
LOCK_FILE = ".lav-lock"
#: How long (seconds) to wait for another writer in the same parent folder before giving up.
LOCK_TIMEOUT_S = 120.0

_ADVICE = {
    errno.EACCES: "you may not write there; give a folder you can write to",
    errno.EPERM: "you may not write there; give a folder you can write to",
    errno.EROFS: "the disk is read-only; give a folder on a writable disk",
    errno.ENOSPC: "the disk is full; free some space or give a folder on another disk",
    errno.EDQUOT: "your disk quota is used up; free some space or give a folder on another disk",
    errno.ENAMETOOLONG: "the name is too long; give a shorter path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; give a path made of folders",
    errno.ENOENT: "a folder on the path is missing or cannot hold files; give a folder on a normal disk",
    errno.ELOOP: "the path has a loop of symbolic links; give a real folder",
    errno.EISDIR: "a folder is in the way; give another output folder",
    errno.ENOTEMPTY: "another program changed the folder meanwhile; run again",
    errno.EEXIST: "another program changed the folder meanwhile; run again",
    errno.EBUSY: "the folder is in use (a mount point?); give a folder inside it",
    errno.EXDEV: "the folder moved to another disk meanwhile; run again",
}


@contextmanager
def os_step(action: str, path: str | os.PathLike) -> Iterator[None]:
    """Turn an `OSError` raised inside into one `LavError` line naming ``action``, ``path`` and the fix.

    The one place where file-system errors of an output folder are worded.
    """
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        advice = _ADVICE.get(exc.errno or 0, "check the path, or give another output folder")
        raise LavError(f"could not {action} {os.fspath(path)!s}: {reason}; {advice}") from exc


# --- the manifest ------------------------------------------------------------------------------
def _sha256(path: Path, sync: bool = False, limit: int | None = None) -> str:
    """Hex sha256 of the file at ``path`` (its first ``limit`` bytes); with ``sync``, also fsync it."""
    digest = hashlib.sha256()
    left = -1 if limit is None else limit
    with open(path, "rb") as fh:
        while left != 0:
            block = fh.read(1 << 20 if left < 0 else min(1 << 20, left))
            if not block:
                break
            digest.update(block)
            left = left - len(block) if left > 0 else left
        if sync:
            os.fsync(fh.fileno())
    return digest.hexdigest()


def _raise(exc: OSError) -> None:
    # os.walk skips folders it cannot list unless told otherwise; an unlisted folder is unchecked.
    raise exc


def _inventory(folder: Path, skip: frozenset[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Files (relative POSIX path -> size in bytes, sha256) and sub-folders that ``write`` produced.

    Only plain files and folders are an output; a symlink or a device there is a bug in the writer.
    """
    files: dict[str, dict[str, Any]] = {}
    dirs: list[str] = []
    for root, subdirs, names in os.walk(folder, onerror=_raise):
        rel_root = Path(root).relative_to(folder)
        for name in sorted(subdirs) + sorted(names):
            rel = (rel_root / name).as_posix()
            if rel in skip:
                continue
            path = Path(root) / name
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode):
                dirs.append(rel)
            elif stat.S_ISREG(mode):
                files[rel] = {"size": os.lstat(path).st_size, "sha256": _sha256(path, sync=True)}
            else:
                raise RuntimeError(f"lav wrote {rel} as something other than a file or folder in {folder}")
    return files, sorted(dirs)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``path`` and flush it to the disk; callers write only inside a temporary folder."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())


def read_manifest(folder: Path) -> dict[str, Any] | str:
    """The manifest of ``folder``, or a sentence saying why there is no usable one."""
    path = folder / MANIFEST
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return f"no {MANIFEST}"
    if not stat.S_ISREG(st.st_mode):
        return f"a {MANIFEST} that is not a plain file"
    try:
        data = jsonsafe.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return f"a damaged {MANIFEST}"
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return f"a {MANIFEST} that lav did not write"
    if data.get("version") != MANIFEST_VERSION:
        return f"a {MANIFEST} of another lav version ({data.get('version')!r}); use that version"
    for key in ("files", "replacing"):
        entries = data.get(key, {})
        if not isinstance(entries, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
            for v in entries.values()
        ):
            return f"a damaged {MANIFEST}"
    for key in ("dirs", "replacing_dirs", "outputs"):
        if not isinstance(data.get(key, []), list):
            return f"a damaged {MANIFEST}"
    # Paths lav deletes by in an in-place replacement: only plain relative ones, inside the folder.
    names = [
        *data.get("files", {}),
        *data.get("replacing", {}),
        *data.get("dirs", []),
        *data.get("replacing_dirs", []),
        *data.get("outputs", []),
    ]
    if not all(_inside(rel) for rel in names):
        return f"a {MANIFEST} that names paths outside its folder"
    return data


def _inside(rel: object) -> bool:
    """True for a relative POSIX path that stays inside its folder (no ``..``, ``.``, or empty parts)."""
    return (
        isinstance(rel, str)
        and bool(rel)
        and not rel.startswith("/")
        and "\x00" not in rel
        and all(part not in ("", ".", "..") for part in rel.split("/"))
    )


def _foreign(folder: Path, ignore: frozenset[str] = frozenset()) -> str | None:
    """What in ``folder`` lav did not write (a short phrase), or None when lav may replace it.

    Replaceable: empty, or only files listed in its manifest with their size and checksum (a listed
    file the user deleted is no loss). During an in-place replacement the manifest also lists the
    incoming files under ``replacing``, so a crash half-way leaves a folder lav still recognises.
    Top-level names in ``ignore`` (temporary folders of running writers) are not looked at.
    """
    entries = sorted(
        e
        for e in os.listdir(folder)
        if e not in ignore and not (e == LOCK_FILE and stat.S_ISREG(os.lstat(folder / e).st_mode))
    )
    if not entries:
        return None
    manifest = read_manifest(folder)
    if isinstance(manifest, str):
        if MANIFEST in entries:
            return manifest
        more = ", ..." if len(entries) > 3 else ""
        return f"{', '.join(entries[:3])}{more} but {manifest}, so lav cannot tell they are its own"
    files = {**manifest.get("files", {}), **manifest.get("replacing", {})}
    alternatives = (manifest.get("files", {}), manifest.get("replacing", {}))
    dirs = set(manifest.get("dirs", [])) | set(manifest.get("replacing_dirs", []))
    # Nested lav output folders (an evaluation's per-sample results, evolve's per-checkpoint runs):
    # each is judged by its own manifest.
    outputs = set(manifest.get("outputs", []))
    for rel in [*files, *outputs]:
        dirs.update(p.as_posix() for p in Path(rel).parents if p != Path("."))
    for root, subdirs, names in os.walk(folder, onerror=_raise):
        rel_root = Path(root).relative_to(folder)
        for name in sorted(subdirs) + sorted(names):
            rel = (rel_root / name).as_posix()
            if rel == MANIFEST or rel in ignore:
                continue
            path = Path(root) / name
            st = os.lstat(path)
            if rel == LOCK_FILE and stat.S_ISREG(st.st_mode):
                continue  # a live folder's lock (`lav.livefolder`); whether it is held is checked apart
            if stat.S_ISDIR(st.st_mode):
                if rel in outputs:
                    if held_by(path) is not None:
                        continue  # a lav run is writing it now (a parallel shard): its files move
                    problem = _foreign(path, live_temps(path))
                    if problem is not None:
                        return f"{problem} in {rel}"
                elif rel not in dirs:
                    return f"a folder {rel}"
            elif not stat.S_ISREG(st.st_mode):
                return f"{rel}, which is not a plain file"
            elif rel not in files:
                return f"a file {rel} that is not in its {MANIFEST}"
            elif not any(rel in alt and _matches(path, st, alt[rel]) for alt in alternatives):
                return f"a file {rel} that changed after lav wrote it"
        subdirs[:] = [d for d in subdirs if (rel_root / d).as_posix() not in ignore | outputs]
    return None


def _matches(path: Path, st: os.stat_result, entry: dict[str, Any]) -> bool:
    """Whether the file at ``path`` is what a manifest ``entry`` recorded.

    An append-only file (``"append": true``, an evaluation's ``samples.jsonl``) matches when it
    starts with the recorded bytes: lav appends a record, then records the new length, so a run
    stopped between the two leaves a longer file that is still lav's.
    """
    if not entry.get("append"):
        return entry["size"] == st.st_size and entry["sha256"] == _sha256(path)
    if st.st_size < entry["size"]:
        return False
    return entry["sha256"] == _sha256(path, limit=entry["size"])


def _refuse(target: Path, problem: str) -> LavError:
    return LavError(
        f"output folder {target} holds {problem}; lav replaces only an empty folder or one holding "
        f"exactly its own earlier output (listed in {MANIFEST}). Move those files away, or give an "
        "empty or new folder"
    )


# --- temporary folders -------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _token_tag(token: str) -> str:
    """The <random> part of a temporary folder's name: the start of its token's sha256."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()[:12]


def _marker_token(marker: Path) -> str | None:
    """The token a temporary folder's marker records, or None when it is not lav's marker."""
    try:
        st = os.lstat(marker)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 4096:
            return None
        text = marker.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    match = re.search(r"^token ([0-9a-f]{32})$", text, re.MULTILINE)
    return None if match is None else match[1]


def _made_by_lav(tmp: Path) -> str | None:
    """ "marker" or "sealed" when ``tmp`` is provably a temporary folder lav made, else None.

    The proof is the token: its sha256 begins with the <random> part of the name. An unfinished
    folder records it in its marker; a finished one in its manifest, and then it must hold exactly
    the files that manifest lists (so nothing the user put there goes with it).
    """
    match = TMP_PATTERN.fullmatch(tmp.name)
    if match is None:
        return None
    token = _marker_token(tmp / TMP_MARKER)
    if token is not None:
        return "marker" if _token_tag(token) == match["rand"] else None
    manifest = read_manifest(tmp)
    if isinstance(manifest, str) or not isinstance(manifest.get("tmp_token"), str):
        return None
    if _token_tag(manifest["tmp_token"]) != match["rand"] or manifest.get("replacing"):
        return None
    return "sealed" if _foreign(tmp) is None else None


def _writer_gone(tmp: Path) -> bool:
    """True when ``tmp`` is a temporary folder lav made whose process has ended (SIGKILL included).

    The PID in the name must be dead *and* nobody may hold the marker's lock: the lock, released by
    the kernel at any exit, guards against a reused PID or a writer in another PID namespace.
    """
    match = TMP_PATTERN.fullmatch(tmp.name)
    if match is None or _pid_alive(int(match["pid"])):
        return False
    kind = _made_by_lav(tmp)
    if kind != "marker":
        return kind == "sealed"
    fd = os.open(tmp / TMP_MARKER, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def remove_stale(folder: Path) -> None:
    """Remove temporary folders in ``folder`` left by lav writers of this user that died (only those).

    Another user's leftovers are theirs to remove: in a shared folder (sticky /tmp) we could not, and
    failing on them would block every save there.
    """
    with os_step("list", folder):
        names = os.listdir(folder)
    for name in names:
        tmp = folder / name
        if not TMP_PATTERN.fullmatch(name):
            continue
        st = os.lstat(tmp)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and _writer_gone(tmp):
            with os_step("remove the leftover temporary folder", tmp):
                shutil.rmtree(tmp)


class TempFolder:
    """An empty folder ``.lav-tmp-<name>-<pid>-<random>`` in ``where``, marked and locked as lav's."""

    def __init__(self, where: Path, name: str) -> None:
        self.token = secrets.token_hex(16)
        tag = _token_tag(self.token)
        self.path = where / f".lav-tmp-{name[:_TMP_NAME_CHARS]}-{os.getpid()}-{tag}"
        # mode 0o777 so the kernel applies the umask, as a plain `mkdir` does (mkdtemp forces 0700).
        os.mkdir(self.path, 0o777)
        try:
            self._fd = os.open(self.path / TMP_MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except BaseException:
            os.rmdir(self.path)
            raise
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.write(
            self._fd, f"lav temporary output folder of process {os.getpid()}\ntoken {self.token}\n".encode()
        )

    def seal(self) -> dict[str, Any]:
        """Write the manifest of what ``write`` put here and drop the marker; return the manifest."""
        files, dirs = _inventory(self.path, frozenset({TMP_MARKER}))
        reserved = {MANIFEST, TMP_MARKER, _PENDING} & set(files) | {
            d for d in dirs if TMP_PATTERN.fullmatch(d)
        }
        if reserved:
            raise RuntimeError(f"lav's writer used names reserved for the output folder: {sorted(reserved)}")
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "files": files,
            "dirs": dirs,
            "tmp_token": self.token,  # proves, if this folder is left behind, that lav made it
        }
        write_json(self.path / MANIFEST, manifest)
        os.unlink(self.path / TMP_MARKER)
        return manifest

    def close(self) -> None:
        """Remove the folder if it is still there (after a failure, or after an in-place copy)."""
        os.close(self._fd)
        if os.path.lexists(self.path):
            with os_step("remove the temporary folder", self.path):
                shutil.rmtree(self.path)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on directory ``folder``: one lav writer per parent folder at a time.

    flock on the directory itself leaves no lock file behind; each call opens its own descriptor, so
    threads of one process exclude each other as processes do.
    """
    with os_step("open the folder to lock it", folder):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LavError(
                        f"another program has been writing in {folder} for {LOCK_TIMEOUT_S:.0f} s; "
                        "wait for it to finish or give another output folder"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# --- placing the output ------------------------------------------------------------------------
def resolve_target(target: str | os.PathLike) -> Path:
    """The real folder to write: symlinks followed, ``..`` folded; refuse a dangling link or a file."""
    text = os.fspath(target)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip() or "\x00" in text:
        raise LavError(f"output folder {text!r} is not a usable path; give a folder name")
    given = Path(text).expanduser()
    real = Path(os.path.realpath(given))
    with os_step("look at", given):
        if os.path.islink(given) and not os.path.exists(given):
            raise LavError(
                f"output folder {given} is a symbolic link to {os.readlink(given)}, which does not exist; "
                "create that folder, remove the link, or give another folder"
            )
        try:
            st = os.stat(real)
        except FileNotFoundError:
            return real
    if not stat.S_ISDIR(st.st_mode):
        raise LavError(f"output path {given} is {_kind(st.st_mode)}, not a folder; give a folder")
    return real


def _kind(mode: int) -> str:
    """What a non-folder path is, in words."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a file"


def held_by(folder: Path) -> int | None:
    """The PID of the lav run that holds ``folder``'s lock (`lav.livefolder`), or None when none does."""
    lock = folder / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            match = re.search(rb"pid ([0-9]+)", os.read(fd, 256))
            return int(match[1]) if match else -1
        return None
    finally:
        os.close(fd)


def refuse_if_held(folder: Path) -> None:
    """One line when another lav run is writing ``folder`` now (its lock is held)."""
    pid = held_by(folder)
    if pid is not None:
        who = f"process {pid}" if pid > 0 else "another process"
        raise LavError(
            f"{folder} is in use by another lav run ({who}); wait for it to finish, or give another folder"
        )


def _in_place_reason(real: Path) -> str | None:
    """Why the existing folder ``real`` must be filled in place rather than renamed, or None."""
    if not real.is_dir():
        return None
    try:
        cwd = Path(os.path.realpath(os.getcwd()))
    except FileNotFoundError:
        cwd = None
    if cwd is not None and (real == cwd or real in cwd.parents):
        return "it is the current directory"
    if os.path.ismount(real):
        return "it is a mount point"
    if not os.access(real.parent, os.W_OK | os.X_OK) and os.access(real, os.W_OK | os.X_OK):
        return "its parent folder is not writable"
    return None


def _replace_by_rename(tmp: TempFolder, target: Path) -> None:
    """Put the sealed ``tmp`` where ``target`` is; the lock is held and ``target`` was checked."""
    if not os.path.lexists(target):
        with os_step("move the output into place at", target):
            os.rename(tmp.path, target)
        return
    with os_step("keep the permissions of", target):
        os.chmod(tmp.path, stat.S_IMODE(os.stat(target).st_mode))
    if not os.listdir(target):
        # rename(2) over an empty folder is atomic; a file another program adds meanwhile makes it
        # fail with ENOTEMPTY rather than vanish.
        with os_step("move the output into place at", target):
            os.rename(tmp.path, target)
        return
    aside = target.with_name(f".lav-tmp-{target.name[:_TMP_NAME_CHARS]}-{os.getpid()}-{secrets.token_hex(6)}")
    with os_step("move the previous output aside from", target):
        os.rename(target, aside)
    # Checked again under its new name, which no other program uses: a file the user saved into the
    # folder between the first check and the move must not be deleted with it.
    problem = _foreign(aside)
    if problem is not None:
        with os_step("put back", target):
            os.rename(aside, target)
        raise _refuse(target, problem)
    with os_step("move the output into place at", target):
        try:
            os.rename(tmp.path, target)
        except BaseException:
            os.rename(aside, target)
            raise
    with os_step("remove the previous output (moved to)", aside):
        shutil.rmtree(aside)


def _replace_in_place(tmp: TempFolder, target: Path, new: dict[str, Any]) -> None:
    """Fill ``target`` file by file: each file is replaced atomically, the folder as a whole is not.

    The manifest first lists old and new files together, so a crash half-way leaves a folder that
    lav recognises as its own and replaces on the next run.
    """
    old = read_manifest(target)
    old = old if isinstance(old, dict) else {"files": {}, "dirs": []}
    pending = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "files": old.get("files", {}),
        "dirs": old.get("dirs", []),
        "replacing": new["files"],
        "replacing_dirs": new["dirs"],
    }
    with os_step("write the manifest in", target):
        # Written in our temporary folder and renamed: a crash leaves no half manifest, no stray file.
        write_json(tmp.path / _PENDING, pending)
        os.replace(tmp.path / _PENDING, target / MANIFEST)
    for rel in new["dirs"]:
        with os_step("create a folder in", target / rel):
            os.makedirs(target / rel, 0o777, exist_ok=True)
    for rel in new["files"]:
        with os_step("move a file into place at", target / rel):
            os.replace(tmp.path / rel, target / rel)
    for rel in set(old.get("files", {})) - set(new["files"]):
        with os_step("remove the previous output file", target / rel):
            (target / rel).unlink(missing_ok=True)
    for rel in sorted(set(old.get("dirs", [])) - set(new["dirs"]), key=len, reverse=True):
        with os_step("remove the previous output folder", target / rel):
            if (target / rel).is_dir() and not os.listdir(target / rel):
                os.rmdir(target / rel)
    with os_step("write the manifest in", target):
        os.replace(tmp.path / MANIFEST, target / MANIFEST)


def _check_target(real: Path, ignore: frozenset[str]) -> None:
    """Refuse ``real`` unless it is missing, empty, or lav's own earlier output (temps in ``ignore`` aside)."""
    with os_step("look at", real):
        if not os.path.lexists(real):
            return
        if os.path.islink(real) or not os.path.isdir(real):
            raise LavError(f"output path {real} is not a folder (a file or a link appeared); give a folder")
        refuse_if_held(real)
        refuse_foreign(real, ignore)


def refuse_foreign(folder: Path, ignore: frozenset[str] = frozenset()) -> None:
    """Refuse ``folder`` (one `LavError` line) unless it is empty or holds only lav's own output
    (`_foreign`); top-level names in ``ignore`` (running writers' temporary folders) aside. Call it
    inside an `os_step`, which words an `OSError` of the look."""
    problem = _foreign(folder, ignore)
    if problem is not None:
        raise _refuse(folder, problem)


def check_output_folder(target: str | os.PathLike) -> Path:
    """Refuse ``target`` now, before minutes of model work, for what would make saving there fail.

    The same checks `write_output_folder` runs (a file, a dangling link, files lav did not write)
    plus a probe: an empty temporary folder is made and removed where the output would be written
    (the nearest existing folder when parents are missing). Changes nothing lasting; returns the
    real path. Saving can still fail later if the folder changes meanwhile.
    """
    real = resolve_target(target)
    in_place = _in_place_reason(real)
    where = real if in_place else real.parent
    while not where.exists():
        where = where.parent
    if os.path.isdir(real):
        with _locked(real.parent):
            with os_step("read", real):
                temps = live_temps(real)
            _check_target(real, temps)
    with os_step("create a temporary folder in", where):
        TempFolder(where, real.name).close()
    return real


def write_output_folder(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Create or replace the lav output folder `target` with what `write(tmp)` puts into an empty temporary folder.

    ``write`` receives an empty folder on the same disk as ``target`` and writes plain files and
    folders into it. Returns the real path of the output folder (a symlink to a folder is followed:
    the link stays, the folder it points to is filled). New folders get the mode a plain ``mkdir``
    gives under the umask; a replaced folder keeps its mode.

    Raises `LavError` (one line: what, where, what to do) when ``target`` holds anything lav did not
    write, cannot be written, or the disk fails; then ``target`` is as it was and no temporary
    folder is left. An exception from ``write`` itself propagates unchanged after the same clean-up.
    """
    real = resolve_target(target)
    with os_step("create the parent folder", real.parent):
        os.makedirs(real.parent, 0o777, exist_ok=True)
    in_place = _in_place_reason(real)
    # Checked before the (slow) writing so that a refusal costs nothing, with other writers' temporary
    # folders looked past; checked again, strictly, before anything is moved. Both under the lock:
    # read while another writer swaps folders, a manifest and its files can come from two outputs.
    with _locked(real.parent):
        with os_step("read", real):
            temps = live_temps(real) if os.path.isdir(real) else frozenset()
        _check_target(real, temps)
    where = real if in_place else real.parent
    with os_step("create a temporary folder in", where):
        tmp = TempFolder(where, real.name)
    try:
        write(tmp.path)
        with os_step("record the output files in", tmp.path):
            new = tmp.seal()
        with _locked(real.parent):
            # Only where lav itself puts temporary folders: the parent of a folder filled in place
            # may not be writable.
            remove_stale(where)
            if not in_place and os.path.isdir(real) and not os.path.islink(real):
                remove_stale(real)
            with os_step("read", real):
                temps = live_temps(real) if in_place else frozenset()
            _check_target(real, temps)
            if in_place:
                _replace_in_place(tmp, real, new)
            else:
                _replace_by_rename(tmp, real)
            with os_step("flush the folder", real.parent):
                _fsync_dir(real.parent)
    except OSError as exc:
        tmp.close()
        # A disk error while ``write`` ran (ENOSPC, EDQUOT, EIO) is the user's to fix, not a bug.
        with os_step("write the output into", real):
            raise exc
    except BaseException:
        tmp.close()
        raise
    tmp.close()
    return real


def live_temps(folder: Path) -> frozenset[str]:
    """Names of lav temporary folders directly in ``folder`` (ours and other running writers').

    Only those lav provably made (`_made_by_lav`): a user's folder named like one is looked at.
    """
    return frozenset(
        name
        for name in os.listdir(folder)
        if TMP_PATTERN.fullmatch(name) and _made_by_lav(folder / name) is not None
    )


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` survive a power cut (ext4 and xfs need the directory synced)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
