"""The web app of `lav serve`: the JSON API, the progress stream and the bundled page.

`create_app` builds everything from its arguments and keeps it on ``app.state`` (no module-level
state): a `JobQueue` in front of the model when there is one, the ``--results`` folders when there
are some. Every response carries a Content-Security-Policy that lets the page load nothing but its
own files and talk to nothing but this server. Every error is ``{"error": message}``; a bug is
logged here and answered with one line, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import logging
import os
import re
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .. import __version__
from ..checks import split_names
from ..errors import LavError
from ..result import Result
from ..safeopen import read_regular
from .jobs import TERMINAL, JobQueue, QueueFull
from .model import Upload, decode_upload
from .results import PathRefused, Roots, decode_id

log = logging.getLogger("lav.serve")

STATIC = Path(__file__).parent / "static"
#: Largest upload: the image file (and the multipart body around it, plus a little for the text).
MAX_UPLOAD = 20 * 1024 * 1024
_FORM_SLACK = 256 * 1024
#: Memory for finished jobs' results and opened saved results together (``--cache-mb``), in bytes.
CACHE_BYTES = 512 * 1024 * 1024
#: Longest side of the screenshot kept and served for the page (the maps are far coarser).
DISPLAY_SIDE = 2560
#: Host names that mean this machine: requests naming any other host are refused (DNS rebinding).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
#: The page may load its own files only, and talk to this server only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_JOB_ID = re.compile(r"[0-9a-f]{32}")
#: Longest wait between two looks at a job when no change woke the stream (heartbeat, shutdown).
_SSE_POLL_S = 1.0
_SSE_HEARTBEAT_S = 15.0


class ApiError(HTTPException):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)


class _Served:
    """A result the API hands out, made once and kept small: the record, the arrays, a display-size PNG.

    The full-resolution screenshot is not kept (a 7900x7900 upload decodes to 187 MB): the record is
    made from it first (``image_size`` stays the original's), then ``result`` keeps a copy no larger
    than `DISPLAY_SIDE`, which is what the page draws. A job's download is rebuilt from its upload's
    compressed bytes, a saved folder's from its files. ``nbytes`` is what it holds in memory.
    """

    def __init__(
        self,
        result: Result,
        folder: Path | None = None,
        upload: bytes | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.record = result.to_dict()
        self.arrays = result.arrays()
        small = _display_image(result.image)
        buf = io.BytesIO()
        small.save(buf, format="PNG")
        self.png = buf.getvalue()
        self.result = _with_image(result, small)
        self.folder = folder
        self.upload = upload
        self.max_pixels = max_pixels
        self.nbytes = (
            sum(a.nbytes for a in self.arrays.values())
            + len(self.png)
            + len(upload or b"")
            + small.width * small.height * 3
            + len(json.dumps(self.record, default=str))
        )

    def full(self) -> Result:
        """The result with its original screenshot (decoded again from the upload)."""
        if self.upload is None or self.max_pixels is None:
            return self.result
        return _with_image(self.result, decode_upload(self.upload, self.max_pixels))


def _display_image(image: Image.Image) -> Image.Image:
    w, h = image.size
    k = DISPLAY_SIDE / max(w, h)
    if k >= 1:
        return image.copy()
    return image.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.LANCZOS)


def _with_image(result: Result, image: Image.Image) -> Result:
    base = None if result.base is None else dataclasses.replace(result.base, image=image)
    return dataclasses.replace(result, image=image, base=base)


class _Cache:
    """Opened saved results by id, the least recently used dropped beyond ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[object, _Served]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(s.nbytes for _, s in self._items.values())

    def get(self, key: str, stamp: object) -> _Served | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None or hit[0] != stamp:
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, key: str, stamp: object, served: _Served) -> None:
        with self._lock:
            self._items[key] = (stamp, served)
            self._items.move_to_end(key)
            total = sum(s.nbytes for _, s in self._items.values())
            while total > self.max_bytes and len(self._items) > 1:
                _, (_, old) = self._items.popitem(last=False)
                total -= old.nbytes


#: Sent with every answer, errors and 500s included.
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}


