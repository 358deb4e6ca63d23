"""`lav.evaluate` on tiny models: scoring against hand-computed clicks, per-layer metrics equal to
`lav.metrics`, errors recorded without stopping the run, resume after a real SIGKILL, shards merged
into the one-process result (in process and under torchrun), and `lav eval` on the demo model."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import peft
import pytest
import torch
from PIL import Image

import lav
from lav import metrics
from lav.eval import merge, shard_of
from lav.eval.records import record, safe_id
from lav.eval.samples import Dataset, Sample
from lav.testing import tiny_checkpoint
from tests.deps import missing

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """A tiny Qwen3-VL checkpoint and a LoRA adapter folder for it (non-zero B: it changes answers)."""
    root = tmp_path_factory.mktemp("eval-model")
    folder = tiny_checkpoint("qwen3_vl", root / "base")
    viz = lav.load(folder, device="cpu")
    torch.manual_seed(5)
    cfg = peft.LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj"])
    wrapped = peft.get_peft_model(viz.model, cfg)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    wrapped.save_pretrained(root / "adapter")
    return folder, root / "adapter"


@pytest.fixture(scope="module")
def viz(model_dirs):
    folder, adapter = model_dirs
    return lav.load(folder, adapter=adapter, device="cpu", dtype=torch.float64)


def _screens(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        w, h = 96 + 16 * (i % 3), 80 + 16 * (i % 2)
        path = folder / f"screen{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _dataset(folder: Path, n: int = 8) -> Dataset:
    samples = []
    for i, path in enumerate(_screens(folder, n)):
        groups = {"ui_type": "icon" if i % 2 else "text", "platform": "web" if i < n // 2 else "macos"}
        if i == 3:
            samples.append(Sample(f"s{i}", path, "Click the save icon", "negative", None, groups=groups))
        else:
            box = (8.0 + i, 6.0, 60.0 + 2 * i, 50.0)
            samples.append(Sample(f"s{i}", path, f"Click button {i}", "box", box, groups=groups))
    return Dataset("toy", "jsonl", tuple(samples), (), ("ui_type", "platform"))


# --- scoring, against hand-computed clicks --------------------------------------------------


def test_records_score_clicks_conventions_and_layers_as_the_official_rule(viz, tmp_path):
    (path,) = _screens(tmp_path, 1)  # 96 x 80
    image = Image.open(path)
    box = Sample("hit", path, "Click it", "box", (40.0, 30.0, 56.0, 50.0))
    # (500, 500) on the 0-1000 scale is (48, 40) px: inside. As resized pixels or fractions it is far
    # outside the 96 x 80 image, so only one convention scores it.
    res = viz.analyze(image, "Click it", response="(500, 500)", focus_layers="all", compare_base=True)
    rec = record(box, res)
    assert rec["click"] == {"x": 48.0, "y": 40.0}
    assert rec["correct"] and not rec["wrong_format"]
    # 0-999: (48.05, 40.04) inside; y-first 0-1000 of (500, 500) is the same point; original pixels
    # and 0-100 ((480, 400) px) are outside.
    assert rec["conventions"] == {
        "relative-1000": True,
        "absolute-resized": False,
        "normalized-1": False,
        "absolute-original": False,
        "relative-999": True,
        "relative-100": False,
        "relative-1000-yx": True,
    }
    assert rec["chance"] == pytest.approx(16 * 20 / (96 * 80))
    # Per layer: the same numbers lav.metrics gives for that layer's map.
    focus = res.maps["focus"]
    assert rec["layers"]["focus"] == list(focus.layers) and len(focus.layers) >= 2
    for i, layer_map in enumerate(focus.arrays["focus_layers"]):
        assert rec["maps"]["focus"]["pointing"][i] == metrics.pointing_game(layer_map, box.box, (96, 80))
        assert rec["maps"]["focus"]["mass"][i] == pytest.approx(
            metrics.mass_in_box(layer_map, box.box, (96, 80))
        )
    share = focus.arrays["image_share"].mean(axis=1)
    assert rec["maps"]["focus"]["image_share"] == pytest.approx(share.tolist())
    for i, layer_map in enumerate(res.maps["edge"].arrays["edge_layers"]):
        assert rec["maps"]["edge"]["pointing"][i] == metrics.pointing_game(layer_map, box.box, (96, 80))
    heads = focus.arrays["focus_heads"]
    assert rec["heads"] == [[int(metrics.pointing_game(m, box.box, (96, 80))) for m in row] for row in heads]
    assert rec["base"]["click"] == {"x": 48.0, "y": 40.0} and rec["base"]["correct"]

    miss = record(Sample("miss", path, "Click it", "box", (0.0, 0.0, 10.0, 10.0)), res)
    assert not miss["correct"] and not miss["wrong_format"]
    # A negative sample: a click is wrong, no coordinates is right (and not a format error).
    negative = Sample("neg", path, "Click it", "negative", None)
    assert not record(negative, res)["correct"]
    none = viz.analyze(image, "Click it", response="There is no such element.", focus_layers="all")
    rec_none = record(negative, none)
    assert (
        rec_none["correct"] and not rec_none["wrong_format"] and rec_none["maps"]["focus"]["pointing"] is None
    )
    # "no such element" is a refusal (lav.AnswerRules): no click, but no format error either.
    rec_box_none = record(box, none)
    assert not rec_box_none["correct"] and rec_box_none["refused"] and not rec_box_none["wrong_format"]
    # A garbled answer (ScreenSpot-Pro's truncated "(430, ) 7)"): neither a point nor a refusal, so
    # wrong and wrong_format on the negative and on the box alike.
    garbled = viz.analyze(image, "Click it", response="(430, ) 7)", focus_layers="all", compare_base=True)
    for sample in (negative, box):
        rec_garbled = record(sample, garbled)
        assert not rec_garbled["correct"] and rec_garbled["wrong_format"] and not rec_garbled["refused"]
        assert rec_garbled["conventions"] == dict.fromkeys(rec_garbled["conventions"], False)
        assert not rec_garbled["base"]["correct"] and rec_garbled["base"]["wrong_format"]


def test_a_screenshot_stored_smaller_than_annotated_scores_as_the_official_script(viz, tmp_path):
    """ScreenSpot-Pro's rule on a real answer: the click as a fraction of the stored 96 x 80 image,
    the box divided by the annotated 192 x 160 (eval_screenspot_pro.py l. 141-142)."""
    (path,) = _screens(tmp_path, 1)  # stored 96 x 80
    res = viz.analyze(Image.open(path), "Click it", response="(500, 500)")  # (48, 40) px: (0.5, 0.5)
    annotated = {"image_size": (192, 160), "size_rule": "annotated"}
    # [80, 60, 100, 90] / (192, 160) = [0.417, 0.375, 0.521, 0.5625]: (0.5, 0.5) is inside. In stored
    # pixels (48, 40) lies far left of x1 = 80: comparing pixels of two sizes would miss it.
    hit = record(Sample("hit", path, "Click it", "box", (80.0, 60.0, 100.0, 90.0), **annotated), res)
    assert hit["correct"] and hit["annotated_size"] == [192, 160] and hit["image_size"] == [96, 80]
    # (500, 500) -> 0.5 = 96 / 192, the box's left edge: inclusive.
    edge = record(Sample("edge", path, "Click it", "box", (96.0, 60.0, 120.0, 90.0), **annotated), res)
    assert edge["correct"]
    # Reversed corners as written (x1 = 100 > x2 = 80): never hit, though the point is inside once swapped.
    reversed_ = Sample(
        "rev",
        path,
        "Click it",
        "box",
        (80.0, 60.0, 100.0, 90.0),
        written=(100.0, 60.0, 80.0, 90.0),
        **annotated,
    )
    assert not record(reversed_, res)["correct"]


def test_polygon_targets_score_the_polygon_not_its_box(viz, tmp_path):
    (path,) = _screens(tmp_path, 1)
    triangle = ((40.0, 30.0), (80.0, 30.0), (40.0, 70.0))
    sample = Sample("tri", path, "Click it", "polygon", (40.0, 30.0, 80.0, 70.0), polygon=triangle)
    # (750, 750) -> (72, 60): inside the bounding box, outside the triangle.
    res = viz.analyze(Image.open(path), "Click it", response="(750, 750)")
    assert not record(sample, res)["correct"]
    res = viz.analyze(Image.open(path), "Click it", response="(500, 500)")  # (48, 40): inside
    assert record(sample, res)["correct"]


# --- a run: errors, outputs, settings -----------------------------------------------------------


def test_bad_samples_are_recorded_as_errors_and_the_run_goes_on(viz, tmp_path):
    ds = _dataset(tmp_path / "img", 4)
    broken = tmp_path / "img" / "broken.png"
    broken.write_bytes(b"not a png at all")
    extra = (
        Sample("missing", tmp_path / "nope.png", "Click", "box", (1.0, 1.0, 5.0, 5.0)),
        Sample("broken", broken, "Click", "box", (1.0, 1.0, 5.0, 5.0)),
        # A LavError inside analyze_many (a chat-template token in the instruction) sinks only this one.
        Sample("special", ds.samples[0].image, "Click <|im_start|> now", "box", (1.0, 1.0, 5.0, 5.0)),
    )
    ds = Dataset("toy", "jsonl", ds.samples[:2] + extra + ds.samples[2:], (), ("ui_type",))
    ev = lav.evaluate(
        viz, ds, tmp_path / "out", batch_size=4, compare_base=True, max_new_tokens=6, progress=False
    )
    reasons = {e["id"]: e["reason"] for e in ev.summary["errors"]}
    assert set(reasons) == {"missing", "broken", "special"}
    assert "does not exist" in reasons["missing"] and "nope.png" in reasons["missing"]
    assert "broken.png" in reasons["broken"]
    # Inside n, scored wrong: nothing leaves the denominator.
    assert ev.summary["n"] == 7 and ev.summary["n_samples"] == 7 and ev.summary["n_errors"] == 3
    lines = [json.loads(x) for x in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lines] == [s.id for s in ds.samples]  # dataset order, each once
    for r in lines:
        assert set(r) >= {"id", "instruction", "bbox", "response", "click", "correct", "wrong_format", "base"}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary == json.loads(json.dumps(ev.summary))
    assert summary["correct"] == sum(r["correct"] for r in lines)
    assert sum(summary["flips"].values()) == 7 and summary["flips"]["both_wrong"] >= 3
    assert set(summary["by"]) == {"ui_type"} and "flips" in summary and 0 <= summary["mcnemar_p"] <= 1
    page = (tmp_path / "out" / "report.html").read_text()
    assert "default-src 'none'" in page and "<svg" in page and "http" not in page.replace("http-equiv", "")
    assert "nope.png" in page  # the errors table


def test_an_out_folder_of_other_settings_is_refused(viz, tmp_path):
    ds = _dataset(tmp_path / "img", 2)
    lav.evaluate(viz, ds, tmp_path / "out", max_new_tokens=4, progress=False)
    with pytest.raises(lav.LavError, match="other settings"):
        lav.evaluate(viz, ds, tmp_path / "out", max_new_tokens=5, progress=False)
    other = Dataset("toy", "jsonl", ds.samples[:1], (), ())
    with pytest.raises(lav.LavError, match="other settings"):
        lav.evaluate(viz, other, tmp_path / "out", max_new_tokens=4, progress=False)


def test_save_maps_keeps_result_folders_that_the_gallery_links(viz, tmp_path):
    ds = _dataset(tmp_path / "img", 3)
    ev = lav.evaluate(
        viz, ds, tmp_path / "out", compare_base=True, max_new_tokens=6, save_maps=True, progress=False
    )
    folders = sorted((tmp_path / "out" / "samples").iterdir())
    assert len(folders) == 3
    loaded = lav.Result.load(folders[0])
    assert loaded.base is not None
    failures = [r for r in ev.records if not r["correct"]]
    page = (tmp_path / "out" / "report.html").read_text()
    if failures:
        assert 'href="samples/' in page and "data:image/png;base64," in page


def test_extra_map_methods_are_scored_per_sample_and_in_the_summary(viz, tmp_path):
    ds = _dataset(tmp_path / "img", 4)
    ev = lav.evaluate(
        viz,
        ds,
        tmp_path / "out",
        batch_size=2,
        compare_base=True,
        max_new_tokens=6,
        maps=["focus_sink_masked", "focus_relative"],
        save_maps=True,
        progress=False,
    )
    boxed = [s for s in ds.samples if s.box is not None]
    for sample, rec in zip(ds.samples, ev.records, strict=True):
        res = lav.Result.load(tmp_path / "out" / "samples" / safe_id(rec["id"]))
        assert list(res.maps) == ["edge", "focus", "focus_sink_masked", "focus_relative"]
        for name in ("focus_sink_masked", "focus_relative"):
            got = rec["maps"][name]
            if sample.box is None:
                assert got["pointing"] is None
                continue
            values = res.maps[name].values
            assert got["pointing"] == [metrics.pointing_game(values, sample.box, res.image_size)]
            assert got["mass"] == [pytest.approx(metrics.mass_in_box(values, sample.box, res.image_size))]
    methods = ev.summary["methods"]
    assert set(methods) == {"focus_sink_masked", "focus_relative"}
    hits = [
        r["maps"]["focus_relative"]["pointing"][0]
        for r in ev.records
        if r["maps"]["focus_relative"]["pointing"]
    ]
    assert methods["focus_relative"]["n"] == len(boxed)
    assert methods["focus_relative"]["pointing"] == pytest.approx(sum(hits) / len(boxed))
    assert set(ev.summary["base"]["methods"]) == set(methods)
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Map methods" in page and "focus_relative" in page
    with pytest.raises(lav.InputError, match="unknown map method 'nope'"):
        lav.evaluate(viz, ds, maps=["nope"], progress=False)
    with pytest.raises(lav.InputError, match="focus_selected"):
        lav.evaluate(viz, ds, maps=["focus_selected"], progress=False)


def _approx_equal(a, b, path="summary"):
    """Equal JSON, floats to 1e-9 (another batch slice may round a map differently in the last bit)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _approx_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _approx_equal(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def test_shards_merged_equal_the_one_process_run(viz, tmp_path):
    ds = _dataset(tmp_path / "img", 6)
    kwargs = {"batch_size": 1, "compare_base": True, "max_new_tokens": 6, "progress": False}
    whole = lav.evaluate(viz, ds, tmp_path / "whole", **kwargs)
    parts = {shard_of(s.id, 2) for s in ds.samples}
    assert parts == {0, 1}  # both shards get work
    for i in range(2):
        lav.evaluate(viz, ds, tmp_path / "sharded" / "shards" / f"rank-{i}", shard=(i, 2), **kwargs)
    merged = merge(tmp_path / "sharded", ds, 2)
    assert [r["id"] for r in merged.records] == [s.id for s in ds.samples]
    _approx_equal(merged.records, whole.records, "records")
    _approx_equal(merged.summary, whole.summary)


# --- resume after SIGKILL ------------------------------------------------------------------------

_RUNNER = """
import sys, torch
torch.set_num_threads(1)
import lav
sys.path.insert(0, {tests!r})
sys.path.insert(0, {tests!r} + "/..")  # the test module imports tests.deps
from integration.test_eval_engine import _dataset
from pathlib import Path
viz = lav.load({model!r}, adapter={adapter!r}, device="cpu", dtype=torch.float64)
ds = _dataset(Path({images!r}), {n})
lav.evaluate(viz, ds, sys.argv[1], batch_size=2, compare_base=True, max_new_tokens=8, progress=False)
"""


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_summary(model_dirs, tmp_path):
    n = 12
    script = tmp_path / "runner.py"
    script.write_text(
        _RUNNER.format(
            tests=str(REPO / "tests"),
            model=str(model_dirs[0]),
            adapter=str(model_dirs[1]),
            images=str(tmp_path / "img"),
            n=n,
        )
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

    def run(out: Path) -> None:
        subprocess.run([sys.executable, str(script), str(out)], check=True, env=env, cwd=REPO, timeout=600)

    run(tmp_path / "whole")
    out = tmp_path / "killed"
    kills = 0
    for _ in range(2):  # kill twice at different points, then let it finish
        proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env, cwd=REPO)
        target = _lines(out / "samples.jsonl") + 2
        deadline = time.monotonic() + 300
        while _lines(out / "samples.jsonl") < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills == 2 and _lines(out / "samples.jsonl") < n  # it really stopped mid-run
    assert not (out / "summary.json").exists()
    run(out)
    whole = [json.loads(x) for x in (tmp_path / "whole" / "samples.jsonl").read_text().splitlines()]
    resumed = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in resumed] == [r["id"] for r in whole]  # none dropped, none twice
    _approx_equal(resumed, whole, "records")
    _approx_equal(
        json.loads((out / "summary.json").read_text()),
        json.loads((tmp_path / "whole" / "summary.json").read_text()),
    )


