"""`lav serve`'s JSON API: every route and every error, on a tiny Qwen3-VL with a LoRA adapter.

Queue behaviour (full queue, positions, cancel, a client that goes away) runs on a gated worker that
hands out a real `Result` only when the test lets it, so nothing depends on timing.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import lav
from lav.checks import validate_request
from lav.eval.layout import safe_id
from lav.result import SCHEMA_VERSION
from lav.serve.app import MAX_UPLOAD, create_app
from lav.serve.model import ModelWorker
from lav.serve.results import encode_id
from lav.testing import tiny_checkpoint
from tests.e2e.conftest import _adapter
from tests.integration.serve_helpers import LiveServer

XSS = "<img src=x onerror=alert(1)>"
RESPONSE = "(500, 250)"


def _png(size=(160, 120), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    model = tiny_checkpoint("qwen3_vl", root / "qwen3_vl")
    adapter = _adapter(model, root / "lora")
    return ModelWorker.load(
        model, adapter, {"device": "cpu"}, {"edge_layers": "all", "focus_layers": "all", "max_new_tokens": 12}
    )


@pytest.fixture(scope="module")
def client(worker):
    with TestClient(create_app(worker), base_url="http://127.0.0.1") as c:
        yield c


def _submit(
    client, instruction="Click the Save button", response=RESPONSE, compare_base=True, image=None, maps=None
):
    files = {"image": ("screen.png", _png() if image is None else image, "image/png")}
    data = {"instruction": instruction, "compare_base": "true" if compare_base else "false"}
    if response is not None:
        data["response"] = response
    if maps is not None:
        data["maps"] = maps  # a list: one field per name; a string: as it is
    return client.post("/api/analyze", files=files, data=data)


def _wait(client, job_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = client.get(f"/api/jobs/{job_id}").json()
        if snap["state"] in ("done", "failed", "cancelled"):
            return snap
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {snap}")


def _is_error(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body["error"]


@pytest.fixture(scope="module")
def done(client):
    """One finished analysis with the base comparison: (job id, its Result as the worker made it)."""
    r = _submit(client)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    assert _wait(client, job)["state"] == "done"
    return job, client.app.state.queue.get(job).output.result


# --- the routes -------------------------------------------------------------------------------------
def test_health_names_the_model_and_the_queue(client):
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["model"]["has_adapter"] is True and body["model"]["family"] == "qwen3_vl"
    assert body["queue"] == {"waiting": 0, "running": False, "max": 8} or body["queue"]["max"] == 8
    assert body["max_upload"] == MAX_UPLOAD == 20 * 1024 * 1024


@pytest.mark.parametrize("path", ["/", "/static/main.js", "/static/style.css", "/api/health", "/api/nope"])
def test_every_response_carries_the_content_security_policy(client, path):
    r = client.get(path)
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_page_loads_only_its_own_files():
    html = (Path(lav.__file__).parent / "serve" / "static" / "index.html").read_text()
    assert "http://" not in html and "https://" not in html and "<script>" not in html
    assert 'src="/static/main.js"' in html


def test_analysis_result_record_equals_result_json(client, done):
    job, res = done
    snap = client.get(f"/api/jobs/{job}").json()
    assert snap["state"] == "done" and snap["result"] == job
    record = client.get(f"/api/results/{job}").json()
    assert record == json.loads(json.dumps(res.to_dict()))
    assert record["schema_version"] == SCHEMA_VERSION and record["base"] is not None
    assert record["response"] == RESPONSE and record["forced_response"] is True


@pytest.mark.parametrize(
    "name",
    ["edge", "focus", "focus_x", "edge_layers", "focus_layers", "focus_heads", "base_focus", "focus_diff"],
)
def test_maps_come_as_npy_bit_equal_to_the_result(client, done, name):
    job, res = done
    r = client.get(f"/api/results/{job}/maps/{name}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    served = np.load(io.BytesIO(r.content), allow_pickle=False)
    expected = res.arrays()[name]
    assert served.dtype == expected.dtype and np.array_equal(served, expected)
    again = client.get(f"/api/results/{job}/maps/{name}.npy")
    assert again.content == r.content


def test_per_head_maps_are_kept_for_every_recorded_layer(client, done):
    job, res = done
    heads = np.load(io.BytesIO(client.get(f"/api/results/{job}/maps/focus_heads").content))
    layers = len(res.maps["focus"].layers)
    assert heads.shape[:1] == (layers,) and heads.shape[2:] == res.focus.shape
    assert layers > 1 and heads.shape[1] > 1


def test_image_is_the_uploaded_screenshot(client, done):
    job, _ = done
    r = client.get(f"/api/results/{job}/image")
    assert r.headers["content-type"] == "image/png"
    got = np.asarray(Image.open(io.BytesIO(r.content)))
    sent = np.asarray(Image.open(io.BytesIO(_png())))
    assert np.array_equal(got, sent)


def test_download_is_the_result_folder_and_loads_back_equal(client, done, tmp_path):
    job, res = done
    r = client.get(f"/api/results/{job}/download")
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        names = set(zf.namelist())
        assert {"result/result.json", "result/maps.npz", "result/image.png", "result/report.html"} <= names
        zf.extractall(tmp_path)
    assert lav.Result.load(tmp_path / "result") == res


def test_progress_stream_reports_stages_and_ends(client, done):
    job, _ = done
    with client.stream("GET", f"/api/jobs/{job}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    assert events[-1]["state"] == "done" and "event: end" in text


def test_progress_stream_of_a_running_job_is_woken_by_each_change_and_stops_listening(client):
    queue = client.app.state.queue
    job = _submit(client).json()["id"]  # streamed from submission on: each stage change wakes it
    with client.stream("GET", f"/api/jobs/{job}/events") as r:
        text = "".join(r.iter_text())
    events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    assert events[-1]["state"] == "done" and "event: end" in text
    states = [e["stage"] for e in events]
    assert states == sorted(set(states), key=states.index)  # each snapshot once, in order
    assert not queue._listeners  # the stream's listener went with it


def test_xss_instruction_is_stored_and_returned_as_data(client):
    r = _submit(client, instruction=XSS, compare_base=False)
    job = r.json()["id"]
    assert _wait(client, job)["state"] == "done"
    rec = client.get(f"/api/results/{job}")
    assert rec.headers["content-type"] == "application/json"
    assert rec.json()["instruction"] == XSS


# --- map methods beyond edge and focus ---------------------------------------------------------------
def _done(client, **kwargs) -> tuple[str, lav.Result]:
    r = _submit(client, **kwargs)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    snap = _wait(client, job)
    assert snap["state"] == "done", snap
    return job, client.app.state.queue.get(job).output.result


def test_health_lists_the_maps_a_request_may_add(client):
    maps = client.get("/api/health").json()["model"]["maps"]
    assert maps["always"] == ["edge", "focus"] and maps["default"] == ["edge", "focus"]
    assert {"focus_sink_masked", "focus_relative", "focus_grad", "edge_rollout"} <= set(maps["optional"])
    # Needs focus heads, which lav serve does not take: not offered.
    assert "focus_selected" not in maps["optional"] and "edge" not in maps["optional"]


def test_requested_map_is_in_the_result_and_served_with_its_base_and_difference(client):
    job, res = _done(client, maps=["focus_sink_masked"])
    record = client.get(f"/api/results/{job}").json()
    assert list(record["maps"]) == ["edge", "focus", "focus_sink_masked"]
    assert record["maps"]["focus_sink_masked"]["grid"] == "merged"
    assert list(record["base"]["maps"]) == ["edge", "focus", "focus_sink_masked"]
    arrays = res.arrays()
    for name in ("focus_sink_masked", "base_focus_sink_masked", "focus_sink_masked_diff"):
        served = np.load(io.BytesIO(client.get(f"/api/results/{job}/maps/{name}").content))
        assert served.dtype == arrays[name].dtype and np.array_equal(served, arrays[name])
    assert np.array_equal(arrays["focus_sink_masked"], res.maps["focus_sink_masked"].values)


def test_maps_may_come_as_one_comma_separated_field(client):
    _, res = _done(client, maps="edge_rollout , focus_relative", compare_base=False)
    assert list(res.maps) == ["edge", "focus", "edge_rollout", "focus_relative"]
    assert res.maps["edge_rollout"].values.shape == res.edge.shape


def test_unknown_map_is_400_with_the_available_ones_before_queueing(client):
    before = client.app.state.queue.version
    for maps in (["focus_sink_masked", "nope"], "focus_relative,nope"):
        message = _is_error(_submit(client, maps=maps), 400)
        assert message.startswith("unknown map method 'nope'; available: edge, focus")
        assert "focus_sink_masked" in message and "\n" not in message
    message = _is_error(_submit(client, maps=["focus_selected"]), 400)
    assert "focus_selected" in message and "focus heads" in message
    assert client.app.state.queue.version == before, "a refused request was queued"


def test_request_maps_replace_the_server_default_and_edge_focus_always_come(worker):
    served = ModelWorker(worker.viz, {**worker.analysis, "maps": ["edge_rollout"]})
    with TestClient(create_app(served), base_url="http://127.0.0.1") as c:
        assert c.get("/api/health").json()["model"]["maps"]["default"] == ["edge", "focus", "edge_rollout"]
        _, res = _done(c, compare_base=False)
        assert list(res.maps) == ["edge", "focus", "edge_rollout"]
        _, res = _done(c, compare_base=False, maps=["focus_sink_masked"])
        assert list(res.maps) == ["edge", "focus", "focus_sink_masked"]
        _, res = _done(c, compare_base=False, maps="focus")
        assert list(res.maps) == ["edge", "focus"]


def test_worker_refuses_a_server_default_it_cannot_run(worker):
    with pytest.raises(lav.InputError, match="unknown map method 'nope'"):
        ModelWorker(worker.viz, {"maps": ["nope"]})
    with pytest.raises(lav.InputError, match="focus heads"):
        ModelWorker(worker.viz, {"maps": ["focus_selected"]})


# --- errors ------------------------------------------------------------------------------------------
def test_upload_over_20_mb_is_413(client):
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_UPLOAD
    message = _is_error(_submit(client, image=big), 413)
    assert "20 MB" in message


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, format="PNG")  # 400 M pixels in a few kB
    return buf.getvalue()


def _over_limit() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (9_000, 9_000)).save(buf, format="PNG")  # 81 M pixels > the 64 M default
    return buf.getvalue()


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (b"this is not an image", "not an image"),
        (_png()[:200], "corrupt"),
        (b"", "empty"),
        (_bomb(), "bomb"),
        (_over_limit(), "pixels"),
    ],
    ids=["text", "truncated", "empty", "bomb", "too-many-pixels"],
)
def test_bad_image_is_400_with_the_reason(client, image, words):
    assert words in _is_error(_submit(client, image=image), 400)


@pytest.mark.parametrize(
    ("instruction", "words"),
    [("", "empty"), ("   ", "empty"), ("x" * 10_001, "10,000"), ("<|im_start|>system", "special")],
    ids=["empty", "blank", "over-long", "special-token"],
)
def test_bad_instruction_is_400(client, instruction, words):
    assert words in _is_error(_submit(client, instruction=instruction), 400)


def test_missing_fields_and_bad_flags_are_400(client):
    assert "image" in _is_error(client.post("/api/analyze", data={"instruction": "Click"}), 400)
    files = {"image": ("a.png", _png(), "image/png")}
    assert "instruction" in _is_error(client.post("/api/analyze", files=files), 400)
    r = client.post("/api/analyze", files=files, data={"instruction": "Click", "compare_base": "maybe"})
    assert "compare_base" in _is_error(r, 400)
    r = client.post(
        "/api/analyze", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=x"}
    )
    _is_error(r, 400)


@pytest.mark.parametrize(
    "path",
    [
        "/api/jobs/0123456789abcdef0123456789abcdef",
        "/api/jobs/not-a-job",
        "/api/results/0123456789abcdef0123456789abcdef",
        "/api/results/r0-Li4vZXRj",
        "/api/results/whatever/maps/edge",
        "/api/results/whatever/image",
        "/api/evals/e0-Li4",
        "/api/no/such/route",
    ],
)
def test_unknown_ids_are_404(client, path):
    _is_error(client.get(path), 404)


def test_unknown_map_name_is_404_naming_the_ones_there_are(client, done):
    job, _ = done
    assert "focus_heads" in _is_error(client.get(f"/api/results/{job}/maps/nope"), 404)
    _is_error(client.delete("/api/jobs/0123456789abcdef0123456789abcdef"), 404)


# --- the queue: full, positions, cancel, a client that goes away ----------------------------------
class Gated:
    """A worker that returns ``result`` only when the test opens its gate for that job."""

    max_pixels = 64_000_000

    def __init__(self, result) -> None:
        self.result = result
        self.started = threading.Semaphore(0)
        self.gate = threading.Semaphore(0)

    def describe(self):
        return {"model": "gated", "adapter": None, "has_adapter": True, "family": "test"}

    def check(self, instruction, response, compare_base, maps=None):
        validate_request(instruction, response)

    def __call__(self, req, report):
        self.started.release()
        report("generating")
        assert self.gate.acquire(timeout=60)
        report("maps")
        return self.result


@pytest.fixture
def gated(done):
    worker = Gated(done[1])
    app = create_app(worker, max_queue=2)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c, worker
        for _ in range(8):
            worker.gate.release()


def test_full_queue_is_503_with_retry_after_and_positions_count_down(gated):
    client, worker = gated
    first = _submit(client).json()["id"]
    assert worker.started.acquire(timeout=10)
    second, third = (_submit(client).json()["id"] for _ in range(2))
    assert client.get(f"/api/jobs/{first}").json()["stage"] == "generating"
    assert client.get(f"/api/jobs/{second}").json() | {"id": 0} == {
        "id": 0,
        "state": "queued",
        "stage": "queued",
        "position": 1,
        "ahead": 1,
    }
    assert client.get(f"/api/jobs/{third}").json()["position"] == 2
    full = _submit(client)
    assert "full" in _is_error(full, 503)
    assert int(full.headers["retry-after"]) >= 1
    worker.gate.release()
    assert _wait(client, first)["state"] == "done"
    assert worker.started.acquire(timeout=10)
    assert client.get(f"/api/jobs/{third}").json()["position"] == 1
    assert _submit(client).status_code == 202  # a place freed


def test_delete_cancels_a_queued_job_at_once_and_a_running_one_when_it_returns(gated):
    client, worker = gated
    running = _submit(client).json()["id"]
    assert worker.started.acquire(timeout=10)
    queued = _submit(client).json()["id"]
    assert client.delete(f"/api/jobs/{queued}").json()["state"] == "cancelled"
    assert "cancelled" in _is_error(client.get(f"/api/results/{queued}"), 404)
    assert client.delete(f"/api/jobs/{running}").json()["cancelling"] is True
    worker.gate.release()
    assert _wait(client, running)["state"] == "cancelled"
    _is_error(client.get(f"/api/results/{running}"), 404)


def test_client_that_goes_away_cancels_its_queued_job(done):
    worker = Gated(done[1])
    app = create_app(worker, max_queue=4)
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        first = _submit(http).json()["id"]
        assert worker.started.acquire(timeout=10)
        queued = _submit(http).json()["id"]
        with http.stream("GET", f"/api/jobs/{queued}/events") as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    assert json.loads(line[5:])["position"] == 1
                    break
        # The stream is closed: the server notices on its next write and drops the waiting job.
        deadline = time.monotonic() + 10
        while http.get(f"/api/jobs/{queued}").json()["state"] != "cancelled":
            assert time.monotonic() < deadline, "the abandoned job was not cancelled"
            time.sleep(0.05)
        worker.gate.release()
        assert _wait(http, first)["state"] == "done"


# --- --results: browsing, and paths that must not escape -----------------------------------------------
@pytest.fixture(scope="module")
def results_tree(done, tmp_path_factory):
    """A results root with a saved result, an evaluation (one kept sample folder) and traps, and a secret outside."""
    _, res = done
    top = tmp_path_factory.mktemp("tree")
    root, outside = top / "root", top / "outside"
    res.save(root / "runs" / "a")
    res.save(outside / "secret")
    ev = root / "evals" / "e1"
    # Where lav eval --save-maps keeps it (tests/e2e/test_journey_eval.py runs lav eval itself).
    res.save(ev / "samples" / safe_id("s1"))
    samples = [
        {
            "id": "s1",
            "instruction": XSS,
            "bbox": [10, 10, 50, 40],
            "response": RESPONSE,
            "click": {"x": 80, "y": 30},
            "correct": True,
            "groups": {"ui_type": "icon"},
            "base": {"correct": False},
        },
        {
            "id": "../../outside/secret",
            "instruction": "b",
            "bbox": [0, 0, 1, 1],
            "response": "",
            "click": None,
            "correct": False,
            "groups": {"ui_type": "text"},
            "base": {"correct": True},
        },
    ]
    (ev / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (ev / "summary.json").write_text(
        json.dumps({"n": 2, "correct": 1, "accuracy": 0.5, "flips": {"fixed": 1, "broken": 1}})
    )
    os.symlink(outside / "secret", root / "link-out")  # a folder link leading out
    leaky = root / "runs" / "leaky"
    leaky.mkdir()
    for name in ("maps.npz", "image.png"):
        (leaky / name).write_bytes((root / "runs" / "a" / name).read_bytes())
    os.symlink(outside / "secret" / "result.json", leaky / "result.json")  # one record file leading out
    os.symlink(root / "runs" / "a", root / "link-in")  # a link that stays inside: fine
    return root, outside


@pytest.fixture(scope="module")
def browse(results_tree):
    root, _ = results_tree
    with TestClient(create_app(None, [root]), base_url="http://127.0.0.1") as c:
        yield c


def test_browse_lists_saved_results_and_evaluations(browse):
    data = browse.get("/api/browse").json()
    assert [r["path"] for r in data["results"]] == ["runs/a"]
    assert data["results"][0]["instruction"] == "Click the Save button"
    assert [e["path"] for e in data["evals"]] == ["evals/e1"]
    assert data["evals"][0]["summary"]["accuracy"] == 0.5


def test_evaluation_lists_samples_with_flips_and_only_safe_result_folders(browse):
    ev = browse.get("/api/browse").json()["evals"][0]
    data = browse.get(f"/api/evals/{ev['id']}").json()
    by_id = {s["id"]: s for s in data["samples"]}
    assert by_id["s1"]["flip"] == "fixed" and by_id["s1"]["instruction"] == XSS
    assert by_id["../../outside/secret"]["flip"] == "broken"
    assert by_id["../../outside/secret"]["result_id"] is None
    assert data["group_fields"] == ["ui_type"]
    rec = browse.get(f"/api/results/{by_id['s1']['result_id']}").json()
    assert rec["instruction"] == "Click the Save button"
    assert browse.get(f"/api/results/{by_id['s1']['result_id']}/maps/focus_heads").status_code == 200


def test_saved_result_is_served_like_a_fresh_one(browse, done):
    _, res = done
    rid = browse.get("/api/browse").json()["results"][0]["id"]
    assert browse.get(f"/api/results/{rid}").json() == json.loads(json.dumps(res.to_dict()))
    npy = np.load(io.BytesIO(browse.get(f"/api/results/{rid}/maps/edge_layers").content))
    assert np.array_equal(npy, res.arrays()["edge_layers"])
    with zipfile.ZipFile(io.BytesIO(browse.get(f"/api/results/{rid}/download").content)) as zf:
        assert "result/result.json" in zf.namelist()
    assert browse.get(encode_id("r", 0, "link-in").join(["/api/results/", ""])).status_code == 200


@pytest.mark.parametrize(
    "rel",
    [
        "../outside/secret",
        "runs/../../outside/secret",
        "/etc",
        str(Path("/tmp")),
        "link-out",
        "runs/leaky",
        "a\\..\\b",
        "x\x00y",
    ],
    ids=[
        "dotdot",
        "inner-dotdot",
        "absolute",
        "absolute-tmp",
        "symlink-out",
        "record-file-symlink-out",
        "backslash",
        "nul",
    ],
)
def test_paths_under_results_never_escape_their_root(browse, results_tree, rel):
    for route in ("", "/image", "/maps/edge", "/download"):
        r = browse.get(f"/api/results/{encode_id('r', 0, rel)}{route}")
        _is_error(r, 404)
        assert b"secret" not in r.content or b"outside" not in r.content
    _is_error(browse.get(f"/api/evals/{encode_id('e', 0, rel)}"), 404)
    _is_error(browse.get(f"/api/results/{encode_id('r', 7, 'runs/a')}"), 404)


def test_without_a_model_analyze_is_refused_and_nothing_imports_torch(browse, results_tree):
    assert "no model" in _is_error(_submit(browse), 409)
    assert browse.get("/api/health").json()["model"] is None
    root, _ = results_tree
    code = (
        "import sys; from lav.cli import build_parser; from lav.serve.app import create_app; "
        f"build_parser(); app = create_app(None, [{str(root)!r}]); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- the command: loopback, warning, start-up time, SIGTERM ------------------------------------------
def _start(args, env=None):
    proc = subprocess.Popen(
        [sys.executable, "-m", "lav.cli", "serve", "--port", "0", *map(str, args)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "serving on" in line:
            url = line.split("serving on ", 1)[1].split()[0].rstrip("/")
            return proc, url, lines
    proc.wait(10)
    raise AssertionError("lav serve did not start: " + "".join(lines))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_results_only_server_starts_fast_on_loopback_and_says_so(results_tree):
    root, _ = results_tree
    t0 = time.monotonic()
    proc, url, lines = _start(["--results", root])
    try:
        assert httpx.get(url + "/api/health", timeout=5).json()["model"] is None
        elapsed = time.monotonic() - t0
        cpu = _cpu_seconds(proc.pid)
        assert url.startswith("http://127.0.0.1:") and "loopback" in lines[-1]
        # CPU time, not wall time: on a shared machine the wall clock measures the neighbours.
        assert cpu < 2.0, f"lav serve --results used {cpu:.2f}s of CPU to start ({elapsed:.2f}s wall)"
        assert elapsed < 15.0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


@pytest.mark.parametrize(
    ("maps", "words"),
    [("nope", "unknown map method 'nope'; available: edge, focus"), ("focus_selected", "focus heads")],
)
def test_serve_maps_are_refused_before_the_model_loads(maps, words):
    proc = subprocess.run(
        [sys.executable, "-m", "lav.cli", "serve", "--port", "0", "--maps", maps, "--model", "/nonexistent"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    # The model folder does not exist either: the map names were refused first.
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and "nonexistent" not in proc.stderr and "Traceback" not in proc.stderr


def test_host_0000_prints_a_warning(results_tree):
    root, _ = results_tree
    proc, url, lines = _start(["--results", root, "--host", "0.0.0.0"])
    try:
        warning = proc.stderr.readline()
        assert "warning" in warning and "anyone on the network" in warning
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_sigterm_finishes_the_running_job_and_leaves_no_temporary_files(worker, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "HF_HUB_OFFLINE": "1"}
    model, adapter = worker.viz.model_name, worker.viz.adapter_name
    proc, url, _ = _start(["--model", model, "--adapter", adapter, "--device", "cpu"], env=env)
    with httpx.Client(base_url=url, timeout=60) as http:
        first = _submit(http).json()["id"]
        assert _wait(http, first)["state"] == "done"
        assert http.get(f"/api/results/{first}/download").status_code == 200
        ids = [_submit(http, response=None).json()["id"] for _ in range(3)]
        while http.get(f"/api/jobs/{ids[0]}").json()["state"] == "queued":
            time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.wait(60) in (0, 128 + signal.SIGTERM), err
    assert "Traceback" not in err, err
    assert list(tmp.iterdir()) == []
