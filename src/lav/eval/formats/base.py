"""What every benchmark format is: one `Format` record (name, how to recognise it, how to read it,
how its official table reads), and what its reader returns (`Parsed`).

`lav.eval.datasets` knows formats only through these records (`lav.eval.formats.REGISTRY`): it asks
each record whether it recognises a path and hands the chosen one the path to read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import LavError
from ...files import check_path, read_json
from ..entries import Entry
from ..samples import Sample


@dataclass
class Parsed:
    """What a reader found: samples in file order, notes, grouping fields in display order."""

    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    group_fields: list[str] = field(default_factory=list)

    def add_groups(self, names: list[str]) -> None:
        for name in names:
            if name not in self.group_fields:
                self.group_fields.append(name)


@dataclass(frozen=True)
class Spec:
    """How a benchmark's official table reads: names, the average's cells, the two-way tables
    (`lav.eval.official`)."""

    benchmark: str
    micro: str
    macro: str | None = None
    #: One field: the mean of its groups' accuracies; two: the mean of the two-way cells.
    macro_over: tuple[str, ...] = ()
    tables: tuple[tuple[str, str], ...] = ()
    source: str = ""
    #: A grouping field whose value lists several categories joined by '|' (OSWorld-G's buckets):
    #: ``buckets`` gives each category's accuracy over every sample in it.
    multi: str | None = None
    #: ``(value, name)`` pairs: how the paper's table names a category value (``multi``'s, or a
    #: table's column), and the order its columns come in; values not listed follow, sorted.
    names: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ReadOptions:
    """What the user said about how to read the data (`lav.eval.load_dataset`'s arguments).

    ``images``: where screenshots are looked up instead of the format's own layout; ``cache``: where
    embedded images are written; ``limit``: how many samples will be kept; ``bbox``: "xywh" /
    "xyxy" for files whose boxes cannot tell."""

    images: str | os.PathLike | None = None
    cache: Path | None = None
    limit: int | None = None
    bbox: str | None = None


def _never(*_: object) -> bool:
    return False


@dataclass(frozen=True)
class Format:
    """One benchmark format.

    Detection (`lav.eval.datasets.detect_format`) asks, in ``rank`` order (lower first: the
    formats whose files are most particular before the generic row formats): ``by_name`` of a file
    (its name or suffix alone), ``by_layout`` of a folder (the files in it), and, for a ``.json``
    file no name claimed, ``by_fields`` (the fields every entry has, and the file's path).
    ``read`` turns the file or folder into samples. ``layout`` is how its files look, for the list
    of supported formats; ``official`` how its official table reads (None: the accuracy alone).
    """

    name: str
    layout: str
    read: Callable[[Path, ReadOptions], Parsed]
    rank: int
    by_name: Callable[[Path], bool] = _never
    by_layout: Callable[[Path], bool] = _never
    by_fields: Callable[[frozenset[str], Path], bool] = _never
    official: Spec | None = None


# --- helpers the readers share ---------------------------------------------------------------


def json_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.is_file())


def images_dir(images: str | os.PathLike | None, candidates: list[Path]) -> Path:
    """The images folder: ``images`` when given, else the first of ``candidates`` that exists
    (else the last, so that a missing screenshot is each sample's error)."""
    if images is not None:
        return check_path(images, "images folder", kind="dir", fix="pass --images DIR").resolve()
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return candidates[-1].resolve()


def entries(path: Path, what: str) -> list[Entry]:
    data = read_json(path, what, expect=list, fix="pass the benchmark's own annotation file")
    return [Entry(path, i, item, what) for i, item in enumerate(data)]


def no_files(kind: str, where: Path, pattern: str) -> LavError:
    return LavError(f"found no {kind} files ({pattern}) in {where}; pass the benchmark's folder or file")


def ident(e: Entry, stem: str, names: tuple[str, ...] = ("id",)) -> str:
    """The entry's first of ``names`` as a string, else ``<file stem>:<index>``."""
    for name in names:
        value = e.data.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise e.error(f"is {value!r}, not a string or integer", name)
            return str(value)
    return f"{stem}:{e.index}"


def file_size(path: Path) -> tuple[int, int] | None:
    """The (width, height) of the image file at ``path`` from its header, None when unreadable
    (the sample is then an error at evaluation time)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError):
        return None
