"""``lav run --faithfulness --zoom`` and ``lav eval --faithfulness --zoom`` on the demo model: the curves
land in result.json and the report, the blocks in summary.json and the eval report (the eval reads
``lav demo-data``'s real output)."""

from __future__ import annotations

import json

import pytest

from lav.demo import assets
from lav.result import Result

from .journeys import demo_data, demo_eval, lav

pytestmark = pytest.mark.slow


def test_run_faithfulness_writes_curves_and_a_chart(tmp_path, capsys):
    out = tmp_path / "run"
    lav(
        "run", "--model", "demo", "--adapter", "demo", "--image", assets.SCREEN,
        "--instruction", assets.instruction(), "--out", out, "--device", "cpu",
        "--faithfulness", "--steps", "2", "--removal", "blur", "--zoom",
    )  # fmt: skip
    data = json.loads((out / "result.json").read_text())
    f = data["faithfulness"]
    assert f["removal"] == "blur" and f["steps"] == 2 and f["maps"] == ["edge", "focus"]
    assert set(f["auc"]) == {"edge", "edge_inverse", "focus", "focus_inverse", "random"}
    assert len(f["orders"]["focus"]["deletion"]["logprob"]) == 3
    assert set(data["zoom"]["maps"]) == {"edge", "focus"}
    html = (out / "report.html").read_text()
    assert "deletion curve of the focus map" in html and "<polyline" in html
    # The record loads back with its checks.
    res = Result.load(out)
    assert res.faithfulness == f and res.zoom == data["zoom"]
    printed = capsys.readouterr().out
    assert "faithfulness (blur removal, 2 steps" in printed and "zoom x2 around the focus peak" in printed


def test_run_refuses_a_check_option_without_its_check(tmp_path, capsys):
    from lav.cli import main

    code = main(["run", "--model", "demo", "--image", str(assets.SCREEN), "--instruction", "x",
                 "--out", str(tmp_path / "o"), "--steps", "3"])  # fmt: skip
    assert code == 2
    assert "--steps needs --faithfulness" in capsys.readouterr().err


def test_run_faithfulness_batch_size_changes_the_batches_not_the_curves(tmp_path, capsys):
    """``--faithfulness-batch-size``: the steps run in batches of that size (recorded), and every curve
    equals the default batching's; without ``--faithfulness`` it is refused."""
    runs = {}
    for name, extra in (("auto", ()), ("three", ("--faithfulness-batch-size", "3"))):
        lav(
            "run", "--model", "demo", "--adapter", "demo", "--image", assets.SCREEN,
            "--instruction", assets.instruction(), "--out", tmp_path / name, "--device", "cpu",
            "--faithfulness", "--steps", "3", *extra,
        )  # fmt: skip
        runs[name] = json.loads((tmp_path / name / "result.json").read_text())["faithfulness"]
    assert runs["auto"]["batch_size"] == 6 and runs["three"]["batch_size"] == 3  # 6: 2 x --steps
    for f in runs.values():
        f.pop("seconds"), f.pop("batch_size")
    assert runs["auto"] == runs["three"]
    from lav.cli import main

    code = main(["run", "--model", "demo", "--image", str(assets.SCREEN), "--instruction", "x",
                 "--out", str(tmp_path / "o"), "--faithfulness-batch-size", "3"])  # fmt: skip
    assert code == 2
    assert "--faithfulness-batch-size needs --faithfulness" in capsys.readouterr().err


def test_eval_faithfulness_block_on_demo_data(tmp_path):
    data = demo_data(tmp_path / "data", 2)
    out = demo_eval(data, tmp_path / "eval", "--faithfulness", "--steps", "2", "--zoom", save_maps=False)
    summary = json.loads((out / "summary.json").read_text())
    f = summary["faithfulness"]
    assert f["n"] + f["skipped"] == 2 and f["steps"] == 2
    for name in ("edge", "focus", "random", "edge_inverse", "focus_inverse"):
        block = f["maps"][name]
        assert block["deletion_auc"]["mean"] is not None and len(block["insertion_auc"]["ci95"]) == 2
    assert {r["map"] for r in f["ranking"]} == {"edge", "focus"}
    assert "base" in f and set(f["base"]["maps"]) == set(f["maps"])
    z = summary["zoom"]
    assert set(z["maps"]) == {"edge", "focus"} and z["factor"] == 2.0
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert all("faithfulness" in r and "faithfulness" in r["base"] for r in records)
    report = (out / "report.html").read_text()
    assert "maps ranked" in report and "Attention-guided zoom" in report
    run = json.loads((out / "run.json").read_text())
    assert run["checks"]["steps"] == 2 and run["checks"]["removal"] == "mean"
