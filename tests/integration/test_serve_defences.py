"""`lav serve` against hostile pages and hostile ``--results`` roots.

Each test is a finding of an adversarial pass on the old server: a FIFO under the root hung
`/api/browse` (and then every request) for good; one deeply nested result.json made `/api/browse`
answer 500; any web page could post jobs (no Host/Origin check); 500 answers had no security
headers; a chunked upload over the limit was 400 naming an internal class; finished jobs and opened
results kept full-resolution images without bound; SIGTERM waited for whatever a handler was doing.
The results are `lav demo`'s real output, saved by the real command.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lav import Result
from lav.checks import validate_request
from lav.cli import main
from lav.serve.app import DISPLAY_SIDE, SECURITY_HEADERS, create_app
from lav.serve.results import encode_id

LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--out", str(out)]) == 0
    return out


def _tree(tmp_path, demo_result) -> Path:
    root = tmp_path / "root"
    shutil.copytree(demo_result, root / "good")
    return root


def _release(fifo: Path) -> None:
    """Open the FIFO's other end, so a reader stuck on it (the old server) gets EOF and the test ends."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # no reader waiting
    os.close(fd)


def _get_within(client, path, seconds=30):
    box: dict = {}

    def go():
        box["r"] = client.get(path)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(seconds)
    return box.get("r")


# --- the results root -----------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("fifo_name", ["summary.json", "samples.jsonl"])
def test_a_fifo_under_results_fails_its_own_entry_and_nothing_hangs(tmp_path, demo_result, fifo_name):
    root = _tree(tmp_path, demo_result)
    ev = root / "ev"
    ev.mkdir()
    (ev / "summary.json").write_text('{"n": 1, "accuracy": 1.0}')
    (ev / "samples.jsonl").write_text('{"id": "a", "correct": true}\n')
    os.remove(ev / fifo_name)
    os.mkfifo(ev / fifo_name)
    try:
        with TestClient(create_app(None, [root]), base_url=LOCAL) as c:
            r = _get_within(c, "/api/browse")
            assert r is not None, "/api/browse hung on a FIFO"
            assert r.status_code == 200
            body = r.json()
            assert [x["path"] for x in body["results"]] == ["good"]
            [row] = body["evals"]
            if fifo_name == "summary.json":
                assert "named pipe" in row["error"]
            r = _get_within(c, f"/api/evals/{row['id']}")
            assert r is not None, "/api/evals hung on a FIFO"
            if fifo_name == "samples.jsonl":
                assert r.status_code == 404 and "named pipe" in r.json()["error"]
            assert _get_within(c, "/api/health").status_code == 200
    finally:
        _release(ev / fifo_name)


def test_a_deeply_nested_result_json_fails_only_its_own_row(tmp_path, demo_result):
    root = _tree(tmp_path, demo_result)
    shutil.copytree(demo_result, root / "deep")
    (root / "deep" / "result.json").write_text("[" * 100_000 + "]" * 100_000)
    with TestClient(create_app(None, [root]), base_url=LOCAL) as c:
        r = c.get("/api/browse")
        assert r.status_code == 200, r.text
        rows = {x["path"]: x for x in r.json()["results"]}
        assert "error" not in rows["good"] and rows["good"]["instruction"]
        assert "nested deeper" in rows["deep"]["error"]
        r = c.get(f"/api/results/{rows['deep']['id']}")
        assert r.status_code == 404 and "nested deeper" in r.json()["error"]
        assert c.get(f"/api/results/{rows['good']['id']}").status_code == 200


