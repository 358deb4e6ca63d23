"""What an evaluation's records were made from, by content: compared when a run resumes.

A path names where weights lie, not what they are: an adapter retrained into the same folder would
resume into the old records and mix two adapters in one accuracy. So ``run.json`` holds the sha256
of the model's and the adapter's weight files (a hub model: its commit), of every screenshot, and
the settings that change a result (dtype, attention backend, pixel limit, batch size).

Files are hashed once per process for a given (path, size, mtime): `lav evolve` runs the same base
model and screenshots once per checkpoint.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Files of a checkpoint or adapter folder whose content decides its outputs.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
CONFIG_NAMES = ("config.json", "adapter_config.json", "generation_config.json", "preprocessor_config.json")

_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of ``path``'s content, cached for this process by (real path, size, mtime)."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    found = _cache.get(key)
    if found is None:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        found = _cache[key] = digest.hexdigest()
    return found


def folder_digest(folder: Path) -> str:
    """One sha256 over the weight and config files of a model or adapter folder (names and contents)."""
    digest = hashlib.sha256()
    names = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and (p.name.endswith(WEIGHT_SUFFIXES) or p.name in CONFIG_NAMES or p.name.endswith(".index.json"))
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    for p in names:
        digest.update(f"{p.relative_to(folder).as_posix()}\0{file_sha256(p)}\n".encode())
    return digest.hexdigest()


def source_digest(source: str | None, commit: str | None = None) -> str | None:
    """The content of a model or adapter as given to `lav.load`: a folder's or file's sha256, or
    ``hub:<commit>`` for a model downloaded from the hub (its files are addressed by that commit)."""
    if source is None:
        return None
    path = Path(source).expanduser()
    if path.is_dir():
        return folder_digest(path)
    if path.is_file():
        return file_sha256(path)
    return f"hub:{commit}" if commit else f"unresolved:{source}"


def images_digest(paths: Iterable[Path]) -> str:
    """One sha256 over the screenshots (a missing one counts as missing: it is that sample's error)."""
    digest = hashlib.sha256()
    for p in paths:
        try:
            value = file_sha256(Path(p))
        except OSError:
            value = "missing"
        digest.update(f"{p}\0{value}\n".encode())
    return digest.hexdigest()


def model_settings(viz: Any) -> dict[str, Any]:
    """The loaded model's settings that change a result, and its weights' and adapter's content."""
    model = viz.model
    config = getattr(model, "config", None)
    commit = getattr(config, "_commit_hash", None)
    return {
        "model_sha256": source_digest(viz.model_name, commit),
        "adapter_sha256": source_digest(viz.adapter_name),
        "dtype": str(getattr(model, "dtype", None)),
        "attn_implementation": getattr(config, "_attn_implementation", None),
        "max_image_pixels": viz.max_image_pixels,
    }
