"""Journey (a): ``lav demo-data`` -> ``lav eval --save-maps --compare-base`` (one process, and two
shards) -> ``lav serve --results``: every sample of the real evaluation opens, with its maps.

Also ``make eval-demo``: its own commands (read from ``make -n``, cut to two samples with
``--limit``) leave an evaluation whose every row opens.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lav.eval.layout import safe_id
from lav.serve.app import create_app

from .journeys import demo_data, demo_eval, demo_eval_sharded, lav, make_commands

pytestmark = pytest.mark.slow

N = 4  # two samples per shard (ids hash to parts), adapter and base screens


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results folder holding the same demo benchmark evaluated in one process and in two shards."""
    root = tmp_path_factory.mktemp("journey-eval")
    data = demo_data(root / "data", N)
    demo_eval(data, root / "results" / "single")
    demo_eval_sharded(data, root / "results" / "sharded")
    return root / "results"


@pytest.fixture(scope="module")
def client(results):
    with TestClient(create_app(None, [results]), base_url="http://127.0.0.1") as c:
        yield c


def _eval(client, path: str) -> dict:
    evals = {e["path"]: e for e in client.get("/api/browse").json()["evals"]}
    assert set(evals) == {"single", "sharded"}, "a shard's folder must not be listed as an evaluation"
    r = client.get(f"/api/evals/{evals[path]['id']}")
    assert r.status_code == 200, r.text
    return r.json()


def _kept_folder(run, sample_id: str):
    """The folder lav eval kept for ``sample_id``: exactly one under the run (its own samples/ or a part's)."""
    found = [p for p in run.rglob(safe_id(sample_id)) if (p / "result.json").is_file()]
    assert len(found) == 1, f"{sample_id}: kept in {found}"
    return found[0]


@pytest.mark.parametrize("path", ["single", "sharded"])
def test_every_sample_of_a_real_evaluation_opens_with_its_maps(client, results, path):
    data = _eval(client, path)
    lines = [json.loads(x) for x in (results / path / "samples.jsonl").read_text().splitlines()]
    assert [s["id"] for s in data["samples"]] == [r["id"] for r in lines] and len(lines) == N
    for sample, line in zip(data["samples"], lines, strict=True):
        assert sample["result_id"], f"sample {sample['id']} of {path} has no result to open"
        rec = client.get(f"/api/results/{sample['result_id']}").json()
        # The record served is this sample's run, with the base model's beside it (--compare-base).
        assert rec["instruction"] == line["instruction"]
        assert rec["response"] == line["response"]
        assert rec["base"]["response"] == line["base"]["response"]
        if line["click"] is not None:
            assert rec["click"]["x"] == pytest.approx(line["click"]["x"])
        folder = _kept_folder(results / path, sample["id"])
        with np.load(folder / "maps.npz") as saved:
            for name in ("edge", "focus", "base_edge", "base_focus", "edge_diff", "focus_diff"):
                r = client.get(f"/api/results/{sample['result_id']}/maps/{name}")
                assert r.status_code == 200, f"{sample['id']}: {name}: {r.text}"
                np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), saved[name])
        png = client.get(f"/api/results/{sample['result_id']}/image")
        assert Image.open(io.BytesIO(png.content)).size == tuple(line["image_size"])


def test_sharded_samples_open_from_their_parts(client, results):
    data = _eval(client, "sharded")
    parts = {_kept_folder(results / "sharded", s["id"]).parent.parent.name for s in data["samples"]}
    assert parts == {"rank-0", "rank-1"}, "each part keeps its own samples' maps"
    single = {s["id"]: s for s in _eval(client, "single")["samples"]}
    for s in data["samples"]:  # the same run split in two: the same answers
        assert s["response"] == single[s["id"]]["response"]
        assert s["result_id"] != single[s["id"]]["result_id"]


def test_make_eval_demo_keeps_every_sample_so_every_row_opens(tmp_path, monkeypatch):
    commands = make_commands("eval-demo")
    assert [c[0] for c in commands] == ["demo-data", "eval"]
    monkeypatch.chdir(tmp_path)  # the Makefile's folders are relative to where make runs
    lav(*commands[0], "-n", 2)
    lav(*commands[1], "--limit", 2)
    out = tmp_path / commands[1][commands[1].index("--out") + 1]
    with TestClient(create_app(None, [out.parent]), base_url="http://127.0.0.1") as c:
        (ev,) = c.get("/api/browse").json()["evals"]
        samples = c.get(f"/api/evals/{ev['id']}").json()["samples"]
        assert len(samples) == 2
        for s in samples:
            assert s["result_id"], f"make eval-demo kept no result for {s['id']}"
            assert c.get(f"/api/results/{s['result_id']}").json()["base"] is not None