# --- hostile pages --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "base_url, headers",
    [
        ("http://rebind.attacker.example", {}),  # DNS rebinding: the name now points to 127.0.0.1
        (LOCAL, {"origin": "http://attacker.example"}),  # a page elsewhere posting to the server
        (LOCAL, {"origin": "null"}),  # a sandboxed frame or a file:// page
        (LOCAL, {"host": "127.0.0.1.attacker.example"}),
    ],
)
def test_requests_for_another_host_or_from_another_origin_are_403(tmp_path, demo_result, base_url, headers):
    root = _tree(tmp_path, demo_result)
    with TestClient(create_app(None, [root]), base_url=base_url) as c:
        for method, path in (("GET", "/api/browse"), ("POST", "/api/analyze"), ("GET", "/")):
            r = c.request(method, path, headers=headers)
            assert r.status_code == 403, (method, path, r.text)
            assert "--allow-origin" in r.json()["error"]
            assert r.headers["content-security-policy"] == SECURITY_HEADERS["content-security-policy"]


def test_the_servers_own_address_and_allowed_origins_pass(tmp_path, demo_result):
    root = _tree(tmp_path, demo_result)
    hosts = ["127.0.0.1:8765", "localhost:8765", "[::1]:8765"]
    app = create_app(None, [root], hosts=hosts, allow_origins=["http://viz.lab:8765"])
    for base, origin, status in [
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765", 200),
        ("http://localhost:8765", None, 200),
        ("http://viz.lab:8765", "http://viz.lab:8765", 200),
        ("http://127.0.0.1:8765", "http://localhost:3000", 403),  # another local page
        ("http://127.0.0.1:9999", None, 403),  # the same name, another port
    ]:
        with TestClient(app, base_url=base) as c:
            r = c.get("/api/browse", headers={"origin": origin} if origin else {})
            assert r.status_code == status, (base, origin, r.text)


# --- errors ---------------------------------------------------------------------------------------
class Stub:
    """A worker that hands out ``result`` with the uploaded image (sizes are the upload's own)."""

    max_pixels = 64_000_000

    def __init__(self, result: Result | None = None, broken: bool = False) -> None:
        self.result = result
        self.broken = broken

    def describe(self):
        if self.broken:
            raise RuntimeError("a bug")
        return {"model": "stub", "adapter": None, "has_adapter": True, "family": "test"}

    def check(self, instruction, response, compare_base, maps=None):
        validate_request(instruction, response)

    def __call__(self, req, report):
        import dataclasses

        base = dataclasses.replace(self.result.base, image=req.image)
        return dataclasses.replace(self.result, image=req.image, base=base)


def test_a_500_carries_the_security_headers():
    app = create_app(Stub(broken=True))
    with TestClient(app, base_url=LOCAL, raise_server_exceptions=False) as c:
        r = c.get("/api/health")
    assert r.status_code == 500 and r.json() == {"error": "internal error; the server log has the details"}
    for key, value in SECURITY_HEADERS.items():
        assert r.headers[key] == value


def test_a_chunked_upload_over_the_limit_is_413(demo_result):
    app = create_app(Stub(Result.load(demo_result)), max_upload=64 * 1024)
    boundary = "lavboundary"

    def body():  # a generator: sent chunked, without a Content-Length
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="s.png"\r\n\r\n'.encode()
        for _ in range(64):
            yield b"\0" * 16384
        yield f"\r\n--{boundary}--\r\n".encode()

    with TestClient(app, base_url=LOCAL) as c:
        r = c.post(
            "/api/analyze",
            content=body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
    assert r.status_code == 413, r.text
    assert "larger than" in r.json()["error"] and "_TooLarge" not in r.text


# --- memory ---------------------------------------------------------------------------------------
def _png(w, h) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (40, 90, 160)).save(buf, format="PNG")
    return buf.getvalue()


def _analyse(c, data: bytes) -> str:
    r = c.post(
        "/api/analyze",
        files={"image": ("s.png", data, "image/png")},
        data={"instruction": "Click the Save button", "compare_base": "true"},
    )
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    while (snap := c.get(f"/api/jobs/{job}").json())["state"] not in ("done", "failed"):
        threading.Event().wait(0.02)
    assert snap["state"] == "done", snap
    return job


