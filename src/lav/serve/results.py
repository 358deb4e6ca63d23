"""Saved results and `lav eval` outputs under the ``--results`` folders, read without torch.

Every path the server opens comes from `Roots.resolve`: a root's index and a path relative to it,
refused when it is absolute, climbs with ``..``, holds a NUL or a backslash, or (after following
symbolic links) lands outside the root. A result folder's record files are checked one by one the
same way, so a ``result.json`` that is a link to a file elsewhere is refused too.

Ids are opaque in the API (``r<root>-<path as base64url>`` for a result folder, ``e<root>-...`` for
an evaluation) and decoded back through `Roots.resolve` on every request: a crafted id is only
another path to check.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import LavError
from ..result import RECORD_FILES, Result

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
    """The ``--results`` folders: safe paths under them, what they hold, loaded results (a small cache)."""

    def __init__(self, roots: list[str | os.PathLike], cache_size: int = 16) -> None:
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
        self._cache: OrderedDict[Path, tuple[float, Result]] = OrderedDict()
        self._cache_size = cache_size

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
            if f.kind == "r":
                try:
                    folder = self.result_folder(f.root, f.rel)
                    data = _read_json(folder / "result.json")
                except (PathRefused, LavError):
                    continue
                results.append({"id": f.id, "root": f.root, "path": f.rel, **_result_line(data)})
            else:
                try:
                    summary = _read_json(self.resolve(f.root, _join(f.rel, "summary.json")))
                except (PathRefused, LavError):
                    summary = None
                evals.append({"id": f.id, "root": f.root, "path": f.rel, "summary": _summary_line(summary)})
        return {
            "roots": [{"index": i, "name": p.name or str(p)} for i, p in enumerate(self.roots)],
            "results": results,
            "evals": evals,
        }

    def load(self, root: int, rel: str) -> Result:
        """`Result.load` of a checked folder, kept while its result.json is unchanged."""
        folder = self.result_folder(root, rel)
        stamp = (folder / "result.json").stat().st_mtime
        hit = self._cache.get(folder)
        if hit is not None and hit[0] == stamp:
            self._cache.move_to_end(folder)
            return hit[1]
        res = Result.load(folder)
        self._cache[folder] = (stamp, res)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return res

    def evaluation(self, root: int, rel: str) -> dict[str, Any]:
        """An evaluation output: its summary and samples, each with the id of its result folder if kept."""
        folder = self.resolve(root, rel)
        summary = _read_json(self.resolve(root, _join(rel, "summary.json")))
        samples_path = self.resolve(root, _join(rel, "samples.jsonl"))
        samples = []
        with open(samples_path, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh):
                if n >= MAX_SAMPLES:
                    break
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a killed run: the summary says what counts
                if isinstance(rec, dict):
                    rec["result_id"] = self._sample_result(root, rel, rec.get("id"))
                    rec["flip"] = _flip(rec)
                    samples.append(rec)
        groups = sorted({k for s in samples for k in (s.get("groups") or {}) if isinstance(k, str)})
        return {
            "id": encode_id("e", root, rel),
            "path": rel,
            "name": folder.name,
            "summary": summary,
            "samples": samples,
            "group_fields": groups,
        }

    def _sample_result(self, root: int, rel: str, sample_id: object) -> str | None:
        if not isinstance(sample_id, (str, int)) or isinstance(sample_id, bool):
            return None
        inner = _join(rel, f"samples/{sample_id}")
        try:
            self.result_folder(root, inner)
        except (PathRefused, LavError):
            return None
        return encode_id("r", root, inner)


def _join(rel: str, name: str) -> str:
    return name if rel in ("", ".") else f"{rel.rstrip('/')}/{name}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
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
