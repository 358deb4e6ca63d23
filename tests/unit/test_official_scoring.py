"""Every benchmark format scored as its official script scores it, held against numbers worked out
BY HAND from the official rule (never from lav's own output).

Each fixture follows the benchmark's published schema field for field (source named beside it); the
answers are given as clicks in pixels of the *stored* image (what `lav.Result.click` holds), a
refusal, a garbled answer (neither) or a missing image. The official rules (shared/EVAL.md):

- the click as a fraction of the image the model saw; the box divided by the annotated size
  (ScreenSpot-Pro ``eval_screenspot_pro.py`` l. 141-142, UI-Vision ``eval_uivision.py``) or by the
  stored image's size (SeeClick ``screenspot_test.py`` l. 70-71, MMBench-GUI
  ``l2_element_grounding.py`` l. 178-207, VenusBench-GD ``eval.py`` l. 416-418); edges included;
- ScreenSpot-Pro takes the box as written (l. 138-139: reversed corners never hit); UI-Vision swaps;
- a negative is right only on a refusal; an answer that is neither point nor refusal is wrong and
  ``wrong_format`` on every sample; a missing image is wrong and stays in n.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lav.errors import LavError
from lav.eval import build_report, load_dataset
from lav.eval.records import answer_fields, error_record, sample_head
from lav.eval.stats import summarize

REFUSE, GARBLED, MISSING = "refuse", "garbled", "missing"


def _write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def _image(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, "white").save(path)


def _records(ds, answers: dict[str, object], stored: dict[str, tuple[int, int]] | tuple[int, int]):
    """The records `lav eval` writes for these answers (`records.answer_fields`, `error_record`)."""
    out = []
    for s in ds.samples:
        answer = answers[s.id]
        if answer == MISSING:
            out.append(error_record(s, f"image file {s.image} does not exist"))
            continue
        size = stored[s.id] if isinstance(stored, dict) else stored
        x, y = answer if isinstance(answer, tuple) else (None, None)
        rec = {**sample_head(s), "image_size": list(size), "error": None}
        rec.update(answer_fields(s, x, y, answer == REFUSE, size))
        out.append(rec)
    return out


def _correct(records) -> dict[str, bool]:
    return {r["id"]: r["correct"] for r in records}


# --- ScreenSpot-Pro ------------------------------------------------------------------------------


@pytest.fixture
def pro(tmp_path: Path) -> Path:
    """likaixin2000/ScreenSpot-Pro-GUI-Grounding annotations/<app>_<os>.json: id, img_filename,
    bbox [x1, y1, x2, y2], img_size, instruction, instruction_cn, application, platform, group,
    ui_type, gt_type. Annotated at 1000 x 500; the screenshots are stored at 500 x 250."""
    root = tmp_path / "ScreenSpot-Pro"
    base = {"img_size": [1000, 500], "instruction_cn": "点击", "platform": "windows", "gt_type": "positive"}
    ps = {**base, "application": "Photoshop", "group": "Creative", "img_filename": "photoshop_windows/a.png"}
    vs = {**base, "application": "VSCode", "group": "Dev", "img_filename": "vscode_macos/b.png"}
    vs["platform"] = "macos"
    _write_json(
        root / "annotations" / "photoshop_windows.json",
        [
            {**ps, "id": "p1", "bbox": [100, 50, 200, 80], "instruction": "Save", "ui_type": "text"},
            {**ps, "id": "p2", "bbox": [300, 100, 200, 150], "instruction": "Brush", "ui_type": "icon"},
            {**ps, "id": "p3", "bbox": [0, 0, 10, 10], "instruction": "Lasso", "ui_type": "icon"},
            {**ps, "id": "p4", "bbox": [10, 10, 90, 40], "instruction": "Open", "ui_type": "text"},
        ],
    )
    p3 = json.loads((root / "annotations" / "photoshop_windows.json").read_text())
    p3[2]["gt_type"] = "negative"
    _write_json(root / "annotations" / "photoshop_windows.json", p3)
    _write_json(
        root / "annotations" / "vscode_macos.json",
        [
            {**vs, "id": "v1", "bbox": [100.5, 20, 150, 40], "instruction": "Run", "ui_type": "text"},
            {
                **vs,
                "id": "v2",
                "bbox": [0, 0, 10, 10],
                "instruction": "Git",
                "ui_type": "icon",
                "gt_type": "negative",
            },
            {**vs, "id": "v3", "bbox": [600, 300, 700, 400], "instruction": "Debug", "ui_type": "icon"},
        ],
    )
    return root


def test_screenspot_pro_official_rule_by_hand(pro: Path):
    ds = load_dataset(pro)
    answers = {
        "p1": (50.0, 25.0),  # 50/500 = 0.1 = 100/1000 and 25/250 = 0.1 = 50/500: on the corner -> hit
        "p2": (125.0, 60.0),  # (0.25, 0.24) lies in the swapped box, but x1 = 0.3 > x2 = 0.2 as written
        "p3": GARBLED,  # a negative with "(430, ) 7)": wrong, wrong_format
        "p4": REFUSE,  # a refusal where the target is there: wrong, not wrong_format
        "v1": (50.25, 15.0),  # 50.25/500 = 0.1005 = 100.5/1000: the non-integer left edge -> hit
        "v2": REFUSE,  # a negative answered with the prompt's refusal -> right
        "v3": MISSING,  # no image: wrong, inside n
    }
    records = _records(ds, answers, (500, 250))
    assert _correct(records) == {
        "p1": True,
        "p2": False,
        "p3": False,
        "p4": False,
        "v1": True,
        "v2": True,
        "v3": False,
    }
    s = summarize(records, ds.group_fields, format="screenspot-pro")
    # Avg (micro, evaluate_overall): 3 right of 7.
    assert (s["n"], s["correct"], s["n_errors"], s["wrong_format"], s["refused"]) == (7, 3, 1, 1, 2)
    off = s["official"]
    assert off["micro"]["name"] == "Avg" and off["micro"]["accuracy"] == pytest.approx(3 / 7)
    # group x ui_type: Creative/text p1 p4 = 1/2, Creative/icon p2 p3 = 0/2, Dev/text v1 = 1/1,
    # Dev/icon v2 v3 = 1/2; the mean of the four cells = (0.5 + 0 + 1 + 0.5) / 4.
    cells = off["tables"]["group x ui_type"]
    assert cells["Creative"]["text"]["accuracy"] == 0.5 and cells["Creative"]["icon"]["accuracy"] == 0
    assert cells["Dev"]["text"]["accuracy"] == 1 and cells["Dev"]["icon"]["accuracy"] == 0.5
    assert cells["Creative"]["all"]["accuracy"] == pytest.approx(1 / 4)
    assert cells["Dev"]["all"]["accuracy"] == pytest.approx(2 / 3)
    assert off["macro"]["accuracy"] == pytest.approx(0.5) and off["macro"]["cells"] == 4
    app = off["tables"]["application x ui_type"]
    assert app["Photoshop"]["text"]["accuracy"] == 0.5 and app["VSCode"]["icon"]["accuracy"] == 0.5
    # The leaderboard's overall text / icon (evaluate_overall by ui_type): text p1 p4 v1 = 2/3,
    # icon p2 p3 v2 v3 = 1/4; its Avg 3/7.
    total = off["totals"]["group x ui_type"]
    assert list(total) == ["text", "icon", "all"]  # the leaderboard's Text, Icon, Avg
    assert total["text"]["accuracy"] == pytest.approx(2 / 3) and total["icon"]["accuracy"] == 0.25
    assert total["all"]["accuracy"] == pytest.approx(3 / 7)
    assert any("reversed corners" in n and "never hit" in n for n in ds.notes)


def test_stored_size_other_than_annotated_is_said_once(pro: Path):
    from lav.eval.engine import size_notes

    ds = load_dataset(pro)
    records = _records(ds, dict.fromkeys((s.id for s in ds.samples), REFUSE), (500, 250))
    (note,) = size_notes(records)
    assert note.startswith("7 image(s) stored at another size than annotated")
    assert "annotated 1000x500, stored 500x250" in note and "divided by the annotated size" in note
    assert size_notes(_records(ds, dict.fromkeys((s.id for s in ds.samples), REFUSE), (1000, 500))) == []


# --- ScreenSpot v1 (SeeClick) ---------------------------------------------------------------------


@pytest.fixture
def screenspot(tmp_path: Path) -> Path:
    """SeeClick's ScreenSpot: screenspot_{mobile,desktop,web}.json, img_filename, bbox [x, y, w, h],
    instruction, data_type (text / icon), data_source. Each file has a box with w < x, which only
    [x, y, w, h] fits."""
    root = tmp_path / "screenspot"

    def entry(name, bbox, kind, source):
        return {
            "img_filename": name,
            "bbox": bbox,
            "instruction": name,
            "data_type": kind,
            "data_source": source,
        }

    _write_json(
        root / "screenspot_mobile.json",
        [
            entry("m0.png", [40, 20, 10, 10], "text", "ios"),
            entry("m1.png", [40, 20, 10, 10], "text", "ios"),
            entry("m2.png", [40, 20, 10, 10], "icon", "android"),
        ],
    )
    _write_json(
        root / "screenspot_desktop.json",
        [
            entry("d0.png", [40, 20, 10, 10], "text", "windows"),
            entry("d1.png", [40, 20, 10.5, 10], "icon", "macos"),
        ],
    )
    _write_json(
        root / "screenspot_web.json",
        [
            entry("w0.png", [40, 20, 10, 10], "text", "gitlab"),
            entry("w1.png", [40, 20, 10, 10], "icon", "shop"),
        ],
    )
    return root


def test_screenspot_seeclick_rule_and_the_average_of_six_cells_by_hand(screenspot: Path):
    ds = load_dataset(screenspot)
    answers = {
        "screenspot_mobile:0": (45.0, 25.0),  # mobile text: inside [40, 50] x [20, 30]
        "screenspot_mobile:1": (60.0, 25.0),  # mobile text: right of it
        "screenspot_mobile:2": (50.0, 30.0),  # mobile icon: the bottom-right corner, edges included
        "screenspot_desktop:0": (40.0, 20.0),  # desktop text: the top-left corner
        "screenspot_desktop:1": (50.5, 25.0),  # desktop icon: x2 = 40 + 10.5, a non-integer edge
        "screenspot_web:0": GARBLED,  # web text: wrong_format
        "screenspot_web:1": MISSING,  # web icon: SeeClick stops here; lav scores it wrong inside n
    }
    # SeeClick divides the box by the opened image's size: stored 100 x 80, the box in those pixels.
    records = _records(ds, answers, (100, 80))
    assert _correct(records) == {
        "screenspot_mobile:0": True,
        "screenspot_mobile:1": False,
        "screenspot_mobile:2": True,
        "screenspot_desktop:0": True,
        "screenspot_desktop:1": True,
        "screenspot_web:0": False,
        "screenspot_web:1": False,
    }
    s = summarize(records, ds.group_fields, format="screenspot")
    off = s["official"]
    assert off["micro"]["accuracy"] == pytest.approx(4 / 7)
    # SeeClick's Average: mobile text 1/2, mobile icon 1, desktop text 1, desktop icon 1, web text 0,
    # web icon 0 -> (0.5 + 1 + 1 + 1 + 0 + 0) / 6.
    assert off["macro"]["name"] == "Average" and off["macro"]["cells"] == 6
    assert off["macro"]["accuracy"] == pytest.approx(3.5 / 6)
    cells = off["tables"]["split x data_type"]
    assert cells["mobile"]["text"]["accuracy"] == 0.5 and cells["web"]["icon"]["accuracy"] == 0.0
    assert s["wrong_format"] == 1 and s["n_errors"] == 1


# --- UI-Vision -------------------------------------------------------------------------------------


@pytest.fixture
def ui_vision(tmp_path: Path) -> Path:
    """ServiceNow/ui-vision annotations/element_grounding/element_grounding_{basic,functional,
    spatial}.json: image_path, image_size, bbox [x1, y1, x2, y2], prompt_to_evaluate, element_type,
    platform (the fields eval_uivision.py reads), category. Annotated 1920 x 1080, stored 960 x 540.
    The platforms are applications of uivision/UI-Vision mapdict_cat2platform.json (LibreOffice
    Calc: Productivity; VSCode, gedit: Development; Anki: Education), one written in another case
    ("Gedit") and one the map does not list (Veusz)."""
    root = tmp_path / "ui-vision"
    folder = root / "annotations" / "element_grounding"

    def e(bbox, platform="LibreOffice Calc", kind="icon"):
        return {
            "image_path": "calc/s.png",
            "image_size": [1920, 1080],
            "platform": platform,
            "bbox": bbox,
            "prompt_to_evaluate": "x",
            "element_type": kind,
            "category": "Button",
        }

    box = [100, 100, 200, 200]
    _write_json(folder / "element_grounding_basic.json", [e(box), e([400, 300, 300, 200], "VSCode", "text")])
    _write_json(folder / "element_grounding_functional.json", [e(box, "Anki")])
    _write_json(folder / "element_grounding_spatial.json", [e(box, "Gedit"), e(box), e(box, "Veusz")])
    return root


def test_ui_vision_swaps_divides_by_image_size_and_final_avg_is_the_mean_of_files(ui_vision: Path):
    ds = load_dataset(ui_vision)
    ids = [s.id for s in ds.samples]
    answers = dict(
        zip(
            ids,
            [
                (50.0, 50.0),  # basic Calc: 50/960 = 100/1920, 50/540 = 100/1080: the corner -> hit
                (175.0, 125.0),  # basic VSCode: reversed [400, 300, 300, 200] swapped -> (350, 250) in
                (20.0, 20.0),  # functional Anki: outside
                (75.0, 75.0),  # spatial Gedit: inside
                (75.0, 110.0),  # spatial Calc: y 110/540 = 0.2037 > 200/1080 = 0.1852 -> outside
                REFUSE,  # spatial Veusz: a refusal on a positive -> wrong
            ],
            strict=True,
        )
    )
    records = _records(ds, answers, (960, 540))
    assert [r["correct"] for r in records] == [True, True, False, True, False, False]
    off = summarize(records, ds.group_fields, format="ui-vision")["official"]
    # Final Avg: basic 2/2, functional 0/1, spatial 1/3 -> (1 + 0 + 1/3) / 3; micro 3/6.
    assert off["macro"]["name"] == "Final Avg" and off["macro"]["accuracy"] == pytest.approx(4 / 9)
    assert off["micro"]["accuracy"] == pytest.approx(0.5)
    assert off["tables"]["split x element_type"]["spatial"]["icon"]["accuracy"] == pytest.approx(1 / 3)
    # The paper's category columns, each file's accuracy per application category (the map's
    # order): basic Productivity (Calc) 1/1, Development (VSCode) 1/1; functional Education (Anki)
    # 0/1; spatial Development (Gedit) 1/1, Productivity (Calc) 0/1, unmapped (Veusz) 0/1.
    cells = off["tables"]["split x app_category"]
    assert list(cells["basic"]) == ["Development", "Productivity", "all"]
    assert cells["basic"]["Productivity"]["accuracy"] == 1 and cells["basic"]["Development"]["accuracy"] == 1
    assert cells["functional"]["Education"]["accuracy"] == 0
    assert {k: v["accuracy"] for k, v in cells["spatial"].items()} == {
        "Development": 1.0,
        "Productivity": 0.0,
        "unmapped": 0.0,
        "all": pytest.approx(1 / 3),
    }
    # The bottom line over the three files: Education 0/1, Development 2/2, Productivity 1/2.
    total = off["totals"]["split x app_category"]
    assert list(total) == ["Education", "Development", "Productivity", "unmapped", "all"]
    assert total["Development"]["accuracy"] == 1 and total["Productivity"]["accuracy"] == 0.5
    assert any("not in its category map" in n and "Veusz" in n for n in ds.notes)
    assert not any("Gedit" in n for n in ds.notes)


def test_ui_vision_category_map_is_the_published_one():
    from lav.eval.formats.ui_vision import APP_CATEGORIES, app_category

    # mapdict_cat2platform.json: 83 applications in 6 categories (README: "83 software
    # applications spanning 6 categories"), none listed twice.
    apps = [a for listed in APP_CATEGORIES.values() for a in listed]
    assert len(apps) == len({a.casefold() for a in apps}) == 83
    assert list(APP_CATEGORIES) == [
        "Education",
        "Browsers",
        "Development",
        "Productivity",
        "Creativity",
        "Entertainment",
    ]
    assert app_category("Mozilla Firefox") == "Browsers" and app_category("Darktable") == "Creativity"
    assert app_category("Veusz") == "unmapped"


# --- OSWorld-G -------------------------------------------------------------------------------------


def _osworld(entries) -> list[dict]:
    """xlang-ai/OSWorld-G benchmark/OSWorld-G.json: id, image_path, image_size, instruction,
    box_type (bbox / polygon / refusal), box_coordinates, GUI_types."""
    out = []
    for i, (kind, coords, *types) in enumerate(entries):
        out.append(
            {
                "id": f"g{i}",
                "image_path": f"g{i}.png",
                "image_size": [200, 100],
                "instruction": "x",
                "box_type": kind,
                "box_coordinates": coords,
                "GUI_types": types[0] if types else ["Button"],
            }
        )
    return out


def test_osworld_g_refusals_scored_or_excluded_by_hand(tmp_path: Path):
    path = _write_json(
        tmp_path / "OSWorld-G.json",
        _osworld(
            [
                ("bbox", [10, 10, 20, 20]),  # [x, y, w, h] -> [10, 30] x [10, 30]
                ("bbox", [100, 50, 20, 20]),
                ("polygon", [40, 30, 80, 30, 40, 70]),  # a triangle
                ("refusal", [0, 0, 0, 0]),
                ("refusal", [0, 0, 0, 0]),
            ]
        ),
    )
    ds = load_dataset(path)
    answers = {
        "g0": (30.0, 30.0),  # the bottom-right corner -> hit
        "g1": (90.0, 50.0),  # left of the box -> miss
        "g2": (72.0, 60.0),  # inside the triangle's box, outside the triangle -> miss
        "g3": REFUSE,  # a refusal sample refused -> right
        "g4": (5.0, 5.0),  # a refusal sample clicked -> wrong
    }
    records = _records(ds, answers, (200, 100))
    assert _correct(records) == {"g0": True, "g1": False, "g2": False, "g3": True, "g4": False}
    official = summarize(records, ds.group_fields, format="osworld-g")
    excluded = summarize(records, ds.group_fields, format="osworld-g", refusals="excluded")
    assert official["accuracy"] == pytest.approx(2 / 5) and official["official"]["micro"]["name"] == "Overall"
    assert excluded["accuracy"] == pytest.approx(1 / 3) and excluded["n"] == 3
    both = official["refusal_conventions"]
    assert both["official"]["accuracy"] == pytest.approx(2 / 5)
    assert both["excluded"]["accuracy"] == pytest.approx(1 / 3)
    assert excluded["refusal_conventions"]["used"] == "excluded"


#: benchmark/buckets.json: {category: [GUI type, ...]}, as sjz5202/GUI-AIMA eval/osworld-g.py
#: (get_group, get_metric) reads it; the type names and their categories as ClawGUI
#: osworldg_metric.py l. 9-48 lists them, "Accordion/Collapsible Panel" in two (its l. 50-53).
BUCKETS = {
    "text_matching": ["Label"],
    "element_recognition": ["Icon", "Image", "Button"],
    "layout_understanding": ["Tab", "Toolbar", "Accordion/Collapsible Panel"],
    "fine_grained_manipulation": ["Slider", "Checkbox", "Accordion/Collapsible Panel"],
}


def _osworld_bucketed(tmp_path: Path) -> Path:
    entries = _osworld(
        [
            ("bbox", [10, 10, 20, 20], ["Label", "Button"]),  # Text Matching, Element Recognition
            ("bbox", [100, 50, 20, 20], ["Slider"]),  # Fine-grained Manipulation
            ("polygon", [40, 30, 80, 30, 40, 70], ["Accordion/Collapsible Panel"]),  # Layout, Fine
            ("bbox", [10, 10, 20, 20], ["Tab", "Icon"]),  # Layout Understanding, Element Recognition
            ("refusal", [0, 0, 0, 0], ["Button"]),  # Refusal alone
            ("bbox", [10, 10, 20, 20], ["Unlisted widget"]),  # no category
        ]
    )
    _write_json(tmp_path / "OSWorld-G.json", entries)
    _write_json(tmp_path / "OSWorld-G_refined.json", [{**e, "instruction": "longer"} for e in entries])
    _write_json(tmp_path / "buckets.json", BUCKETS)
    return tmp_path


def test_osworld_g_refined_file_and_its_buckets_count_a_sample_in_each_of_its_categories(tmp_path: Path):
    ds = load_dataset(_osworld_bucketed(tmp_path))
    assert ds.format == "osworld-g" and ds.samples[0].instruction == "longer"  # the refined release
    assert any("buckets.json: 5 of 6 samples" in n for n in ds.notes)
    answers = {
        "g0": (30.0, 30.0),  # the box's corner -> hit
        "g1": (90.0, 50.0),  # left of the box -> miss
        "g2": (72.0, 60.0),  # inside the triangle's box, outside the triangle -> miss
        "g3": (20.0, 20.0),  # inside -> hit
        "g4": REFUSE,  # a refusal sample refused -> right
        "g5": (15.0, 15.0),  # inside -> hit
    }
    records = _records(ds, answers, (200, 100))
    assert _correct(records) == {"g0": True, "g1": False, "g2": False, "g3": True, "g4": True, "g5": True}
    s = summarize(records, ds.group_fields, format="osworld-g")
    off = s["official"]
    # The paper's columns, in its order: Text Matching g0 = 1/1, Element Recognition g0 g3 = 2/2,
    # Layout Understanding g2 g3 = 1/2, Fine-grained Manipulation g1 g2 = 0/2, Refusal g4 = 1/1;
    # Overall g0 g3 g4 g5 of six = 4/6.
    assert {k: (v["correct"], v["n"]) for k, v in off["buckets"].items()} == {
        "Text Matching": (1, 1),
        "Element Recognition": (2, 2),
        "Layout Understanding": (1, 2),
        "Fine-grained Manipulation": (0, 2),
        "Refusal": (1, 1),
    }
    assert list(off["buckets"])[-1] == "Refusal"
    assert off["micro"]["name"] == "Overall" and off["micro"]["accuracy"] == pytest.approx(4 / 6)
    # Refusal samples left out (ClawGUI's default): no Refusal column, Overall 3/5.
    excluded = summarize(records, ds.group_fields, format="osworld-g", refusals="excluded")["official"]
    assert "Refusal" not in excluded["buckets"] and excluded["micro"]["accuracy"] == pytest.approx(3 / 5)
    page = build_report({**s, "format": "osworld-g"}, records, None)
    assert page.index("Text Matching") < page.index("Fine-grained Manipulation") < page.index("Refusal")


def test_osworld_g_classification_result_names_samples_by_id(tmp_path: Path):
    """classification_result.json (the official scripts' file): {"classified": {category:
    [{"id": id, ...}]}}, as its runner reads it; a sample may be in several."""
    _write_json(
        tmp_path / "OSWorld-G.json",
        _osworld([("bbox", [10, 10, 20, 20]), ("bbox", [100, 50, 20, 20]), ("refusal", [0, 0, 0, 0])]),
    )
    classified = {"text_matching": [{"id": "g0"}, {"id": "g1"}], "element_recognition": [{"id": "g0"}]}
    classified["refusal"] = [{"id": "g2"}]
    _write_json(tmp_path / "classification_result.json", {"classified": classified, "unclassified": []})
    ds = load_dataset(tmp_path)
    records = _records(ds, {"g0": (30.0, 30.0), "g1": (90.0, 50.0), "g2": (5.0, 5.0)}, (200, 100))
    off = summarize(records, ds.group_fields, format="osworld-g")["official"]
    # Text Matching g0 g1 = 1/2, Element Recognition g0 = 1/1, Refusal g2 clicked = 0/1.
    assert {k: v["accuracy"] for k, v in off["buckets"].items()} == {
        "Text Matching": 0.5,
        "Element Recognition": 1.0,
        "Refusal": 0.0,
    }


def test_osworld_g_classification_result_is_taken_over_buckets_json_as_the_official_script_does(
    tmp_path: Path,
):
    """Both category files beside the annotations (the benchmark/ folder holds both): OSWorld-G's
    own qwen25_vllm_osworld_g.py is given ``--classification_path`` (evaluation/README.md l. 19-23,
    copy at Onifin/Holo3.1-OSWorld-G@0fbdd89) and its runner (holo_osworld_g.py
    BenchmarkRunner.evaluate) counts a sample in every category whose list holds its ``id`` and in
    ``unclassified`` when none does; Overall is correct / total over every sample."""
    _osworld_bucketed(tmp_path)  # buckets.json would put g0 in Text Matching and Element Recognition
    classified = {
        "text_matching": [{"id": "g1"}, {"id": "g3"}],
        "element_recognition": [{"id": "g0"}],
        "fine_grained_manipulation": [{"id": "g2"}, {"id": "g3"}],
        "refusal": [{"id": "g4"}],
    }  # g5 in none
    _write_json(tmp_path / "classification_result.json", {"classified": classified})
    ds = load_dataset(tmp_path)
    assert any("classification_result.json: 5 of 6 samples" in n for n in ds.notes)
    assert any("buckets.json is there too" in n for n in ds.notes)
    answers = {
        "g0": (30.0, 30.0),  # [10, 10, 20, 20] as x, y, w, h ends at (30, 30): its corner -> hit
        "g1": (90.0, 50.0),  # left of [100, 50, 20, 20] -> miss
        "g2": (72.0, 60.0),  # outside the triangle (40,30)-(80,30)-(40,70): x + y = 132 > 110 -> miss
        "g3": (20.0, 20.0),  # inside -> hit
        "g4": REFUSE,  # a refusal sample refused -> right
        "g5": (15.0, 15.0),  # inside -> hit
    }
    records = _records(ds, answers, (200, 100))
    assert _correct(records) == {"g0": True, "g1": False, "g2": False, "g3": True, "g4": True, "g5": True}
    off = summarize(records, ds.group_fields, format="osworld-g")["official"]
    # By the official rule, by hand: Text Matching g1 g3 = 1/2; Element Recognition g0 = 1/1;
    # Fine-grained Manipulation g2 g3 = 1/2; Refusal g4 = 1/1; unclassified g5 = 1/1 (after the
    # paper's columns); no sample in Layout Understanding. Overall g0 g3 g4 g5 of six = 4/6.
    assert {k: (v["correct"], v["n"]) for k, v in off["buckets"].items()} == {
        "Text Matching": (1, 2),
        "Element Recognition": (1, 1),
        "Fine-grained Manipulation": (1, 2),
        "Refusal": (1, 1),
        "unclassified": (1, 1),
    }
    assert list(off["buckets"]) == [
        "Text Matching",
        "Element Recognition",
        "Fine-grained Manipulation",
        "Refusal",
        "unclassified",
    ]
    assert off["micro"]["name"] == "Overall" and off["micro"]["accuracy"] == pytest.approx(4 / 6)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("buckets.json", {"classified": {"text_matching": ["g0"]}}),  # ids where GUI types belong
        ("buckets.json", {"text_matching": "Label"}),
        ("classification_result.json", {"text_matching": [{"id": "g0"}]}),  # no "classified"
        ("classification_result.json", {"classified": {"text_matching": ["g0"]}}),  # bare ids
    ],
)
def test_osworld_g_category_file_of_another_shape_stops_with_one_line(tmp_path: Path, name, data):
    _write_json(tmp_path / "OSWorld-G.json", _osworld([("bbox", [10, 10, 20, 20])]))
    _write_json(tmp_path / name, data)
    with pytest.raises(LavError) as excinfo:
        load_dataset(tmp_path)
    message = str(excinfo.value)
    assert "\n" not in message and name in message and "remove it" in message


def test_osworld_g_file_of_corner_boxes_is_refused_until_bbox_says_so(tmp_path: Path):
    # [150, 20, 190, 60] read as [x, y, w, h] would end at x = 340 on a 200 px wide image.
    path = _write_json(tmp_path / "OSWorld-G.json", _osworld([("bbox", [150, 20, 190, 60])]))
    with pytest.raises(LavError) as excinfo:
        load_dataset(path)
    message = str(excinfo.value)
    assert "\n" not in message and "--bbox xywh" in message and "--bbox xyxy" in message and "g0" in message
    assert load_dataset(path, bbox="xyxy").samples[0].box == (150, 20, 190, 60)


# --- MMBench-GUI L2 --------------------------------------------------------------------------------


def test_mmbench_gui_l2_pixels_fractions_minus_one_and_average_accuracy_by_hand(tmp_path: Path):
    """open-compass/MMBench-GUI L2_annotations.json (l2_element_grounding.py): image_path under
    offline_images/<platform>/, instruction, bbox (pixels or 0-1, -1 taken as 0), grounding_type,
    platform, app_name, data_type."""
    root = tmp_path / "MMBench-GUI"
    rows = [
        ("w1", "basic", "os_windows", "text", [10, 10, 50, 30]),
        ("w2", "basic", "os_windows", "icon", [0.5, 0.5, 0.75, 1.0]),
        ("a1", "basic", "os_android", "text", [-1, 20, 40, 60]),
        ("a2", "advanced", "os_android", "icon", [10, 10, 20, 20]),
        ("w3", "advanced", "os_windows", "text", [10, 10, 20, 20]),
        ("w4", "advanced", "os_windows", "icon", [60, 40, 90, 70]),
        ("w5", "advanced", "os_windows", "icon", [60, 40, 90, 70]),
    ]
    entries = []
    for ident, level, platform, kind, bbox in rows:
        _image(root / "offline_images" / platform / f"{ident}.png", (100, 80))
        entries.append(
            {
                "index": ident,
                "image_path": f"{ident}.png",
                "instruction": "x",
                "bbox": bbox,
                "grounding_type": level,
                "platform": platform,
                "app_name": "app",
                "data_type": kind,
            }
        )
    _write_json(root / "L2_annotations.json", entries)
    ds = load_dataset(root)
    assert ds.format == "mmbench-gui"
    answers = {
        "w1": (50.0, 30.0),  # the corner (0.5, 0.375) of [0.1, 0.125, 0.5, 0.375]
        "w2": (60.0, 60.0),  # (0.6, 0.75) in the 0-1 box
        "a1": (0.0, 20.0),  # x1 -1 -> 0: the left edge
        "a2": (90.0, 70.0),  # miss
        "w3": GARBLED,  # wrong_format (-1 in the script's stats)
        "w4": (75.0, 55.0),  # hit
        "w5": (10.0, 10.0),  # miss
    }
    records = _records(ds, answers, (100, 80))
    assert _correct(records) == {
        "w1": True,
        "w2": True,
        "a1": True,
        "a2": False,
        "w3": False,
        "w4": True,
        "w5": False,
    }
    off = summarize(records, ds.group_fields, format="mmbench-gui")["official"]
    # Basic accuracy 3/3, Advanced accuracy 1/4; Average accuracy = their mean; micro 4/7.
    table = off["tables"]["grounding_type x platform"]
    assert table["basic"]["all"]["accuracy"] == 1 and table["advanced"]["all"]["accuracy"] == 0.25
    # The platform columns named and ordered as the paper's table (README l. 31: Windows, macOS,
    # Linux, iOS, Android, Web): advanced Windows w3 w4 w5 = 1/3, Android a2 = 0/1.
    assert list(table["advanced"]) == ["Windows", "Android", "all"]
    assert table["advanced"]["Windows"]["accuracy"] == pytest.approx(1 / 3)
    assert off["totals"]["grounding_type x platform"]["Windows"]["accuracy"] == pytest.approx(3 / 5)
    assert off["macro"]["name"] == "Average accuracy" and off["macro"]["accuracy"] == pytest.approx(0.625)
    assert off["micro"]["accuracy"] == pytest.approx(4 / 7)


# --- VenusBench-GD ---------------------------------------------------------------------------------


def test_venusbench_gd_refusal_file_is_negatives_and_stored_size_divides(tmp_path: Path):
    """inclusionAI/UI-Venus@VenusBench-GD: instruction/<task>.json entries (examples/
    grounding_meta_format.json plus instruction_zh, eval.py l. 400): img_filename, bbox
    [x1, y1, x2, y2], instruction, instruction_zh, application, id, ui_type, platform, img_size."""
    root = tmp_path / "VenusBench-GD"
    base = {"instruction_zh": "关闭", "application": "windows", "platform": "desktop", "img_size": [960, 540]}
    _image(root / "images" / "desktop" / "pc.png", (960, 540))
    _write_json(
        root / "instruction" / "element_grounding.json",
        [
            {
                **base,
                "id": "e0",
                "img_filename": "desktop/pc.png",
                "bbox": [910, 78, 954, 112],
                "instruction": "close",
                "ui_type": "icon",
            },
            {
                **base,
                "id": "e1",
                "img_filename": "desktop/pc.png",
                "bbox": [10, 10, 100, 40],
                "instruction": "file",
                "ui_type": "text",
            },
        ],
    )
    _write_json(
        root / "instruction" / "refusal_spatial.json",
        [
            {
                **base,
                "id": "r0",
                "img_filename": "desktop/pc.png",
                "bbox": [0, 0, 1, 1],
                "instruction": "x",
                "ui_type": "icon",
            },
            {
                **base,
                "id": "r1",
                "img_filename": "desktop/pc.png",
                "bbox": [0, 0, 1, 1],
                "instruction": "y",
                "ui_type": "icon",
            },
        ],
    )
    ds = load_dataset(root)
    assert ds.format == "venusbench-gd"
    answers = {"e0": (954.0, 112.0), "e1": (5.0, 5.0), "r0": REFUSE, "r1": (100.0, 100.0)}
    records = _records(ds, answers, (960, 540))
    assert _correct(records) == {"e0": True, "e1": False, "r0": True, "r1": False}
    off = summarize(records, ds.group_fields, format="venusbench-gd")["official"]
    assert off["micro"]["accuracy"] == 0.5
    assert off["tables"]["split x ui_type"]["refusal_spatial"]["icon"]["accuracy"] == 0.5
    # eval.py's overall text_acc / icon_acc (e1; e0 r0 r1) and its per-application numbers.
    total = off["totals"]["platform x ui_type"]
    assert total["text"]["accuracy"] == 0 and total["icon"]["accuracy"] == pytest.approx(2 / 3)
    assert off["tables"]["application x ui_type"]["windows"]["all"]["accuracy"] == 0.5


# --- rows: boxes past the image ----------------------------------------------------------------------


def test_jsonl_boxes_past_the_image_are_refused_until_bbox_says_how(tmp_path: Path):
    path = tmp_path / "data.jsonl"
    # As corners, x2 = 300 on a 200 px wide image: the file may hold [x, y, w, h].
    path.write_text(
        json.dumps(
            {"image": "a.png", "instruction": "x", "bbox": [150, 10, 300, 40], "image_size": [200, 100]}
        )
        + "\n"
    )
    with pytest.raises(LavError) as excinfo:
        load_dataset(path)
    assert "--bbox xywh" in str(excinfo.value) and "ends past" in str(excinfo.value)
    # Said with --bbox, the reading is the user's: no refusal either way.
    assert load_dataset(path, bbox="xyxy").samples[0].box == (150, 10, 300, 40)
    path.write_text(
        json.dumps(
            {"image": "a.png", "instruction": "x", "bbox": [150, 10, 30, 40], "image_size": [200, 100]}
        )
        + "\n"
    )
    assert load_dataset(path, bbox="xywh").samples[0].box == (150, 10, 180, 50)


# --- missing images: stop before the model loads -------------------------------------------------


def test_missing_images_stop_lav_eval_before_the_model_loads(pro: Path, capsys):
    from lav.cli import main

    _image(pro / "images" / "photoshop_windows" / "a.png", (500, 250))
    # vscode_macos/b.png is missing: 3 of the 7 samples. The model "m" does not exist, so reaching
    # the load would fail with another message.
    assert main(["eval", "--model", "m", "--data", str(pro), "--out", str(pro / "o")]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("lav: data:")]
    assert len(err) == 1 and "3 of 7 samples' images are missing" in err[0] and "vscode_macos/b.png" in err[0]
    assert "--allow-missing" in err[0]
    assert main(["eval", "--model", "m", "--data", str(pro), "--out", str(pro / "o"), "--allow-missing"]) == 2
    assert "images are missing" not in capsys.readouterr().err
