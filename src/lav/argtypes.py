"""The argparse types of every `lav` command's numbers: each a whole number in a stated range.

A number is checked where it is parsed, so ``--shard 0/99999999999999999999999``, ``-n 1099511627776``
or ``--seed 1000000000000000000000`` is one usage line (exit 2) instead of an allocation without
bound or an overflow deep in numpy or torch. The upper bounds are far above any real use and far
below what would exhaust a machine; each message names the range.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

#: Seeds: what numpy's and Python's generators take on every platform (torch takes more).
SEED_MAX = 2**32 - 1
#: ``--shard I/N``: parts of one evaluation at most.
SHARDS_MAX = 1024


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high``, or a usage error naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # also "1e21", "2.5" and numbers of thousands of digits
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:,}, got {_shown(value)}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:,}, got {_shown(value)}")
        return value

    parse.__name__ = f"whole number from {low} to {high}"  # argparse names the type in its messages
    return parse


def _shown(value: int) -> str:
    return f"{value:,}" if abs(value) < 10**30 else f"{str(value)[:12]}... ({len(str(value))} digits)"


def shard(text: str) -> tuple[int, int]:
    """``--shard I/N``: part I (0-based) of N, with N at most `SHARDS_MAX`."""
    parts = text.split("/")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/4, got {text[:40]!r}")
    index = whole(0, SHARDS_MAX - 1)(parts[0])
    count = whole(1, SHARDS_MAX)(parts[1])
    if index >= count:
        raise argparse.ArgumentTypeError(f"part {index} of {count}: parts are numbered from 0 to N-1")
    return index, count


#: A count of at least one with no natural limit (``--limit``): the bound only stops typos.
positive_int = whole(1, 10**9)
seed = whole(0, SEED_MAX)
batch_size = whole(1, 4096)
max_new_tokens = whole(1, 1_000_000)
#: ``--max-pixels``: 1 Gpx is 3 GB of RGB before the model sees it.
max_pixels = whole(1, 1_000_000_000)
#: One side of a screenshot, in pixels (``lav plan --image-size``).
image_side = whole(1, 100_000)
#: ``lav demo-data -n``: each sample is a screen drawn in memory and a PNG on disk.
demo_samples = whole(2, 10_000)
port = whole(0, 65535)
max_queue = whole(1, 1024)
#: ``lav serve --cache-mb``: memory for finished jobs and opened results, in MiB.
cache_mb = whole(1, 1 << 20)
