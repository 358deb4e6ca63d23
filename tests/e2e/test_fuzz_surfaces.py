"""Fuzzing every surface beyond `lav run`: eval, evolve, plan, demo-data, `Result.load`, the HTTP API.

The same rules as `test_fuzz_cli.py`: exit 0 or 2 (an HTTP answer below 500), never a traceback, and
nothing outside lav's own output changed. Every input is a real command's output damaged one way:
`lav demo-data`'s benchmark, `lav demo`'s result folder. Examples are few (each eval loads a model):
the whole file takes a minute or two on 2 cores.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lav import LavError, Result
from lav.demo import assets
from lav.serve.app import create_app
from lav.serve.results import encode_id
from tests.e2e.test_fuzz_cli import DAMAGE, _damage, _run_in_process, _snapshot

pytestmark = pytest.mark.slow


def fuzz(n: int):
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """`lav demo-data`'s real output: 4 samples in ScreenSpot-Pro's layout."""
    out = tmp_path_factory.mktemp("bench") / "data"
    code, err = _run_in_process(["demo-data", "-n", "4", "--out", str(out)])
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory) -> Path:
    """`lav demo`'s real result folder (with the base run)."""
    out = tmp_path_factory.mktemp("demo") / "out"
    code, err = _run_in_process(["demo", "--out", str(out)])
    assert code == 0, err
    return out


def _outcome(code: int, err: str, work: Path, before: dict, out: Path) -> None:
    assert code in (0, 2), err
    assert "Traceback" not in err, err
    if code == 2:
        lines = err.strip().splitlines()
        assert lines and "error" in lines[-1], err
    assert _snapshot(work, out) == before, "a file outside lav's output changed"


# --- JSON damage: what a hostile or broken writer puts in a file lav reads -------------------------
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),
        st.text(max_size=6),
        st.sampled_from([10**400, "1e400"]),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
JSON_DAMAGE = ["deep", "huge_number", "replace_value", "drop_key", *DAMAGE]


def _json_damage(path: Path, kind: str, where: float, bit: int, value) -> None:
    if kind == "deep":
        path.write_text("[" * 50_000 + "]" * 50_000)
    elif kind == "huge_number":
        path.write_text(path.read_text().replace("1", "1e400", 1))
    elif kind in ("replace_value", "drop_key"):
        data = json.loads(path.read_text())
        node = data
        # Walk down to a random object: the top one, or an entry of a list.
        if isinstance(node, list) and node:
            node = node[int(where * len(node))]
        if isinstance(node, dict) and node:
            key = sorted(node)[bit % len(node)]
            if kind == "drop_key":
                del node[key]
            else:
                node[key] = value
        else:
            data = value
        path.write_text(json.dumps(data))
    else:
        _damage(path.parent, path.name, kind, where, bit)


json_damages = st.tuples(st.sampled_from(JSON_DAMAGE), st.floats(0.0, 0.999), st.integers(0, 7), json_values)


# --- lav eval and lav evolve: damaged datasets, checkpoints ------------------------------------------
def _bench_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@fuzz(4)
@given(pick=st.floats(0.0, 0.999), damage=json_damages)
def test_eval_on_a_damaged_benchmark_exits_0_or_2(bench, pick, damage):
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        shutil.copytree(bench, work / "data")
        files = [f for f in _bench_files(work / "data") if f.endswith(".json")]
        files += [f for f in _bench_files(work / "data") if f.endswith(".png")][:1]
        rel = files[int(pick * len(files))]
        kind, where, bit, value = damage
        if rel.endswith(".png") and kind in ("deep", "huge_number", "replace_value", "drop_key"):
            kind = "bitflip"
        _json_damage(work / "data" / rel, kind, where, bit, value)
        out = work / "out"
        before = _snapshot(work, out)
        argv = ["eval", "--model", str(assets.BASE), "--adapter", str(assets.ADAPTER), "--data"]
        argv += [
            str(work / "data"),
            "--out",
            str(out),
            "--limit",
            "2",
            "--device",
            "cpu",
            "--max-new-tokens",
            "8",
        ]
        code, err = _run_in_process(argv)
        _outcome(code, err, work, before, out)


@pytest.mark.parametrize("kind", ["a file", "under a file", "too long"])
def test_eval_out_that_cannot_be_a_folder_is_one_line(bench, tmp_path, kind):
    (tmp_path / "afile").write_text("mine")
    out = {
        "a file": tmp_path / "afile",
        "under a file": tmp_path / "afile" / "sub",
        "too long": tmp_path / ("a" * 300),
    }[kind]
    before = _snapshot(tmp_path, tmp_path / "none")
    argv = ["eval", "--model", str(assets.BASE), "--data", str(bench), "--out", str(out), "--limit", "1"]
    code, err = _run_in_process([*argv, "--device", "cpu", "--max-new-tokens", "4"])
    assert code == 2 and "Traceback" not in err, err
    assert _snapshot(tmp_path, tmp_path / "none") == before


