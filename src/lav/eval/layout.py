"""Where `lav eval` puts each file of its output folder: the one place writers and readers agree on.

``<out>/samples/<safe_id>/`` holds a sample's `Result` (``--save-maps``) and ``<out>/thumbs/<safe_id>.png``
its gallery picture; a sharded run writes the same under ``<out>/shards/rank-I/`` and merges only the
records (``samples.jsonl``, ``summary.json``) into ``<out>``, so a reader looks in the parts too.
Torch-free: `lav serve --results` and the report read it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath

#: Where each part of a sharded run writes, under the run's folder.
SHARDS_DIR = "shards"
#: Each sample's result folder (``--save-maps``), under the run's (or a part's) folder.
SAMPLES_DIR = "samples"
#: The gallery's thumbnails.
THUMBS_DIR = "thumbs"


def safe_id(sample_id: str) -> str:
    """A folder or file name for ``sample_id``: its safe characters, then a hash that keeps it unique."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", sample_id).strip("._")[:60] or "sample"
    return f"{stem}-{hashlib.sha256(sample_id.encode('utf-8')).hexdigest()[:10]}"


def shard_folder(out: str | Path, index: int) -> Path:
    """The folder part ``index`` of a sharded run writes into."""
    return Path(out) / SHARDS_DIR / f"rank-{index}"


def sample_dirs(parts: list[str], sample_id: str) -> list[str]:
    """The relative paths (POSIX) where the result folder of ``sample_id`` may lie: ``samples/<safe_id>``
    of the run itself, then of each part in ``parts`` (the ``shards/rank-I`` folder names present)."""
    name = safe_id(sample_id)
    out = [f"{SAMPLES_DIR}/{name}"]
    out += [str(PurePosixPath(SHARDS_DIR, part, SAMPLES_DIR, name)) for part in parts]
    return out


def is_part_name(name: str) -> bool:
    """True for a ``shards/`` entry lav writes (``rank-<digits>``)."""
    return re.fullmatch(r"rank-[0-9]+", name) is not None
