"""A lav output folder that a long run fills in place, under the rules of `lav.outdir`.

`lav eval` appends a record per sample for hours and rewrites its summary at the end; `lav evolve`
holds one evaluation per checkpoint. Such a folder cannot be written aside and renamed in one go, so
`OutputFolder` keeps the same promise file by file:

- Ownership by content: the folder's ``.lav-manifest.json`` lists every file lav put there with its
  size and sha256 (an append-only log with the length lav recorded), and every nested lav output
  folder. Opening refuses, before any work, a folder that holds anything else or a listed file the
  user changed (`lav.outdir.refuse_foreign`, the rule `lav run` follows).
- One run at a time: ``.lav-lock`` is `flock`-ed for as long as the folder is open and holds the
  run's PID; a second run refuses at once with one line naming it (``wait=True``: waits instead,
  for the short merge of a sharded run).
- Each file is replaced atomically: written in a temporary folder lav made inside the folder (with
  the token of `lav.outdir`), listed as "replacing" in the manifest, moved into place, then listed.
  A run stopped at any point leaves a folder the next run recognises as lav's.

Torch-free.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import LavError
from .outdir import (
    LOCK_FILE,
    LOCK_TIMEOUT_S,
    MANIFEST,
    MANIFEST_FORMAT,
    MANIFEST_VERSION,
    TempFolder,
    live_temps,
    os_step,
    read_manifest,
    refuse_foreign,
    refuse_if_held,
    remove_stale,
    resolve_target,
    write_json,
)


class OutputFolder:
    """``target`` opened for a long run: checked, locked, and written only through these methods.

    Use as a context manager; `close` releases the lock and removes the temporary folder.
    """

    def __init__(self, target: str | os.PathLike, *, wait: bool = False) -> None:
        real = resolve_target(target)
        self.path = real
        with os_step("create the folder", real):
            os.makedirs(real, 0o777, exist_ok=True)
        self._lock_fd = _lock(real, wait)
        try:
            with os_step("remove leftovers of a stopped run in", real):
                remove_stale(real)
            manifest = read_manifest(real)
            self._manifest: dict[str, Any] = (
                manifest
                if isinstance(manifest, dict)
                else {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "files": {}, "dirs": []}
            )
            for rel in self._manifest.get("outputs", []):
                if (real / rel).parent.is_dir():
                    with os_step("remove leftovers of a stopped run in", (real / rel).parent):
                        remove_stale((real / rel).parent)
            # Our own lock is held now, so `_check_target`'s look for a running writer would see us.
            with os_step("read", real):
                refuse_foreign(real, live_temps(real))
            self._manifest.pop("tmp_token", None)
            with os_step("create a temporary folder in", real):
                self._tmp = TempFolder(real, real.name)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._appending: dict[str, hashlib._Hash] = {}

    # --- reading --------------------------------------------------------------------------------
    def has(self, rel: str) -> bool:
        """Whether the manifest lists ``rel`` (a file lav wrote here)."""
        return rel in self._manifest["files"]

    # --- writing --------------------------------------------------------------------------------
    def write_text(self, rel: str, text: str) -> Path:
        return self.write_bytes(rel, text.encode("utf-8"))

    def write_bytes(self, rel: str, data: bytes) -> Path:
        """Replace ``rel`` with ``data`` atomically; the manifest lists it before and after the move."""
        self.write_many({rel: data})
        return self.path / rel

    def write_many(self, files: Mapping[str, bytes]) -> None:
        """Replace each of ``files`` (path -> data) atomically, with two manifest updates for them all:
        each is listed as "replacing" before any moves, and as a file after."""
        staged: dict[str, tuple[Path, bytes]] = {}
        try:
            for n, (rel, data) in enumerate(files.items()):
                tmp = self._tmp.path / f"staged-{n}"
                with os_step("write", self.path / rel), open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                staged[rel] = (tmp, data)
            if not staged:
                return
            entries = {
                rel: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for rel, (_, data) in staged.items()
            }
            with os_step("write the manifest in", self.path):
                self._manifest.setdefault("replacing", {}).update(entries)
                for rel in staged:
                    self._make_dirs(rel)
                self._save_manifest()
            for rel, (tmp, _) in staged.items():
                with os_step("write", self.path / rel):
                    os.replace(tmp, self.path / rel)
                self._manifest["files"][rel] = entries[rel]
                del self._manifest["replacing"][rel]
                self._appending.pop(rel, None)
            with os_step("write the manifest in", self.path):
                self._save_manifest()
        finally:
            for tmp, _ in staged.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def append(self, rel: str, data: bytes) -> None:
        """Append ``data`` to the append-only file ``rel`` (flushed to the disk), then record its length."""
        dest = self.path / rel
        with os_step("append to", dest):
            digest = self._appending.get(rel)
            if digest is None:
                # The file as it stands (a torn last line already cut by its reader) is lav's.
                digest = hashlib.sha256(dest.read_bytes() if dest.exists() else b"")
                self._make_dirs(rel)
                if not dest.exists() and rel not in self._manifest["files"]:
                    # Listed (empty) before it exists: a run killed between creating it and
                    # recording its length leaves a file its manifest already claims.
                    self._manifest["files"][rel] = {"size": 0, "sha256": digest.hexdigest(), "append": True}
                    self._save_manifest()
            with open(dest, "ab") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            digest.update(data)
            self._appending[rel] = digest
            self._manifest["files"][rel] = {
                "size": os.stat(dest).st_size,
                "sha256": digest.hexdigest(),
                "append": True,
            }
            self._save_manifest()

    def record_length(self, rel: str) -> None:
        """List the append-only file ``rel`` as it now stands (after its reader cut a torn line)."""
        dest = self.path / rel
        with os_step("read", dest):
            data = dest.read_bytes()
        self._appending[rel] = hashlib.sha256(data)
        self._manifest["files"][rel] = {
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "append": True,
        }
        self._make_dirs(rel)
        with os_step("write the manifest in", self.path):
            self._save_manifest()

    def nested(self, rel: str) -> Path:
        """Make ``rel`` a nested lav output folder (written by `write_output_folder` or another
        `OutputFolder`) and return its path; it is listed before anything is written there."""
        return self.nested_many([rel])[0]

    def nested_many(self, rels: Sequence[str]) -> list[Path]:
        """`nested` for each of ``rels``, with one manifest update for them all (the manifest lists
        every file, so an update per folder makes a long run quadratic)."""
        outputs = self._manifest.setdefault("outputs", [])
        new = [rel for rel in dict.fromkeys(rels) if rel not in outputs]
        if new:
            for rel in new:
                outputs.append(rel)
                self._make_dirs(rel)
            with os_step("write the manifest in", self.path):
                self._save_manifest()
        return [self.path / rel for rel in rels]

    # --- internals ------------------------------------------------------------------------------
    def _make_dirs(self, rel: str) -> None:
        parent = Path(rel).parent
        if parent == Path("."):
            return
        os.makedirs(self.path / parent, 0o777, exist_ok=True)
        dirs = set(self._manifest.get("dirs", []))
        dirs.update(p.as_posix() for p in [parent, *parent.parents] if p != Path("."))
        self._manifest["dirs"] = sorted(dirs)

    def _save_manifest(self) -> None:
        staged = self._tmp.path / MANIFEST
        if not self._manifest.get("replacing"):
            self._manifest.pop("replacing", None)
        write_json(staged, self._manifest)
        os.replace(staged, self.path / MANIFEST)

    def close(self) -> None:
        try:
            self._tmp.close()
        finally:
            # Unlinked while still held: a run that opened it meanwhile sees a stale inode and retries.
            with contextlib.suppress(OSError):
                os.unlink(self.path / LOCK_FILE)
            os.close(self._lock_fd)

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lock(folder: Path, wait: bool) -> int:
    """Take ``folder``'s ``.lav-lock`` (writing this PID into it); refuse, or wait, when another run holds it."""
    path = folder / LOCK_FILE
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    while True:
        with os_step("lock", path):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise LavError(f"{path} is a symbolic link; lav's lock file must be a file") from None
                raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise LavError(f"{path} is not a plain file; remove it (lav keeps its lock there)")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait or time.monotonic() > deadline:
                    refuse_if_held(folder)
                    os.close(fd)
                    continue  # released between the two looks: try again
                os.close(fd)
                time.sleep(0.05)
                continue
            try:
                same = os.fstat(fd).st_ino == os.lstat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder unlinked it as we opened it: lock the new one
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"lav run, pid {os.getpid()}\n".encode())
            return fd
        except LavError:
            os.close(fd)
            raise


def listed_outputs(folder: str | os.PathLike) -> list[str]:
    """The nested lav output folders ``folder``'s manifest lists (relative POSIX paths), read
    without taking its lock; none when it has no manifest lav wrote."""
    manifest = read_manifest(Path(folder))
    if not isinstance(manifest, dict):
        return []
    outputs = manifest.get("outputs", [])
    return [o for o in outputs if isinstance(o, str)] if isinstance(outputs, list) else []
