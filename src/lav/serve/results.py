"""Saved results and `lav eval` outputs under the ``--results`` folders, read without torch.

Every path the server opens comes from `Roots.resolve`: a root's index and a path relative to it,
refused when it is absolute, climbs with ``..``, holds a NUL or a backslash, or (after following
symbolic links) lands outside the root. A result folder's record files are checked one by one the
same way, so a ``result.json`` that is a link to a file elsewhere is refused too.

Only regular files are read (`lav.safeopen`: a FIFO, a device or a socket under a root is refused
without blocking), each within a size and a time limit, and an entry that cannot be read is listed
with its error instead of failing the whole listing.

Ids are opaque in the API (``r<root>-<path as base64url>`` for a result folder, ``e<root>-...`` for
an evaluation) and decoded back through `Roots.resolve` on every request: a crafted id is only
another path to check.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .. import jsonsafe
from ..errors import LavError
from ..eval.layout import SHARDS_DIR, is_part_name, sample_dirs
from ..result import RECORD_FILES, Result
from ..safeopen import read_regular

#: The files that make a folder an evaluation output of `lav eval`.
EVAL_FILES = ("samples.jsonl", "summary.json")
#: How deep under a root the browse page looks, and how many folders it visits at most.
MAX_DEPTH = 8
MAX_FOLDERS = 20_000
#: Samples read from one samples.jsonl at most (the table pages through them in the browser).
MAX_SAMPLES = 100_000

_ID = re.compile(r"(?P<kind>[re])(?P<root>[0-9]{1,4})-(?P<path>[A-Za-z0-9_-]*)")


class PathRefused(LavError):
    """A path under ``--results`` that is not allowed (escapes its root, absolute, ``..``)."""


def encode_id(kind: str, root: int, rel: str) -> str:
    """``kind`` ``"r"`` (result folder) or ``"e"`` (evaluation) + root index + base64url of ``rel``."""
    text = base64.urlsafe_b64encode(rel.encode("utf-8")).decode("ascii").rstrip("=")
    return f"{kind}{root}-{text}"


def decode_id(ident: str) -> tuple[str, int, str] | None:
    """(kind, root index, relative path) of an id made by `encode_id`; None if it is not one."""
    m = _ID.fullmatch(ident)
    if m is None:
        return None
    text = m["path"] + "=" * (-len(m["path"]) % 4)
    try:
        rel = base64.urlsafe_b64decode(text.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return m["kind"], int(m["root"]), rel


@dataclass(frozen=True)
class Found:
    kind: str  # "r" result folder, "e" evaluation output
    root: int
    rel: str
    path: Path

    @property
    def id(self) -> str:
        return encode_id(self.kind, self.root, self.rel)


class Roots:
    """The ``--results`` folders: safe paths under them, what they hold, the results they keep."""

    def __init__(self, roots: list[str | os.PathLike]) -> None:
        self.roots: list[Path] = []
        for r in roots:
            path = Path(r).expanduser()
            try:
                st = os.stat(path)
            except OSError as exc:  # missing, a dangling link, a name too long, a loop of links
                raise LavError(
                    f"--results {path}: {exc.strerror or 'cannot be read'}; pass a folder of saved results"
                ) from None
            if not stat.S_ISDIR(st.st_mode):
                raise LavError(f"--results {path} is not a folder; pass a folder of saved results")
            self.roots.append(path.resolve(strict=True))

    # --- paths ---------------------------------------------------------------------------------
    def resolve(self, root: int, rel: str) -> Path:
        """The real path of ``rel`` under root ``root``; `PathRefused` if it is not safely inside."""
        if not 0 <= root < len(self.roots):
            raise PathRefused(f"there is no results folder number {root}")
        if not isinstance(rel, str) or "\x00" in rel or "\\" in rel:
            raise PathRefused("the path holds a NUL or a backslash")
        pure = PurePosixPath(rel)
        if pure.is_absolute() or rel.startswith("/"):
            raise PathRefused("absolute paths are refused; give a path relative to the results folder")
        if any(part == ".." for part in pure.parts):
            raise PathRefused("paths with '..' are refused")
        base = self.roots[root]
        try:
            real = (base / pure).resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # missing, or a loop of links
            raise PathRefused(f"{rel!r} does not exist under the results folder") from exc
        if real != base and base not in real.parents:
            raise PathRefused(f"{rel!r} leads outside the results folder (a symbolic link?)")
        return real

    def result_folder(self, root: int, rel: str) -> Path:
        """A result folder whose record files all lie, as real files, inside the root."""
        folder = self.resolve(root, rel)
        for name in RECORD_FILES:
            inner = f"{rel.rstrip('/')}/{name}" if rel not in ("", ".") else name
            if not self.resolve(root, inner).is_file():
                raise PathRefused(f"{name} in {rel!r} is not a file")
        return folder

    @staticmethod
    def stamp(folder: Path) -> tuple[tuple[int, int], ...]:
        """What changes when a result folder's record files change (size and time of each)."""
        out = []
        for name in RECORD_FILES:
            st = (folder / name).stat()
            out.append((st.st_mtime_ns, st.st_size))
        return tuple(out)

    # --- what is there -------------------------------------------------------------------------
    def scan(self) -> list[Found]:
        """Every result folder and evaluation output under every root (links are not followed)."""
        found: list[Found] = []
        visited = 0
        for index, base in enumerate(self.roots):
            for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
                visited += 1
                here = Path(dirpath)
                rel = here.relative_to(base).as_posix()
                depth = 0 if rel == "." else rel.count("/") + 1
                names = set(filenames)
                if all(n in names for n in EVAL_FILES):
                    found.append(Found("e", index, "" if rel == "." else rel, here))
                    dirnames[:] = []  # its samples/ are listed by the evaluation itself
                    continue
                if all(n in names for n in RECORD_FILES):
                    found.append(Found("r", index, "" if rel == "." else rel, here))
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                if depth >= MAX_DEPTH or visited >= MAX_FOLDERS:
                    dirnames[:] = []
        return found

    def listing(self) -> dict[str, Any]:
        """The browse page's data: the roots, each result's summary line, each evaluation's summary."""
        results, evals = [], []
        for f in self.scan():
            row: dict[str, Any] = {"id": f.id, "root": f.root, "path": f.rel}
            # One broken entry (a FIFO, a damaged or hostile file) fails its own row only.
            try:
                if f.kind == "r":
                    data = _read_json(self.result_folder(f.root, f.rel) / "result.json")
                    row.update(_result_line(data))
                else:
                    row["summary"] = _summary_line(
                        _read_json(self.resolve(f.root, _join(f.rel, "summary.json")))
                    )
            except PathRefused:
                if f.kind == "r":
                    continue  # a record file that is a link out of the root: not a result here
                row["summary"] = None
            except LavError as exc:
                row["error"] = " ".join(str(exc).split())
                if f.kind == "e":
                    row["summary"] = None
            (results if f.kind == "r" else evals).append(row)
        return {
            "roots": [{"index": i, "name": p.name or str(p)} for i, p in enumerate(self.roots)],
            "results": results,
            "evals": evals,
        }

    def load(self, root: int, rel: str) -> Result:
        """`Result.load` of a checked folder (the app keeps what it serves, in its own bounded cache)."""
        return Result.load(self.result_folder(root, rel))

    def evaluation(self, root: int, rel: str) -> dict[str, Any]:
        """An evaluation output: its summary and samples, each with the id of its result folder if kept."""
        folder = self.resolve(root, rel)
        summary = _read_json(self.resolve(root, _join(rel, "summary.json")))
        samples_path = self.resolve(root, _join(rel, "samples.jsonl"))
        parts = self._parts(root, rel)
        samples = []
        try:
            text = read_regular(samples_path).decode("utf-8", errors="replace")
        except OSError as exc:
            raise LavError(f"cannot read samples.jsonl ({exc.strerror or exc})") from exc
        for n, line in enumerate(text.splitlines()):
            if n >= MAX_SAMPLES:
                break
            line = line.strip()
            if not line:
                continue
            try:
                rec = jsonsafe.loads(line)
            except ValueError:
                continue  # a line cut short by a killed run: the summary says what counts
            if isinstance(rec, dict):
                rec["result_id"] = self._sample_result(root, rel, parts, rec.get("id"))
                rec["flip"] = _flip(rec)
                samples.append(rec)
        groups = sorted(
            {
                k
                for s in samples
                if isinstance(s.get("groups"), dict)
                for k in s["groups"]
                if isinstance(k, str)
            }
        )
        return {
            "id": encode_id("e", root, rel),
            "path": rel,
            "name": folder.name,
            "summary": summary,
            "samples": samples,
            "group_fields": groups,
        }

    def _parts(self, root: int, rel: str) -> list[str]:
        """The ``shards/rank-I`` folder names of a sharded evaluation (each part keeps its own samples)."""
        try:
            shards = self.resolve(root, _join(rel, SHARDS_DIR))
        except PathRefused:
            return []
        if not shards.is_dir():
            return []
        return sorted((p.name for p in shards.iterdir() if is_part_name(p.name)), key=lambda n: int(n[5:]))

    def _sample_result(self, root: int, rel: str, parts: list[str], sample_id: object) -> str | None:
        """The id of the result folder `lav eval --save-maps` kept for ``sample_id`` (`lav.eval.layout`),
        in the run's folder or in one of its ``parts``; None when none was kept."""
        if not isinstance(sample_id, str):
            return None
        for where in sample_dirs(parts, sample_id):
            inner = _join(rel, where)
            try:
                self.result_folder(root, inner)
            except (PathRefused, LavError):
                continue
            return encode_id("r", root, inner)
        return None


