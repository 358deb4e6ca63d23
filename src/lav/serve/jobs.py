"""Jobs behind one model: a bounded queue, one worker thread, and the stage each job is at.

A job goes ``queued`` -> ``running`` (stage ``preparing`` -> ``generating`` -> ``maps``) -> ``done``,
or ends ``failed`` (with the user-facing message of a `LavError`) or ``cancelled``. The queue holds
at most ``max_queue`` waiting jobs; `JobQueue.submit` raises `QueueFull` beyond that, with a guess of
when to come back. A running job cannot be interrupted inside the model call; cancelling it drops
its result when the call returns. `JobQueue.close` cancels the waiting jobs and waits for the
running one. Finished jobs' outputs are kept within ``max_bytes`` (an output's ``nbytes``), the
oldest dropped first, so memory stays bounded whatever the uploads. Torch-free: the work itself is a callable handed in (`lav.serve.model`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import LavError

log = logging.getLogger("lav.serve")

#: What a worker calls: ``work(payload, progress)`` -> the job's output; ``progress(stage)`` names the stage.
Work = Callable[[Any, Callable[[str], None]], Any]

TERMINAL = ("done", "failed", "cancelled")


class QueueFull(LavError):
    """The queue is full; ``retry_after`` is a guess in whole seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Job:
    id: str
    payload: Any = field(repr=False)
    state: str = "queued"
    stage: str = "queued"
    error: str | None = None
    output: Any = field(default=None, repr=False)
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False
    #: The output was dropped to keep finished jobs within the memory budget.
    dropped: bool = False


class JobQueue:
    """One worker thread running ``work`` on the jobs in submission order, at most ``max_queue`` waiting."""

    def __init__(
        self,
        work: Work,
        max_queue: int = 8,
        keep: int = 32,
        name: str = "model",
        max_bytes: int | None = None,
    ) -> None:
        if max_queue < 1:
            raise LavError(f"--max-queue must be at least 1, got {max_queue}")
        self._work = work
        self.max_queue = max_queue
        self._keep = keep
        self._max_bytes = max_bytes
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: deque[Job] = deque()
        self._running: Job | None = None
        self._cond = threading.Condition()
        self._closing = False
        self._seconds: deque[float] = deque(maxlen=20)
        #: Bumped on every change of any job: watchers compare it to see whether to look again.
        self.version = 0
        self._listeners: set[Callable[[], None]] = set()
        self._thread = threading.Thread(target=self._loop, name=f"lav-serve-{name}", daemon=True)
        self._thread.start()

    # --- the API's side ------------------------------------------------------------------------
    def submit(self, payload: Any) -> Job:
        with self._cond:
            if self._closing:
                raise QueueFull("the server is shutting down", retry_after=5)
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(
                    f"the queue is full ({self.max_queue} jobs waiting); try again later",
                    retry_after=self._retry_after(),
                )
            job = Job(id=uuid.uuid4().hex, payload=payload)
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._forget_old()
            self._changed()
            return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a waiting job at once, a running one when its model call returns."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None or job.state in TERMINAL:
                return job
            if job.state == "queued":
                self._waiting.remove(job)
                self._end(job, "cancelled")
            else:
                job.cancel_requested = True
                self._changed()
            return job

    def cancel_if_queued(self, job_id: str) -> None:
        """Cancel the job if it has not started (its client went away)."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is not None and job.state == "queued":
                self._waiting.remove(job)
                self._end(job, "cancelled")

    def snapshot(self, job: Job) -> dict[str, Any]:
        """The job as the API shows it: state, stage, place in the queue, error, result id."""
        with self._cond:
            out: dict[str, Any] = {"id": job.id, "state": job.state, "stage": job.stage}
            if job.state == "queued":
                out["position"] = self._waiting.index(job) + 1
                out["ahead"] = out["position"] - 1 + (self._running is not None)
            if job.cancel_requested and job.state == "running":
                out["cancelling"] = True
            if job.error is not None:
                out["error"] = job.error
            if job.state == "done":
                out["result"] = job.id
            if job.started is not None:
                out["waited_s"] = round(job.started - job.created, 3)
            if job.finished is not None and job.started is not None:
                out["ran_s"] = round(job.finished - job.started, 3)
            return out

    def counts(self) -> dict[str, Any]:
        with self._cond:
            return {
                "waiting": len(self._waiting),
                "running": self._running is not None,
                "max": self.max_queue,
            }

    def listen(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` on every change of any job (under the queue's lock: it must only
        signal, e.g. ``loop.call_soon_threadsafe(event.set)``); returns the function that stops it."""
        with self._cond:
            self._listeners.add(callback)

        def stop() -> None:
            with self._cond:
                self._listeners.discard(callback)

        return stop

    def wait_version(self, seen: int, timeout: float) -> int:
        """Block until `version` differs from ``seen`` (or ``timeout`` s pass); returns it."""
        with self._cond:
            self._cond.wait_for(lambda: self.version != seen, timeout)
            return self.version

    def close(self, timeout: float | None = None) -> bool:
        """Cancel the waiting jobs, let the running one finish; True if the worker stopped in time."""
        with self._cond:
            self._closing = True
            while self._waiting:
                self._end(self._waiting.popleft(), "cancelled", "the server is shutting down")
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- the worker's side ---------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._waiting or self._closing)
                if not self._waiting:
                    return
                job = self._waiting.popleft()
                job.state, job.stage, job.started = "running", "preparing", time.monotonic()
                self._running = job
                self._changed()
            self._run(job)

    def _run(self, job: Job) -> None:
        def progress(stage: str) -> None:
            with self._cond:
                job.stage = stage
                self._changed()

        output, error = None, None
        try:
            output = self._work(job.payload, progress)
        except LavError as exc:
            error = " ".join(str(exc).split())
        except MemoryError:
            error = "out of memory; try a smaller image"
        except Exception:  # a bug: logged in full here, one line to the client
            log.exception("job %s failed", job.id)
            error = "internal error while analysing; the server log has the details"
        with self._cond:
            self._running = None
            self._seconds.append(time.monotonic() - (job.started or job.created))
            job.payload = None  # the image: not kept once used
            if job.cancel_requested:
                self._end(job, "cancelled")
            elif error is not None:
                self._end(job, "failed", error)
            else:
                job.output = output
                self._end(job, "done")
                self._forget_old()

    # --- under the lock ------------------------------------------------------------------------
    def _end(self, job: Job, state: str, error: str | None = None) -> None:
        job.state, job.stage, job.error, job.finished = state, state, error, time.monotonic()
        job.payload = None
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._cond.notify_all()
        for callback in tuple(self._listeners):
            callback()

    def _retry_after(self) -> int:
        # A place frees when the running job ends: about one job's time (the median of the last ones).
        per_job = sorted(self._seconds)[len(self._seconds) // 2] if self._seconds else 5.0
        return max(1, math.ceil(per_job))

    def _forget_old(self) -> None:
        done = [j for j in self._jobs.values() if j.state in TERMINAL]
        for job in done[: max(0, len(self._jobs) - self._keep)]:
            del self._jobs[job.id]
        if self._max_bytes is None:
            return
        # Oldest first, the newest output always stays (its client is about to fetch it).
        held = [j for j in self._jobs.values() if j.output is not None]
        total = sum(_nbytes(j.output) for j in held)
        for job in held[:-1]:
            if total <= self._max_bytes:
                break
            total -= _nbytes(job.output)
            job.output = None
            job.dropped = True


def _nbytes(output: Any) -> int:
    return int(getattr(output, "nbytes", 0))
