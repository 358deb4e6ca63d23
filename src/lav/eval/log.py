"""An evaluation's folder on disk: ``run.json`` (the settings) and ``samples.jsonl`` (the log).

Durable and resumable: each record is one line appended, flushed and fsync-ed as soon as its sample
is done, so a run killed at any moment (SIGKILL included) loses at most the line being written. On
restart `SampleLog` keeps every complete line, cuts a torn last line, and the run skips the ids it
holds. ``run.json`` pins what the records were made with; a folder written for another model,
adapter, dataset or options is refused, never mixed. The folder itself is a
`lav.livefolder.OutputFolder`: lav writes only files its manifest lists, and one run at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import jsonsafe
from ..errors import LavError

if TYPE_CHECKING:
    from ..livefolder import OutputFolder

RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
#: Version of the folder layout and record keys.
EVAL_FORMAT = 1


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, sort_keys=False)


def check_settings(folder: OutputFolder, settings: Mapping[str, Any]) -> None:
    """Write ``run.json`` in a new evaluation folder; in an existing one, refuse other settings.

    ``folder`` is already open (`lav.livefolder.OutputFolder`): anything in it lav did not write
    was refused there, so a ``run.json`` it lists is this lav's own record of the settings.
    """
    run = folder.path / RUN_FILE
    wanted = jsonsafe.loads(json.dumps({"eval_format": EVAL_FORMAT, **settings}))
    if not folder.has(RUN_FILE):
        if folder.has(SAMPLES_FILE):
            raise LavError(f"{folder.path} has {SAMPLES_FILE} but no {RUN_FILE}; pass an empty or new --out")
        folder.write_text(RUN_FILE, json.dumps(wanted, indent=2) + "\n")
        return
    try:
        saved = jsonsafe.loads(run.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LavError(f"cannot read {run} ({exc}); pass a new --out") from exc
    diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if diff:
        shown = "; ".join(f"{k}: {_short(saved.get(k))} there, {_short(wanted.get(k))} now" for k in diff[:3])
        raise LavError(
            f"{folder.path} holds an evaluation made with other settings ({shown}); "
            "rerun with the same settings to resume it, or pass another --out"
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class SampleLog:
    """``samples.jsonl`` of an open evaluation folder: the records already written, and an
    append-only durable writer (each record flushed to the disk, then listed in the manifest)."""

    def __init__(self, folder: OutputFolder):
        self.folder = folder
        self.path = folder.path / SAMPLES_FILE
        self.records: list[dict[str, Any]] = read_records(self.path, repair=True)
        self.done = {r["id"] for r in self.records}

    def append(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append ``records`` (a batch) in one durable write: one flush and one manifest update per
        batch, not per record (the manifest lists every file, so its rewrite grows with the run)."""
        records = list(records)
        ids: set[str] = set()
        for rec in records:
            if rec["id"] in self.done or rec["id"] in ids:
                raise LavError(f"sample {rec['id']!r} is in {self.path} already; sample ids must be unique")
            ids.add(rec["id"])
        if not records:
            return
        self.folder.append(SAMPLES_FILE, "".join(dumps(rec) + "\n" for rec in records).encode("utf-8"))
        self.done.update(ids)
        self.records.extend(dict(rec) for rec in records)


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