class _Headers:
    """Pure ASGI middleware (streams pass through untouched): security headers on every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _TooLarge(Exception):
    pass


class _SameHost:
    """403 for a request whose ``Host`` or ``Origin`` is not this server (DNS rebinding, other pages).

    A page on any site can send requests to a loopback server, and a host name an attacker controls
    can be re-pointed to 127.0.0.1 so the browser treats the server as that site. Both show in the
    headers: ``Origin`` names the page's site, ``Host`` the name the browser resolved. ``hosts``: the
    ``host:port`` values accepted (None: the loopback names on any port); ``origins``: more
    ``scheme://host:port`` values accepted (``--allow-origin``).
    """

    def __init__(self, app: Any, hosts: frozenset[str] | None, origins: frozenset[str]) -> None:
        self.app = app
        self.hosts = hosts
        self.origins = origins

    def _host_ok(self, host: str) -> bool:
        if self.hosts is not None:
            return host in self.hosts or any(o.split("://", 1)[1] == host for o in self.origins)
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in LOOPBACK_NAMES or any(o.split("://", 1)[1] == host for o in self.origins)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        host = headers.get(b"host", b"").decode("latin-1").lower()
        origin = headers.get(b"origin")
        problem = None
        if not self._host_ok(host):
            problem = f"requests for host {host[:80]!r} are refused"
        elif origin is not None:
            text = origin.decode("latin-1").lower()
            if text not in self.origins and not (
                text.startswith("http://") and self._host_ok(text[len("http://") :])
            ):
                problem = f"requests from pages of {text[:80]!r} are refused"
        if problem is None:
            return await self.app(scope, receive, send)
        body = json.dumps(
            {
                "error": f"{problem}: this server answers its own address only; start lav serve with "
                "--allow-origin to name another"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyLimit:
    """413 for a request body over the limit, by its Content-Length or while it streams in."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        for key, value in scope.get("headers", []):
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await _too_large(send, self.limit)
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _too_large(send, self.limit)


