"""`lav evolve` end to end: saved adapter checkpoints of the demo model, a probe in a `lav eval` format."""

from __future__ import annotations

import json
import shutil

import pytest

from lav.cli import main
from lav.demo.assets import ADAPTER, BASE
from lav.demo.batches import processor
from lav.eval import write_demo_benchmark
from lav.eval.log import read_records
from lav.integrations import LavCallback
from lav.integrations.callback import RECORDS_DIR
from lav.integrations.evolve import find_checkpoints

from .train_helpers import lora_model, train

RUN_KEYS = ("response", "click", "correct", "maps")


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return write_demo_benchmark(tmp_path_factory.mktemp("probe") / "data", n=3, seed=1)


def _evolve(out, adapters, probe, *extra) -> int:
    args = ["evolve", "--model", str(BASE), "--checkpoints", *map(str, adapters), "--probe", str(probe)]
    args += ["--out", str(out), "--max-new-tokens", "16", "--device", "cpu", "--dtype", "float32", *extra]
    return main(args)


def _runs(folder):
    return [{k: r[k] for k in RUN_KEYS} for r in read_records(folder / "samples.jsonl")]


def test_evolve_over_saved_adapters_sorted_by_step(tmp_path, probe, capsys):
    run = tmp_path / "run"
    # Step 0: a fresh LoRA (B = 0) is the base model exactly; step 400: the shipped demo adapter;
    # step 500: a fresh LoRA again, after the demo adapter was put on and taken off the same model.
    lora_model().save_pretrained(run / "checkpoint-0")
    shutil.copytree(ADAPTER, run / "checkpoint-400")
    shutil.copytree(run / "checkpoint-0", run / "checkpoint-500")
    out = tmp_path / "evolve"
    given = [run / "checkpoint-500", run / "checkpoint-400", run / "checkpoint-0"]
    assert _evolve(out, given, probe) == 0
    assert "outputs:" in capsys.readouterr().out

    evolution = json.loads((out / "evolution.json").read_text())
    rows = evolution["checkpoints"]
    assert [r["step"] for r in rows] == [0, 400, 500]
    for r in rows:
        summary = json.loads((out / r["checkpoint"] / "summary.json").read_text())
        assert (r["accuracy"], r["correct"], r["n"]) == (
            summary["accuracy"],
            summary["correct"],
            summary["n"],
        )
        assert r["layers"] == summary["layers"]
    assert (
        evolution["base"]["accuracy"] == json.loads((out / "base" / "summary.json").read_text())["accuracy"]
    )
    # The zero-B adapters give the base model's answers and maps, before and after the real one.
    assert _runs(out / "checkpoint-0") == _runs(out / "base") == _runs(out / "checkpoint-500")
    assert _runs(out / "checkpoint-400") != _runs(out / "base")

    table = (out / "evolution.csv").read_text().splitlines()
    assert table[0].startswith("checkpoint,step,n,correct,accuracy,ci95_low,ci95_high,focus_pointing_layer_0")
    assert [line.split(",")[0] for line in table[1:]] == [
        "base",
        "checkpoint-0",
        "checkpoint-400",
        "checkpoint-500",
    ]

    page = (out / "report.html").read_text()
    assert (
        "Content-Security-Policy" in page and "<script" not in page and "http" not in page.split("</head>")[1]
    )
    assert (
        page.count("<svg") == 1 + 2 + 2
    )  # accuracy; pointing and mass per layer of the focus and the edge map
    layers = [lr["layer"] for lr in evolution["checkpoints"][0]["layers"]["focus"]]
    assert layers == list(range(layers[0], layers[-1] + 1)) and len(layers) > 1  # the default: all of them
    # The filmstrips say which decoder layers their focus averages.
    assert f"the decision focus (mean of decoder layers {layers[0]}-{layers[-1]})" in page
    n = len(evolution["samples"])
    assert page.count('<div class="strip">') == n
    assert page.count('<img src="data:image/png;base64,') == n * 4  # base + three checkpoints

    # Run again: every checkpoint's folder is complete, so nothing runs and the outputs are the same.
    before = {p.name: p.stat().st_mtime_ns for p in (out / "checkpoint-400").iterdir()}
    assert _evolve(out, given, probe) == 0
    assert json.loads((out / "evolution.json").read_text()) == evolution
    assert {p.name: p.stat().st_mtime_ns for p in (out / "checkpoint-400").iterdir()}["samples.jsonl"] == (
        before["samples.jsonl"]
    )


def test_a_folder_that_is_not_an_adapter_is_named(tmp_path, probe, capsys):
    (tmp_path / "nothing").mkdir()
    assert _evolve(tmp_path / "out", [tmp_path / "nothing"], probe) == 2
    assert "not a LoRA adapter folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_evolve_over_a_trainer_run_matches_what_the_callback_logged(tmp_path, probe):
    cb = LavCallback(processor(), probe, every_n_steps=2, max_new_tokens=16, compare_base=False)
    train(tmp_path / "run", [cb], steps=6, save_steps=2)
    assert sorted(c.step for c in find_checkpoints([tmp_path / "run"])) == [2, 4, 6]
    out = tmp_path / "evolve"
    # The run folder stands for its checkpoints; eager attention, as the model trained.
    assert _evolve(out, [tmp_path / "run"], probe, "--attn-implementation", "eager", "--no-compare-base") == 0
    evolution = json.loads((out / "evolution.json").read_text())
    assert [r["step"] for r in evolution["checkpoints"]] == [2, 4, 6] and evolution["base"] is None
    for r in evolution["checkpoints"]:
        during = read_records(tmp_path / "run" / RECORDS_DIR / f"step-{r['step']}" / "samples.jsonl")
        after = read_records(out / r["checkpoint"] / "samples.jsonl")
        assert [(a["response"], a["correct"]) for a in after] == [
            (d["response"], d["correct"]) for d in during
        ]
        for a, d in zip(after, during, strict=True):
            if a["maps"].get("focus", {}).get("mass") is not None:
                assert a["maps"]["focus"]["mass"] == pytest.approx(d["maps"]["focus"]["mass"], abs=1e-5)
