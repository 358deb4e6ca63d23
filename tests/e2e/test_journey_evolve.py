"""Journey (c): adapters saved by peft -> ``lav evolve`` -> ``lav serve --results`` on its output:
the base run and every checkpoint's run are listed, and every probe sample of each opens with its maps.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import peft
import pytest
import torch
import transformers
from fastapi.testclient import TestClient

from lav.demo import assets
from lav.demo.model import LORA
from lav.eval.layout import safe_id
from lav.serve.app import create_app

from .journeys import demo_data, lav

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("journey-evolve")
    run = root / "run"
    # A run's saved checkpoints: a fresh LoRA (step 0) as get_peft_model + save_pretrained leave it,
    # and the shipped demo adapter where training ended (step 400).
    model = transformers.AutoModelForImageTextToText.from_pretrained(assets.BASE, dtype=torch.float32)
    torch.manual_seed(1)
    peft.get_peft_model(model, peft.LoraConfig(**LORA)).save_pretrained(run / "checkpoint-0")
    shutil.copytree(assets.ADAPTER, run / "checkpoint-400")
    probe = demo_data(root / "probe", 2)
    out = root / "results" / "evolve"
    lav(
        "evolve", "--model", "demo", "--adapters", run, "--probe", probe, "--out", out,
        "--max-new-tokens", 16, "--device", "cpu", "--batch-size", 2,
    )  # fmt: skip
    return root / "results"


def test_every_checkpoint_and_sample_of_lav_evolve_opens_in_lav_serve(results):
    out = results / "evolve"
    evolution = json.loads((out / "evolution.json").read_text())
    runs = ["base"] + [r["checkpoint"] for r in evolution["checkpoints"]]
    assert runs == ["base", "checkpoint-0", "checkpoint-400"]
    with TestClient(create_app(None, [results]), base_url="http://127.0.0.1") as client:
        evals = {e["path"]: e for e in client.get("/api/browse").json()["evals"]}
        assert set(evals) == {f"evolve/{r}" for r in runs}
        for name in runs:
            samples = client.get(f"/api/evals/{evals[f'evolve/{name}']['id']}").json()["samples"]
            assert [s["id"] for s in samples] == evolution["samples"]
            for s in samples:
                assert s["result_id"], f"{name}: sample {s['id']} has no result to open"
                rec = client.get(f"/api/results/{s['result_id']}").json()
                assert rec["instruction"] == s["instruction"] and rec["response"] == s["response"]
                with np.load(out / name / "samples" / safe_id(s["id"]) / "maps.npz") as maps:
                    for key in ("edge", "focus"):
                        served = client.get(f"/api/results/{s['result_id']}/maps/{key}")
                        np.testing.assert_array_equal(np.load(io.BytesIO(served.content)), maps[key])