async def _too_large(send, limit: int) -> None:
    body = json.dumps(
        {"error": f"the upload is larger than {limit // (1024 * 1024)} MB; send a smaller image"}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


def create_app(
    worker: Any = None,
    results: Sequence[str | Path] = (),
    *,
    max_queue: int = 8,
    max_upload: int = MAX_UPLOAD,
    keep_results: int = 32,
    shutdown_timeout: float | None = None,
    cache_bytes: int = CACHE_BYTES,
    hosts: Sequence[str] | None = None,
    allow_origins: Sequence[str] = (),
) -> FastAPI:
    """The `lav serve` app.

    ``worker``: what analyses a job (`lav.serve.model.ModelWorker`, or anything with its
    ``check``, ``describe``, ``max_pixels`` and call), or None to only browse ``results`` (folders of
    saved results and `lav eval` outputs). ``max_queue``: jobs waiting at most (503 beyond);
    ``max_upload``: the largest image file in bytes (413 beyond); ``keep_results``: finished jobs whose
    results stay available; ``shutdown_timeout``: seconds to wait for the running job at shutdown;
    ``cache_bytes``: memory for finished jobs' results and opened saved results (half each);
    ``hosts``: the ``host:port`` values requests may name (None: the loopback names, any port);
    ``allow_origins``: more origins (``http://name:port``) whose pages and host names are let in.
    """
    roots = Roots(list(results)) if results else None
    queue = None
    if worker is not None:

        def work(req: Upload, progress) -> _Served:
            # Made small in the worker thread: the full-resolution image goes with the Result.
            return _Served(worker(req, progress), upload=req.upload, max_pixels=worker.max_pixels)

        queue = JobQueue(work, max_queue=max_queue, keep=keep_results, max_bytes=cache_bytes // 2)
    stopping = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        stopping.set()
        if queue is not None:
            # The running job is finished (its client gets its result); the waiting ones are cancelled.
            finished = await run_in_threadpool(queue.close, shutdown_timeout)
            app.state.job_left_running = not finished

    app = FastAPI(
        title="lav serve",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.queue = queue
    app.state.roots = roots
    app.state.worker = worker
    app.state.stopping = stopping
    app.state.job_left_running = False
    saved = _Cache(cache_bytes // 2)
    app.state.results_cache = saved

    def begin_shutdown() -> None:
        """Called on SIGTERM / Ctrl-C before the server drains: progress streams end, nothing new queues."""
        stopping.set()
        if queue is not None:
            queue.close(timeout=0)

    app.state.begin_shutdown = begin_shutdown

    # --- errors -----------------------------------------------------------------------------------
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such page or API route: {request.url.path}"
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"error": "the request is malformed; see the README's API section"}, status_code=400
        )

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("error on %s %s", request.method, request.url.path, exc_info=exc)
        # Sent by Starlette's outermost middleware, past `_Headers`: the headers go on here.
        return JSONResponse(
            {"error": "internal error; the server log has the details"},
            status_code=500,
            headers=SECURITY_HEADERS,
        )

    # --- the page ---------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(
            STATIC / "index.html", media_type="text/html", headers={"cache-control": "no-cache"}
        )

    app.mount("/static", StaticFiles(directory=STATIC, follow_symlink=False), name="static")

    # --- the API ----------------------------------------------------------------------------------
    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "stopping" if stopping.is_set() else "ok",
            "version": __version__,
            "model": worker.describe() if worker is not None else None,
            "queue": queue.counts() if queue is not None else None,
            "results": []
            if roots is None
            else [{"index": i, "name": p.name} for i, p in enumerate(roots.roots)],
            "max_upload": max_upload,
        }

    @app.post("/api/analyze", status_code=202)
    async def analyze(request: Request) -> dict[str, str]:
        if queue is None:
            raise ApiError(
                409,
                "this server has no model (it was started with --results only); start lav serve with --model to analyse",
            )
        try:
            # Fields: instruction, response, compare_base and maps (one per name, or one comma-separated).
            form = await request.form(max_files=2, max_fields=16, max_part_size=64 * 1024)
        except (HTTPException, _TooLarge):
            raise  # _TooLarge: a chunked body over the limit, answered 413 by `_BodyLimit`
        except Exception as exc:  # the multipart parser's own errors: a malformed body
            raise ApiError(
                400, f"the request is not a readable multipart form ({type(exc).__name__})"
            ) from None
        try:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise ApiError(400, "no image: send the screenshot as the multipart file field 'image'")
            data = await upload.read(max_upload + 1)
            if len(data) > max_upload:
                raise ApiError(
                    413, f"the image is larger than {max_upload // (1024 * 1024)} MB; send a smaller one"
                )
            instruction = form.get("instruction")
            if not isinstance(instruction, str):
                raise ApiError(400, "no instruction: send it as the form field 'instruction'")
            response = form.get("response")
            if response is not None and not isinstance(response, str):
                raise ApiError(400, "the response must be a text field")
            response = response if response and response.strip() else None
            compare_base = _flag(form.get("compare_base"))
            maps = _map_names(form.getlist("maps"))
        finally:
            await form.close()
        try:
            worker.check(instruction, response, compare_base, maps=maps)
            image = await run_in_threadpool(decode_upload, data, worker.max_pixels)
        except LavError as exc:
            raise ApiError(400, _one_line(exc)) from None
        try:
            job = queue.submit(Upload(image, instruction, response, compare_base, maps, upload=data))
        except QueueFull as exc:
            raise ApiError(503, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
        return {"id": job.id}

    def _job(job_id: str):
        job = queue.get(job_id) if queue is not None and _JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise ApiError(404, f"no job {job_id!r} (unknown, or finished long ago)")
        return job

    @app.get("/api/jobs/{job_id}")
    async def job_status(job_id: str) -> dict[str, Any]:
        return queue.snapshot(_job(job_id))

    @app.delete("/api/jobs/{job_id}")
    async def job_cancel(job_id: str) -> dict[str, Any]:
        job = _job(job_id)
        queue.cancel(job_id)
        return queue.snapshot(job)

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request) -> StreamingResponse:
        job = _job(job_id)

        async def stream() -> AsyncIterator[str]:
            last: dict[str, Any] | None = None
            beat = time.monotonic()
            # Woken by the queue on every change (no polling delay); the timeout keeps the
            # heartbeat and the shutdown check going while nothing changes.
            loop = asyncio.get_running_loop()
            changed = asyncio.Event()

            def wake() -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(changed.set)

            unlisten = queue.listen(wake)
            try:
                yield "retry: 2000\n\n"
                while True:
                    changed.clear()
                    snap = queue.snapshot(job)
                    if snap != last:
                        last = snap
                        beat = time.monotonic()
                        yield f"event: {'end' if snap['state'] in TERMINAL else 'stage'}\ndata: {json.dumps(snap)}\n\n"
                    if snap["state"] in TERMINAL:
                        return
                    if stopping.is_set() and snap["state"] == "queued":
                        return
                    if time.monotonic() - beat > _SSE_HEARTBEAT_S:
                        beat = time.monotonic()
                        yield ": still here\n\n"
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(changed.wait(), _SSE_POLL_S)
            finally:
                unlisten()
                # The watcher went away (closed tab, dropped connection): its waiting job goes too.
                if job.state == "queued":
                    queue.cancel_if_queued(job.id)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    def _served(result_id: str) -> _Served:
        if _JOB_ID.fullmatch(result_id):
            job = queue.get(result_id) if queue is not None else None
            if job is None:
                raise ApiError(
                    404, f"no result {result_id!r} (unknown, or dropped to make room for newer ones)"
                )
            if job.state != "done":
                raise ApiError(404, f"job {result_id} has no result: it is {job.state}")
            if job.output is None:
                raise ApiError(404, f"the result of job {result_id} was dropped to make room for newer ones")
            return job.output
        decoded = decode_id(result_id)
        if decoded is None or decoded[0] != "r" or roots is None:
            raise ApiError(404, f"no result {result_id!r}")
        _, root, rel = decoded
        try:
            folder = roots.result_folder(root, rel)
            stamp = roots.stamp(folder)
            hit = saved.get(result_id, stamp)
            if hit is not None:
                return hit
            served = _Served(roots.load(root, rel), folder)
        except PathRefused as exc:
            raise ApiError(404, f"no result {result_id!r}: {exc}") from None
        except LavError as exc:
            raise ApiError(404, _one_line(exc)) from None
        saved.put(result_id, stamp, served)
        return served

    @app.get("/api/results/{result_id}")
    async def result_record(result_id: str) -> JSONResponse:
        served = await run_in_threadpool(_served, result_id)
        return JSONResponse(served.record)

    @app.get("/api/results/{result_id}/maps/{name}")
    async def result_map(result_id: str, name: str) -> Response:
        served = await run_in_threadpool(_served, result_id)
        key = name[:-4] if name.endswith(".npy") else name
        arrays = served.arrays
        if key not in arrays:
            raise ApiError(404, f"this result has no array {key!r}; it has {', '.join(sorted(arrays))}")
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
        return Response(
            buf.getvalue(),
            media_type="application/octet-stream",
            headers={"content-disposition": f'attachment; filename="{key}.npy"'},
        )

    @app.get("/api/results/{result_id}/image")
    async def result_image(result_id: str) -> Response:
        served = await run_in_threadpool(_served, result_id)
        return Response(served.png, media_type="image/png")

    @app.get("/api/results/{result_id}/download")
    async def result_download(result_id: str) -> Response:
        served = await run_in_threadpool(_served, result_id)
        data = await run_in_threadpool(_zip, served, roots)
        return Response(
            data,
            media_type="application/zip",
            headers={"content-disposition": f'attachment; filename="lav-result-{result_id[:40]}.zip"'},
        )

    @app.get("/api/browse")
    async def browse() -> dict[str, Any]:
        if roots is None:
            return {"roots": [], "results": [], "evals": []}
        return await run_in_threadpool(roots.listing)

    @app.get("/api/evals/{eval_id}")
    async def evaluation(eval_id: str) -> JSONResponse:
        decoded = decode_id(eval_id)
        if decoded is None or decoded[0] != "e" or roots is None:
            raise ApiError(404, f"no evaluation {eval_id!r}")
        _, root, rel = decoded
        try:
            data = await run_in_threadpool(roots.evaluation, root, rel)
        except LavError as exc:
            raise ApiError(404, f"no evaluation {eval_id!r}: {_one_line(exc)}") from None
        return JSONResponse(data)

    app.add_middleware(_BodyLimit, limit=max_upload + _FORM_SLACK)
    app.add_middleware(
        _SameHost,
        hosts=None if hosts is None else frozenset(h.lower() for h in hosts),
        origins=frozenset(o.lower().rstrip("/") for o in allow_origins),
    )
    app.add_middleware(_Headers)
    return app