# --- torchrun and the CLI (slow) ---------------------------------------------------------------


def _data_jsonl(folder: Path, n: int) -> Path:
    ds = _dataset(folder / "images", n)
    path = folder / "data.jsonl"
    with open(path, "w") as f:
        for s in ds.samples:
            if s.box is not None:
                row = {"id": s.id, "image": str(s.image), "instruction": s.instruction, "bbox": list(s.box)}
                f.write(json.dumps({**row, **s.groups}) + "\n")
    return path


@pytest.mark.slow
def test_torchrun_two_ranks_merge_to_the_single_process_output(model_dirs, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        missing("torchrun is not installed beside this python (it comes with torch)")
    data = _data_jsonl(tmp_path, 6)
    args = ["eval", "--model", str(model_dirs[0]), "--adapter", str(model_dirs[1]), "--data", str(data)]
    args += [
        "--compare-base",
        "--batch-size",
        "1",
        "--max-new-tokens",
        "6",
        "--device",
        "cpu",
        "--dtype",
        "float32",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [sys.executable, "-m", "lav.cli", *args, "--out", str(tmp_path / "single")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr
    multi = subprocess.run(
        [
            torchrun,
            "--standalone",  # a free port of its own (a fixed --master_port may be taken)
            "--nproc_per_node",
            "2",
            "-m",
            "lav.cli",
            *args,
            "--out",
            str(tmp_path / "multi"),
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert (tmp_path / "multi" / "shards" / "rank-0" / "samples.jsonl").exists()
    assert (tmp_path / "multi" / "shards" / "rank-1" / "samples.jsonl").exists()
    one = [json.loads(x) for x in (tmp_path / "single" / "samples.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "multi" / "samples.jsonl").read_text().splitlines()]
    _approx_equal(two, one, "records")
    _approx_equal(
        json.loads((tmp_path / "multi" / "summary.json").read_text()),
        json.loads((tmp_path / "single" / "summary.json").read_text()),
    )


@pytest.mark.slow
def test_lav_eval_on_the_demo_benchmark_with_the_shipped_model(tmp_path):
    from lav.cli import main
    from lav.demo import assets

    assert main(["demo-data", "--out", str(tmp_path / "data"), "-n", "12"]) == 0
    out = tmp_path / "out"
    args = [
        "eval",
        "--model",
        str(assets.BASE),
        "--adapter",
        str(assets.ADAPTER),
        "--data",
        str(tmp_path / "data"),
    ]
    assert main([*args, "--compare-base", "--out", str(out), "--device", "cpu", "--dtype", "float32"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    lines = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == summary["n_samples"] == 12 and summary["errors"] == []
    assert summary["correct"] == sum(r["correct"] for r in lines)
    assert summary["base"]["correct"] == sum(r["base"]["correct"] for r in lines)
    # The shipped adapter was trained to click: it answers with coordinates.
    assert summary["wrong_format"] < summary["n"]
    table = summary["flips"]
    assert sum(table.values()) == 12
    assert math.isclose(summary["accuracy"], (table["fixed"] + table["both_right"]) / 12)
    # The benchmark's own numbers (ScreenSpot-Pro's layout): Avg (micro), the macro named as such,
    # group x ui_type and application x ui_type cells, each cell the share of its records.
    off = summary["official"]
    assert off["benchmark"] == "ScreenSpot-Pro" and off["micro"]["name"] == "Avg"
    assert off["micro"]["accuracy"] == summary["accuracy"] and "not in the paper" in off["macro"]["name"]
    assert set(off["tables"]) == {"group x ui_type", "application x ui_type"}
    for name, field in (("group x ui_type", "group"), ("application x ui_type", "application")):
        for value, row in off["tables"][name].items():
            mine = [r for r in lines if r["groups"].get(field) == value]
            assert row["all"]["n"] == len(mine) and row["all"]["correct"] == sum(r["correct"] for r in mine)
    assert summary["n_errors"] == 0 and "refused" in summary and "base" in summary
    assert summary["base"]["official"]["micro"]["correct"] == summary["base"]["correct"]
    # Negatives are right only on a refusal, and a right negative is a refusal.
    for r in lines:
        if r["target"] == "negative":
            assert r["correct"] == r["refused"]
    page = (out / "report.html").read_text()
    assert "ScreenSpot-Pro: the official numbers" in page and "group x ui_type" in page
    assert (out / "report.html").stat().st_size > 1000


def test_bad_annotation_and_unknown_format_exit_2_with_one_line(tmp_path, capsys):
    from lav.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.png", "instruction": "x", "bbox": [1, 2, 3, 4]}\n{"image": oops}\n')
    assert main(["eval", "--model", "m", "--data", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.jsonl" in err[0]
    assert main(["eval", "--model", "m", "--data", str(bad), "--format", "nope"]) == 2
    assert "screenspot-pro" in capsys.readouterr().err
