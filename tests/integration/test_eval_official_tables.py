"""The category tables of `lav eval`'s own output: a real run (`lav.evaluate` on a tiny model) over an
OSWorld-G folder with its ``buckets.json`` and a UI-Vision folder, read back from ``samples.jsonl``
and ``summary.json`` and held against the categories worked out by hand from each fixture's
published rule (never from the summary's own grouping)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import lav
from lav.eval import load_dataset
from lav.testing import tiny_checkpoint


@pytest.fixture(scope="module")
def viz(tmp_path_factory):
    folder = tiny_checkpoint("qwen3_vl", tmp_path_factory.mktemp("official-tables") / "base")
    return lav.load(folder, device="cpu", dtype=torch.float32)


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (96, 80), "white").save(path)


def _run(viz, data: Path, out: Path) -> tuple[dict, dict[str, dict]]:
    lav.evaluate(viz, load_dataset(data), out, max_new_tokens=6, progress=False)
    lines = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    return json.loads((out / "summary.json").read_text()), {r["id"]: r for r in lines}


def _rate(records: dict[str, dict], ids: list[str]) -> tuple[int, int]:
    return sum(bool(records[i]["correct"]) for i in ids), len(ids)


def test_osworld_g_categories_in_summary_and_report_follow_buckets_json(viz, tmp_path):
    bench = tmp_path / "OSWorld-G" / "benchmark"
    # buckets.json: {category: [GUI type, ...]} (sjz5202/GUI-AIMA eval/osworld-g.py get_group;
    # the type names from ZJU-REAL/ClawGUI osworldg_metric.py l. 9-48).
    buckets = {
        "text_matching": ["Label"],
        "element_recognition": ["Icon", "Button"],
        "layout_understanding": ["Toolbar", "Accordion/Collapsible Panel"],
        "fine_grained_manipulation": ["Slider", "Accordion/Collapsible Panel"],
    }
    _write(bench / "buckets.json", buckets)
    types = [["Label", "Icon"], ["Slider"], ["Accordion/Collapsible Panel"], ["Toolbar"], ["Button"]]
    kinds = ["bbox", "bbox", "bbox", "bbox", "refusal"]
    entries = []
    for i, (kind, gui) in enumerate(zip(kinds, types, strict=True)):
        _image(bench / "images" / f"g{i}.png")
        coords = [0, 0, 0, 0] if kind == "refusal" else [10, 10, 40, 30]
        entries.append(
            {
                "id": f"g{i}",
                "image_path": f"g{i}.png",
                "image_size": [96, 80],
                "instruction": "Click the thing",
                "box_type": kind,
                "box_coordinates": coords,
                "GUI_types": gui,
            }
        )
    _write(bench / "OSWorld-G.json", entries)
    summary, records = _run(viz, bench, tmp_path / "out")
    # By hand: each category holds the samples with one of its types; the refusal sample only Refusal.
    expected = {
        "Text Matching": ["g0"],
        "Element Recognition": ["g0"],
        "Layout Understanding": ["g2", "g3"],
        "Fine-grained Manipulation": ["g1", "g2"],
        "Refusal": ["g4"],
    }
    got = summary["official"]["buckets"]
    assert list(got) == list(expected)
    for name, ids in expected.items():
        assert (got[name]["correct"], got[name]["n"]) == _rate(records, ids), name
    assert summary["official"]["micro"]["n"] == 5
    page = (tmp_path / "out" / "report.html").read_text()
    assert "OSWorld-G: the official numbers" in page and "Fine-grained Manipulation" in page


def test_ui_vision_category_columns_in_summary_and_report_follow_the_published_map(viz, tmp_path):
    root = tmp_path / "ui-vision"
    # Applications of uivision/UI-Vision mapdict_cat2platform.json: VSCode and Bash are Development,
    # GIMP Creativity, Kodi Entertainment.
    files = {"basic": ["VSCode", "GIMP"], "functional": ["Kodi", "Bash"], "spatial": ["GIMP"]}
    category = {"VSCode": "Development", "Bash": "Development", "GIMP": "Creativity", "Kodi": "Entertainment"}
    for split, apps in files.items():
        entries = []
        for i, app in enumerate(apps):
            _image(root / "images" / f"{split}{i}.png")
            entries.append(
                {
                    "image_path": f"{split}{i}.png",
                    "image_size": [96, 80],
                    "bbox": [10, 10, 50, 40],
                    "prompt_to_evaluate": "Click the thing",
                    "element_type": "icon",
                    "platform": app,
                }
            )
        _write(root / "annotations" / "element_grounding" / f"element_grounding_{split}.json", entries)
    summary, records = _run(viz, root, tmp_path / "out")
    off = summary["official"]
    cells, total = off["tables"]["split x app_category"], off["totals"]["split x app_category"]
    per_split: dict[str, list[str]] = {}
    for split, apps in files.items():
        for i, app in enumerate(apps):
            sid = f"element_grounding_{split}:{i}"
            per_split.setdefault(split, []).append(sid)
            cell = cells[split][category[app]]
            ids = [
                f"element_grounding_{split}:{j}" for j, a in enumerate(apps) if category[a] == category[app]
            ]
            assert (cell["correct"], cell["n"]) == _rate(records, ids)
    for cat in set(category.values()):
        ids = [
            f"element_grounding_{s}:{i}"
            for s, apps in files.items()
            for i, a in enumerate(apps)
            if category[a] == cat
        ]
        assert (total[cat]["correct"], total[cat]["n"]) == _rate(records, ids)
    # Final Avg: the mean of the three files' accuracies.
    accs = [_rate(records, ids)[0] / len(ids) for ids in per_split.values()]
    assert off["macro"]["name"] == "Final Avg" and off["macro"]["accuracy"] == pytest.approx(sum(accs) / 3)
    assert list(total) == ["Development", "Creativity", "Entertainment", "all"]  # the map's order
    page = (tmp_path / "out" / "report.html").read_text()
    assert "split x app_category" in page and "Entertainment" in page