def test_finished_jobs_hold_display_size_images_within_the_byte_budget(demo_result):
    budget = 48 * 1024 * 1024
    app = create_app(Stub(Result.load(demo_result)), cache_bytes=budget)
    big = _png(6000, 3000)  # 54 MB decoded as RGB, a few kB as PNG
    with TestClient(app, base_url=LOCAL) as c:
        jobs = [_analyse(c, big) for _ in range(6)]
        queue = app.state.queue
        held = [queue.get(j).output for j in jobs if queue.get(j).output is not None]
        assert held and sum(s.nbytes for s in held) <= budget // 2
        assert all(max(s.result.image.size) <= DISPLAY_SIDE for s in held)
        last = jobs[-1]
        record = c.get(f"/api/results/{last}").json()
        assert record["image_size"] == [6000, 3000]  # the record keeps the original's size
        shown = Image.open(io.BytesIO(c.get(f"/api/results/{last}/image").content))
        assert shown.size == (DISPLAY_SIDE, DISPLAY_SIDE // 2)
        # The download is the full result, the screenshot at its own size.
        with zipfile.ZipFile(io.BytesIO(c.get(f"/api/results/{last}/download").content)) as zf:
            assert Image.open(io.BytesIO(zf.read("result/image.png"))).size == (6000, 3000)
            assert json.loads(zf.read("result/result.json"))["image_size"] == [6000, 3000]
        dropped = next(j for j in jobs if queue.get(j).output is None)
        r = c.get(f"/api/results/{dropped}")
        assert r.status_code == 404 and "dropped to make room" in r.json()["error"]


def test_opened_saved_results_are_cached_small_and_within_the_budget(tmp_path, demo_result):
    root = tmp_path / "root"
    for i in range(6):
        shutil.copytree(demo_result, root / f"r{i}")
    with TestClient(create_app(None, [root]), base_url=LOCAL) as c:
        assert c.get(f"/api/results/{encode_id('r', 0, 'r0')}").status_code == 200
        one = c.app.state.results_cache.nbytes
    budget = 2 * (5 * one // 2)  # half of it (the results' share) holds two and a half
    app = create_app(None, [root], cache_bytes=budget)
    with TestClient(app, base_url=LOCAL) as c:
        for i in range(6):
            assert c.get(f"/api/results/{encode_id('r', 0, f'r{i}')}").status_code == 200
        cached = app.state.results_cache
        assert len(cached) == 2 and cached.nbytes <= budget // 2


# --- SIGTERM --------------------------------------------------------------------------------------
SERVER = """
import socket, sys, time
from lav.serve.app import create_app
from lav.cli.serve import _serve

class Stuck:
    max_pixels = 64_000_000
    def describe(self): return None
    def check(self, *a, **k): pass
    def __call__(self, req, report):
        time.sleep(600)  # a model call that cannot be interrupted

sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen(8)
print(sock.getsockname()[1], flush=True)
_serve(create_app(Stuck()), sock, "127.0.0.1")
"""


def test_sigterm_ends_the_server_while_a_job_cannot_stop(tmp_path):
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        port = int(proc.stdout.readline())
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(url + "/api/health", timeout=5)
                break
            except httpx.TransportError:
                threading.Event().wait(0.05)
        r = httpx.post(
            url + "/api/analyze",
            files={"image": ("s.png", _png(32, 32), "image/png")},
            data={"instruction": "Click"},
            timeout=10,
        )
        assert r.status_code == 202, r.text
        while httpx.get(f"{url}/api/jobs/{r.json()['id']}", timeout=5).json()["state"] == "queued":
            threading.Event().wait(0.05)
        proc.send_signal(signal.SIGTERM)
        # A generous bound: the old server waited for the job (600 s here).
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert code == 128 + signal.SIGTERM, err
    assert "lav: stopped" in err and "still running" in err and "Traceback" not in err