STATES = [
    '{"global_step": 1e400}',
    '{"global_step": "12"}',
    '{"global_step": ' + "[" * 5000 + "]" * 5000 + "}",
    "[]",
    "not json",
]


@fuzz(3)
@given(
    state=st.one_of(st.sampled_from(STATES), json_values.map(lambda v: json.dumps({"global_step": v}))),
    damage=st.one_of(
        st.none(),
        st.tuples(st.sampled_from(["adapter_config.json", "adapter_model.safetensors"]), json_damages),
    ),
    name=st.sampled_from(["checkpoint-10", "run-a", "checkpoint-99999999999999999999999"]),
)
def test_evolve_on_damaged_checkpoints_exits_0_or_2(bench, state, damage, name):
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        ckpt = work / "run" / name
        shutil.copytree(assets.ADAPTER, ckpt)
        (ckpt / "trainer_state.json").write_text(state)
        if damage is not None:
            rel, (kind, where, bit, value) = damage
            if rel.endswith(".safetensors") and kind in ("deep", "huge_number", "replace_value", "drop_key"):
                kind = "truncate"
            _json_damage(ckpt / rel, kind, where, bit, value)
        out = work / "out"
        before = _snapshot(work, out)
        argv = ["evolve", "--model", str(assets.BASE), "--adapters", str(ckpt), "--data", str(bench)]
        argv += ["--out", str(out), "--limit", "1", "--no-compare-base", "--device", "cpu"]
        code, err = _run_in_process([*argv, "--max-new-tokens", "4"])
        _outcome(code, err, work, before, out)


# --- lav plan and lav demo-data: numbers and maps ---------------------------------------------------
numbers = st.one_of(
    st.integers(-5, 5000).map(str),
    st.sampled_from(["0", "-1", "1e21", "2.5", "x", "", str(10**30), "99999999999999999999999", " 7 "]),
)


@fuzz(12)
@given(
    size=st.tuples(numbers, numbers),
    device_map=st.one_of(
        st.sampled_from(["auto", "balanced", "sequential", "cpu", "bogus", "{}", "file"]),
        json_values.map(json.dumps),
    ),
    memory=st.one_of(
        st.none(), st.sampled_from(["cpu=1GiB", "0=20GiB", "cpu=-1", "x", "cpu=1e400GiB", "=,"])
    ),
    dtype=st.sampled_from(["auto", "float32", "bfloat16"]),
)
def test_plan_exits_0_or_2(size, device_map, memory, dtype):
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        if device_map not in ("auto", "balanced", "sequential", "cpu", "bogus"):
            (work / "map.json").write_text(device_map if device_map != "file" else "[" * 9000)
            device_map = str(work / "map.json")
        before = _snapshot(work, work / "none")
        argv = ["plan", "--model", str(assets.BASE), "--image-size", *size, "--device-map", device_map]
        argv += ["--dtype", dtype] + (["--max-memory", memory] if memory else [])
        code, err = _run_in_process(argv)
        _outcome(code, err, work, before, work / "none")


@fuzz(8)
@given(
    n=st.one_of(st.sampled_from(["-1", "0", "1", "2", "3", "1099511627776", "1e3", "x"])),
    seed=numbers,
    out=st.sampled_from(["new", "a file", "under a file", "too long", "dangling", "existing lav output"]),
)
def test_demo_data_exits_0_or_2(bench, n, seed, out):
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        (work / "afile").write_text("mine")
        (work / "dangling").symlink_to(work / "nowhere")
        if out == "existing lav output":
            shutil.copytree(bench, work / "existing lav output")
        path = {
            "a file": work / "afile",
            "under a file": work / "afile" / "sub",
            "too long": work / ("a" * 300),
            "dangling": work / "dangling",
        }.get(out, work / out)
        before = _snapshot(work, path)
        code, err = _run_in_process(["demo-data", "-n", n, "--seed", seed, "--out", str(path)])
        _outcome(code, err, work, before, path)


# --- Result.load: damaged records -------------------------------------------------------------------
def _forge_npz(path: Path, where: float, bit: int) -> None:
    """maps.npz with one array whose header claims another shape or dtype than its data."""
    arrays = dict(np.load(path))
    key = sorted(arrays)[bit % len(arrays)]
    shape = [(200_000, 200_000), (3, 3), (1,), (0, 5), (10**6, 10**6, 10**6)][int(where * 5)]
    descr = ["<f4", "|O", "<U3", "<c8", "<f8"][bit % 5]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for k, v in arrays.items():
            buf = io.BytesIO()
            np.save(buf, v)
            zf.writestr(k + ".npy", header.getvalue() + b"\0" * 16 if k == key else buf.getvalue())


RECORD_DAMAGE = ["forge_npz", *JSON_DAMAGE]