def _zip(served: _Served, roots: Roots | None) -> bytes:
    """The result folder as a zip: the saved folder's own files, or a fresh `Result.save` of a job's."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if served.folder is not None:
            for dirpath, dirnames, filenames in os.walk(served.folder, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".lav-tmp"))
                for name in sorted(filenames):
                    path = Path(dirpath) / name
                    # Only real files inside the folder: a link could point anywhere, a FIFO block.
                    if path.is_symlink() or not path.is_file():
                        continue
                    try:
                        data = read_regular(path)
                    except (OSError, LavError):
                        continue  # swapped for something else since the walk
                    zf.writestr("result/" + path.relative_to(served.folder).as_posix(), data)
        else:
            with tempfile.TemporaryDirectory(prefix="lav-serve-") as tmp:
                out = served.full().save(Path(tmp) / "result")
                for path in sorted(out.rglob("*")):
                    if path.is_file():
                        zf.write(path, "result/" + path.relative_to(out).as_posix())
    return buf.getvalue()


def _flag(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "on", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("", "0", "false", "off", "no"):
        return False
    raise ApiError(400, f"compare_base must be true or false, got {str(value)[:40]!r}")


def _map_names(values: list[Any]) -> tuple[str, ...] | None:
    """``maps`` fields: each a method name or comma-separated names; None when none is given."""
    if not all(isinstance(v, str) for v in values):
        raise ApiError(400, "maps must be text fields naming map methods, e.g. focus_sink_masked")
    names = tuple(n for v in values for n in split_names(v))
    return names or None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
