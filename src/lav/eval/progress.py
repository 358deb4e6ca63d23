"""Progress of an evaluation on stderr: a tqdm bar on a terminal, else a line every few samples."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

#: Without a terminal (a log file, CI), one line per this share of the run, at least every sample.
LINES_PER_RUN = 20


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
    """Samples done of ``total`` (those already in the log count as done), samples/s, ETA and the
    accuracy so far. ``enabled``: None chooses a bar when stderr is a terminal, else lines."""

    def __init__(self, total: int, already: Sequence[dict[str, Any]], enabled: bool | None = None):
        self.total = total
        self.done = len(already)
        self.correct = sum(bool(r.get("correct")) for r in already if not r.get("error"))
        self.scored = sum(1 for r in already if not r.get("error"))
        self.start_done = self.done
        self.t0 = time.perf_counter()
        self.bar = None
        self.every = max(1, total // LINES_PER_RUN)
        self.quiet = enabled is False
        if enabled or (enabled is None and sys.stderr.isatty()):
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total,
                initial=self.done,
                unit="sample",
                file=sys.stderr,
                dynamic_ncols=True,
                desc="lav eval",
            )

    def _accuracy(self) -> str:
        return f"{self.correct / self.scored:.1%}" if self.scored else "-"

    def update(self, records: Sequence[dict[str, Any]]) -> None:
        before = self.done
        for r in records:
            self.done += 1
            if not r.get("error"):
                self.scored += 1
                self.correct += bool(r["correct"])
        if self.bar is not None:
            self.bar.update(len(records))
            self.bar.set_postfix(accuracy=self._accuracy(), refresh=False)
        elif not self.quiet and (self.done // self.every > before // self.every or self.done == self.total):
            elapsed = time.perf_counter() - self.t0
            rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
            eta = _clock((self.total - self.done) / rate) if rate > 0 else "?"
            print(
                f"lav: eval {self.done}/{self.total} samples, {rate:.2f} samples/s, ETA {eta}, "
                f"accuracy {self._accuracy()}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