@fuzz(30)
@given(
    rel=st.sampled_from(["result.json", "maps.npz", "image.png"]),
    kind=st.sampled_from(RECORD_DAMAGE),
    where=st.floats(0.0, 0.999),
    bit=st.integers(0, 7),
    value=json_values,
)
def test_result_load_refuses_or_gives_a_result_that_renders(demo_result, rel, kind, where, bit, value):
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "r"
        shutil.copytree(demo_result, folder)
        if (
            kind == "forge_npz"
            or rel != "result.json"
            and kind in ("deep", "huge_number", "replace_value", "drop_key")
        ):
            _forge_npz(folder / "maps.npz", where, bit)
        else:
            _json_damage(folder / rel, kind, where, bit, value)
        try:
            res = Result.load(folder)
        except LavError as exc:
            assert str(exc) and "\n" not in str(exc).strip()
            return
        res.overlay()
        res.report_html()
        res.save(Path(d) / "again")
        assert Result.load(Path(d) / "again") == res


# --- the HTTP API -----------------------------------------------------------------------------------
class _Stub:
    max_pixels = 4_000_000

    def __init__(self, result: Result) -> None:
        self.result = result

    def describe(self):
        return {"model": "stub", "adapter": None, "has_adapter": True, "family": "test"}

    def check(self, instruction, response, compare_base, maps=None):
        from lav.checks import validate_request

        validate_request(instruction, response)

    def __call__(self, req, report):
        return self.result


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (9, 99, 199)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def api(demo_result, tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    shutil.copytree(demo_result, root / "good")
    shutil.copytree(demo_result, root / "deep")
    (root / "deep" / "result.json").write_text("[" * 50_000 + "]" * 50_000)
    ev = root / "ev"
    ev.mkdir()
    (ev / "summary.json").write_text('{"n": 1, "heads": ' + "[" * 5000 + "]" * 5000 + "}")
    (ev / "samples.jsonl").write_text('{"id": "a", "groups": 5}\n[[[[\n{"id": {"x": 1}, "base": 3}\n')
    app = create_app(_Stub(Result.load(demo_result)), [root], max_upload=256 * 1024)
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        yield client, root


ids = st.one_of(
    st.sampled_from(["r0-Z29vZA", "r0-ZGVlcA", "e0-ZXY", "r0-", "e9-", "r0-Li4", "0" * 32, "x"]),
    st.tuples(st.sampled_from("re"), st.integers(0, 3), st.text(max_size=12)).map(lambda t: encode_id(*t)),
    st.text(max_size=20),
).map(lambda s: quote(s, safe=""))  # sent as the page sends them: percent-encoded
paths = st.one_of(
    st.sampled_from(["/", "/api/health", "/api/browse", "/api/analyze", "/static/main.js", "/static/../x"]),
    ids.map(lambda i: f"/api/results/{i}"),
    st.tuples(ids, st.sampled_from(["edge", "focus.npy", "nope", "base_focus", "..", ""])).map(
        lambda t: f"/api/results/{t[0]}/maps/{t[1]}"
    ),
    ids.map(lambda i: f"/api/results/{i}/image"),
    ids.map(lambda i: f"/api/results/{i}/download"),
    ids.map(lambda i: f"/api/evals/{i}"),
    ids.map(lambda i: f"/api/jobs/{i}"),
)
uploads = st.one_of(
    st.none(),
    st.just(b""),
    st.binary(max_size=64),
    st.tuples(st.integers(1, 40), st.integers(1, 40)).map(lambda s: _png(*s)),
    st.just(_png(3000, 2000)),  # over the stub's 4 Mpx
    st.just(b"\0" * (300 * 1024)),  # over the 256 kB limit
)


@fuzz(50)
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]),
    path=paths,
    origin=st.sampled_from([None, "http://127.0.0.1", "http://evil.example", "null"]),
    image=uploads,
    fields=st.dictionaries(
        st.sampled_from(["instruction", "response", "compare_base", "maps", "other"]),
        st.one_of(
            st.text(max_size=30), st.sampled_from(["true", "false", "focus_sink_masked,nope", "<|im_end|>"])
        ),
        max_size=4,
    ),
)
def test_http_api_answers_below_500_with_one_json_error(api, method, path, origin, image, fields):
    client, _ = api
    headers = {"origin": origin} if origin else {}
    files = {"image": ("s.png", image, "image/png")} if image is not None else None
    kwargs = {"files": files, "data": fields} if method in ("POST", "PUT") and (files or fields) else {}
    with contextlib.suppress(UnicodeEncodeError):  # a path the client itself cannot send
        r = client.request(method, path, headers=headers, **kwargs)
        assert r.status_code < 500, (method, path, r.status_code, r.text[:300])
        assert r.headers.get("content-security-policy"), "no security headers"
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/json"), r.text[:200]
            assert isinstance(r.json()["error"], str) and "Traceback" not in r.text
