"""An evaluation's folder on disk: ``run.json`` (the settings) and ``samples.jsonl`` (the log).

Durable and resumable: each record is one line appended, flushed and fsync-ed as soon as its sample
is done, so a run killed at any moment (SIGKILL included) loses at most the line being written. On
restart `SampleLog` keeps every complete line, cuts a torn last line, and the run skips the ids it
holds. ``run.json`` pins what the records were made with; a folder written for another model,
adapter, dataset or options is refused, never mixed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import jsonsafe
from ..errors import LavError

RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
#: Version of the folder layout and record keys.
EVAL_FORMAT = 1


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` all at once (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise LavError(
            f"cannot write {path}: {exc.strerror or exc}; check the folder's permissions and space"
        ) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, sort_keys=False)


def check_settings(folder: Path, settings: Mapping[str, Any]) -> None:
    """Write ``run.json`` in a new folder; in an existing one, refuse other settings.

    A folder that holds files but no ``run.json`` is not an evaluation folder and is refused too.
    """
    run = folder / RUN_FILE
    if not run.is_file():
        if folder.is_dir() and any(p.name not in (SAMPLES_FILE,) for p in folder.iterdir()):
            raise LavError(
                f"{folder} holds other files and no {RUN_FILE}: it is not a lav eval folder; "
                "pass an empty or new --out"
            )
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / SAMPLES_FILE).exists():
            raise LavError(f"{folder} has {SAMPLES_FILE} but no {RUN_FILE}; pass an empty or new --out")
        write_atomic(run, json.dumps({"eval_format": EVAL_FORMAT, **settings}, indent=2) + "\n")
        return
    try:
        saved = jsonsafe.loads(run.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LavError(f"cannot read {run} ({exc}); pass a new --out") from exc
    wanted = jsonsafe.loads(json.dumps({"eval_format": EVAL_FORMAT, **settings}))
    diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if diff:
        shown = "; ".join(f"{k}: {saved.get(k)!r} there, {wanted.get(k)!r} now" for k in diff[:3])
        raise LavError(
            f"{folder} holds an evaluation made with other settings ({shown}); "
            "rerun with the same settings to resume it, or pass another --out"
        )


class SampleLog:
    """``samples.jsonl``: the records already written, and an append-only durable writer."""

    def __init__(self, path: Path):
        self.path = path
        self.records: list[dict[str, Any]] = read_records(path, repair=True)
        self.done = {r["id"] for r in self.records}
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def append(self, records: Iterable[Mapping[str, Any]]) -> None:
        for rec in records:
            if rec["id"] in self.done:
                raise LavError(f"sample {rec['id']!r} is in {self.path} already; sample ids must be unique")
            self._file.write(dumps(rec) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            self.done.add(rec["id"])
            self.records.append(dict(rec))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SampleLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """The complete records of a ``samples.jsonl``; a torn last line (the run was killed while
    writing it) is cut off the file when ``repair``, else ignored. A damaged line elsewhere raises."""
    if not path.exists():
        return []
    data = path.read_bytes()
    records, end = [], 0
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if last and not line:
            break
        try:
            rec = jsonsafe.loads(line) if not last else None  # a last piece without "\n" is torn
        except ValueError:
            rec = None
        if rec is None or not isinstance(rec, dict) or "id" not in rec:
            if last or i == len(lines) - 2 and not lines[-1]:
                break
            raise LavError(
                f"{path} line {i + 1} is damaged (not a record); remove that line or pass a new --out"
            )
        records.append(rec)
        end += len(line) + 1
    if repair and end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    return records