def _join(rel: str, name: str) -> str:
    return name if rel in ("", ".") else f"{rel.rstrip('/')}/{name}"


def _read_json(path: Path) -> Any:
    try:
        return jsonsafe.loads(read_regular(path).decode("utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: UTF-8, JSON and its bounds
        raise LavError(f"cannot read {path.name}: {exc}") from exc


def _flip(rec: dict[str, Any]) -> str | None:
    """``fixed`` (the adapter right, the base wrong), ``broken`` (the reverse), or None."""
    base = rec.get("base")
    if not isinstance(base, dict) or "correct" not in base or "correct" not in rec:
        return None
    if rec["correct"] and not base["correct"]:
        return "fixed"
    if base["correct"] and not rec["correct"]:
        return "broken"
    return None


def _result_line(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        return {}
    click = data.get("click")
    return {
        "instruction": data.get("instruction"),
        "response": data.get("response"),
        "model": data.get("model"),
        "adapter": data.get("adapter"),
        "click": None if not isinstance(click, dict) else {"x": click.get("x"), "y": click.get("y")},
        "has_base": data.get("base") is not None,
    }


def _summary_line(summary: Any) -> dict[str, Any] | None:
    if not isinstance(summary, dict):
        return None
    keys = ("n", "correct", "accuracy", "wrong_format", "errors", "flips", "mcnemar_p")
    out = {k: summary[k] for k in keys if k in summary}
    base = summary.get("base")
    if isinstance(base, dict) and "accuracy" in base:
        out["base_accuracy"] = base["accuracy"]
    return out
