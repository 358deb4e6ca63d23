"""Reading a file that someone else may have put there: regular files only, bounded in size and time.

``open()`` on a FIFO blocks until a writer appears, and on a device reads forever; either would hang
the reader (a server thread, `Result.load`) for good. `read_regular` opens with ``O_NONBLOCK`` (so a
FIFO's open returns at once), refuses whatever `fstat` says is not a regular file, and reads at most
``max_bytes`` within ``seconds``. The check is on the descriptor actually read, so a file swapped for
a FIFO after a path check is still caught.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import BinaryIO

from .errors import LavError

#: Largest JSON or JSON Lines file lav reads from a results folder.
MAX_TEXT_BYTES = 256 * 1024 * 1024
#: Longest time reading one file may take (a slow network disk, not a real result).
READ_SECONDS = 20.0
_CHUNK = 1 << 20


class FileRefused(LavError):
    """The path is not a regular file, or is too large or too slow to read."""


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Regular file ``path`` opened for binary reading; `FileRefused` for anything else (never blocks)."""
    p = Path(path)
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(f"{p.name} is not a regular file ({_kind(st.st_mode)}); lav reads only files")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(
    path: str | os.PathLike, max_bytes: int = MAX_TEXT_BYTES, seconds: float = READ_SECONDS
) -> bytes:
    """The bytes of regular file ``path``; `FileRefused` for a FIFO, device, folder, or a file over
    ``max_bytes`` or slower than ``seconds`` to read; `OSError` as the system raises it otherwise."""
    p = Path(path)
    with open_regular(p) as fh:
        fd = fh.fileno()
        st = os.fstat(fd)
        if st.st_size > max_bytes:
            raise FileRefused(f"{p.name} is {st.st_size:,} bytes, over the {max_bytes:,} lav reads")
        deadline = time.monotonic() + seconds
        parts, total = [], 0
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:  # grew while being read
                raise FileRefused(f"{p.name} grew past {max_bytes:,} bytes while being read")
            parts.append(chunk)
            if time.monotonic() > deadline:
                raise FileRefused(f"reading {p.name} took over {seconds:g} s; copy it to a local disk")
        return b"".join(parts)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return f"mode {oct(mode)}"
