"""lav.eval datasets: every benchmark format from a fixture that follows its published schema field for
field, format detection, click scoring as the official scripts do, one-line errors on bad data, and
the demo benchmark read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lav.errors import LavError
from lav.eval import (
    FORMATS,
    Sample,
    detect_format,
    in_target,
    load_dataset,
    write_demo_benchmark,
)
from tests.deps import require


def _write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --- ScreenSpot v1 / v2 ------------------------------------------------------------------------


@pytest.fixture
def screenspot_v1(tmp_path: Path) -> Path:
    """SeeClick's release: screenspot_{mobile,web}.json, bbox [x, y, w, h] px, and images/."""
    root = tmp_path / "ScreenSpot"
    _write_json(
        root / "screenspot_mobile.json",
        [
            {
                "img_filename": "mobile_1ca5b944.png",
                "bbox": [223, 78, 601, 593],
                "instruction": "check the weather",
                "data_type": "icon",
                "data_source": "ios",
            },
            {
                "img_filename": "mobile_1ca5b944.png",
                "bbox": [1936, 806, 120, 166],  # w < x: not a valid [x1, y1, x2, y2]
                "instruction": "open the camera",
                "data_type": "text",
                "data_source": "ios",
            },
        ],
    )
    _write_json(
        root / "screenspot_web.json",
        [
            {
                "img_filename": "web_3b0ad239.png",
                "bbox": [42, 1102, 197, 70],
                "instruction": "view the details of the item",
                "data_type": "text",
                "data_source": "shop",
            }
        ],
    )
    (root / "images").mkdir()
    return root


def test_screenspot_v1_boxes_are_xywh_converted_to_corners(screenspot_v1: Path):
    ds = load_dataset(screenspot_v1)
    assert ds.format == "screenspot"
    assert [s.id for s in ds.samples] == ["screenspot_mobile:0", "screenspot_mobile:1", "screenspot_web:0"]
    first, second, web = ds.samples
    assert first.box == (223, 78, 824, 671)
    assert second.box == (1936, 806, 2056, 972)
    assert web.box == (42, 1102, 239, 1172)
    assert first.image == (screenspot_v1 / "images" / "mobile_1ca5b944.png").resolve()
    assert first.target == "box" and first.image_size is None
    assert first.groups == {"split": "mobile", "data_type": "icon", "data_source": "ios"}
    assert web.groups["split"] == "web"
    assert ds.group_fields == ("split", "data_type", "data_source")
    assert any("screenspot_mobile.json: bbox read as [x, y, w, h]" in n for n in ds.notes)


def test_screenspot_file_whose_boxes_fit_both_readings_is_refused_until_bbox_says_which(tmp_path: Path):
    path = _write_json(
        tmp_path / "screenspot_desktop.json",
        [{"img_filename": "a.png", "bbox": [10, 20, 30, 40], "instruction": "x", "data_type": "text"}],
    )
    with pytest.raises(LavError) as excinfo:
        load_dataset(path, images=tmp_path)
    message = _one_line_error(excinfo)
    assert "fit both" in message and "--bbox xywh" in message and "--bbox xyxy" in message
    assert load_dataset(path, images=tmp_path, bbox="xywh").samples[0].box == (10, 20, 40, 60)
    assert load_dataset(path, images=tmp_path, bbox="xyxy").samples[0].box == (10, 20, 30, 40)


def test_gui_actor_converted_v2_copy_is_detected_as_corners(tmp_path: Path):
    """GUI-Actor's verifier/ScreenSpot-v2-new: img_size, platform, ui_type, group, [x1, y1, x2, y2]."""
    entries = [
        {
            "img_filename": "mobile_1ca5b944.png",
            "bbox": [223, 78, 824, 671],
            "instruction": "check the weather",
            "img_size": [2360, 1640],
            "platform": "ios",
            "ui_type": "icon",
            "group": "mobile",
        },
        {
            "img_filename": "mobile_1ca5b944.png",
            "bbox": [1936, 806, 2056, 972],  # as [x, y, w, h] it would end at x = 3992 > 2360
            "instruction": "open the camera",
            "img_size": [2360, 1640],
            "platform": "ios",
            "ui_type": "text",
            "group": "mobile",
        },
    ]
    path = _write_json(tmp_path / "ScreenSpot-v2-new" / "screenspot_mobile_v2.json", entries)
    assert detect_format(path) == "screenspot"
    ds = load_dataset(path)
    assert [s.box for s in ds.samples] == [(223, 78, 824, 671), (1936, 806, 2056, 972)]
    assert ds.samples[0].image_size == (2360, 1640)
    assert ds.samples[1].groups == {
        "split": "mobile",
        "group": "mobile",
        "platform": "ios",
        "ui_type": "text",
    }
    assert any("[x1, y1, x2, y2]" in n and "GUI-Actor" in n and "box 1" in n for n in ds.notes)
    # Images default to the folder itself when it has no images/.
    assert ds.samples[0].image.parent == path.parent.resolve()


# --- ScreenSpot-Pro ----------------------------------------------------------------------------


@pytest.fixture
def screenspot_pro(tmp_path: Path) -> Path:
    root = tmp_path / "ScreenSpot-Pro"
    common = {
        "img_size": [3840, 2160],
        "platform": "windows",
        "group": "Creative",
        "application": "photoshop",
    }
    _write_json(
        root / "annotations" / "photoshop_windows.json",
        [
            {
                "id": "photoshop_windows_0",
                "img_filename": "photoshop_windows/screenshot_2024-11-20_14-00-58.png",
                "bbox": [1845, 1045, 1880, 1079],
                "instruction": "open the layer panel",
                "instruction_cn": "打开图层面板",
                "ui_type": "icon",
                **common,
            },
            {
                "id": "photoshop_windows_1",
                "img_filename": "photoshop_windows/screenshot_2024-11-20_14-00-58.png",
                "bbox": [600, 40, 520, 12],  # reversed corners: put in order
                "instruction": "select the brush tool",
                "instruction_cn": "选择画笔工具",
                "ui_type": "text",
                "gt_type": "positive",
                **common,
            },
            {
                "id": "photoshop_windows_2",
                "img_filename": "photoshop_windows/screenshot_2024-11-20_14-00-58.png",
                "instruction": "click the 3D print button",
                "instruction_cn": "点击3D打印按钮",
                "ui_type": "icon",
                "gt_type": "negative",
                **common,
            },
        ],
    )
    _write_json(
        root / "annotations" / "vscode_macos.json",
        [
            {
                "id": "vscode_macos_0",
                "img_filename": "vscode_macos/screenshot_2024-11-19_09-31-40.png",
                "bbox": [10, 400, 58, 448],
                "img_size": [3024, 1964],
                "instruction": "open the extensions view",
                "instruction_cn": "打开扩展视图",
                "application": "vscode",
                "platform": "macos",
                "group": "Dev",
                "ui_type": "icon",
            }
        ],
    )
    (root / "images").mkdir()
    return root


def test_screenspot_pro_reads_corners_negatives_and_groups(screenspot_pro: Path):
    ds = load_dataset(screenspot_pro)
    assert ds.format == "screenspot-pro" and ds.name == "ScreenSpot-Pro"
    by_id = {s.id: s for s in ds.samples}
    assert list(by_id) == [
        "photoshop_windows_0",
        "photoshop_windows_1",
        "photoshop_windows_2",
        "vscode_macos_0",
    ]
    first = by_id["photoshop_windows_0"]
    assert first.box == (1845, 1045, 1880, 1079) and first.image_size == (3840, 2160)
    assert (
        first.image
        == (screenspot_pro / "images/photoshop_windows/screenshot_2024-11-20_14-00-58.png").resolve()
    )
    assert first.groups == {
        "split": "photoshop_windows",
        "group": "Creative",
        "application": "photoshop",
        "platform": "windows",
        "ui_type": "icon",
    }
    assert by_id["photoshop_windows_1"].box == (520, 12, 600, 40)
    negative = by_id["photoshop_windows_2"]
    assert negative.target == "negative" and negative.box is None
    assert negative.groups["gt_type"] == "negative"
    assert by_id["vscode_macos_0"].groups["group"] == "Dev"
    assert set(ds.group_fields) >= {"group", "application", "platform", "ui_type", "gt_type"}
    assert any("1 gt_type negative" in n for n in ds.notes)
    assert any("reversed corners" in n for n in ds.notes)


def test_screenspot_pro_single_annotation_file_finds_the_images_folder(screenspot_pro: Path):
    path = screenspot_pro / "annotations" / "vscode_macos.json"
    assert detect_format(path) == "screenspot-pro"
    ds = load_dataset(path)
    assert (
        ds.samples[0].image
        == (screenspot_pro / "images/vscode_macos/screenshot_2024-11-19_09-31-40.png").resolve()
    )


# --- OSWorld-G ---------------------------------------------------------------------------------


@pytest.fixture
def osworld_g(tmp_path: Path) -> Path:
    bench = tmp_path / "OSWorld-G" / "benchmark"
    base = {"image_path": "0FOB4CLBT2.png", "image_size": [1920, 1080]}
    _write_json(
        bench / "OSWorld-G.json",
        [
            {
                "id": "0FOB4CLBT2-0",
                **base,
                "instruction": 'Click the button with a funnel icon right of the "search settings" bar',
                "box_type": "bbox",
                "box_coordinates": [1422.9, 326.4, 26.68, 28.4],
                "GUI_types": ["Label", "Button", "Icon"],
            },
            {
                "id": "0FOB4CLBT2-1",
                **base,
                "instruction": "Drag the slider's knob",
                "box_type": "polygon",
                # An L shape, flat: (100,100) (200,100) (200,150) (150,150) (150,200) (100,200).
                "box_coordinates": [100, 100, 200, 100, 200, 150, 150, 150, 150, 200, 100, 200],
                "GUI_types": ["Slider"],
            },
            {
                "id": "0FOB4CLBT2-2",
                **base,
                "instruction": "Select the triangle handle",
                "box_type": "polygon",
                "box_coordinates": [[300, 300], [400, 300], [350, 380]],
                "GUI_types": [],
            },
            {
                "id": "0FOB4CLBT2-3",
                **base,
                "instruction": "Click the 'Export to PDF' button",
                "box_type": "refusal",
                "box_coordinates": [-1, -1, -1, -1],
                "GUI_types": ["Button"],
            },
        ],
    )
    (bench / "images").mkdir()
    # {category: [GUI type, ...]} (GUI-AIMA eval/osworld-g.py get_group; ClawGUI osworldg_metric.py).
    _write_json(
        bench / "buckets.json", {"element_recognition": ["Icon", "Button"], "text_matching": ["Label"]}
    )
    return bench


def test_osworld_g_reads_boxes_polygons_both_ways_and_refusals(osworld_g: Path):
    ds = load_dataset(osworld_g)
    assert ds.format == "osworld-g"
    box, flat, paired, refusal = ds.samples
    assert box.id == "0FOB4CLBT2-0" and box.target == "box"
    assert box.box == pytest.approx((1422.9, 326.4, 1449.58, 354.8))
    assert box.image == (osworld_g / "images" / "0FOB4CLBT2.png").resolve() and box.image_size == (1920, 1080)
    # buckets.json beside the annotations: each sample in every category listing one of its GUI
    # types; a refusal sample in "refusal" alone; one without a listed type in none.
    assert box.groups == {
        "box_type": "bbox",
        "GUI_types": "Label/Button/Icon",
        "bucket": "element_recognition|text_matching",
    }
    assert flat.groups["bucket"] == "none"
    assert flat.target == "polygon" and flat.polygon[:3] == ((100, 100), (200, 100), (200, 150))
    assert flat.box == (100, 100, 200, 200)
    assert paired.polygon == ((300, 300), (400, 300), (350, 380)) and paired.box == (300, 300, 400, 380)
    assert paired.groups["GUI_types"] == "none"
    assert refusal.target == "refusal" and refusal.box is None and refusal.groups["bucket"] == "refusal"
    assert any("1 bbox, 2 polygon, 1 refusal" in n for n in ds.notes)
    assert any("buckets.json: 2 of 4 samples" in n for n in ds.notes)
    # The concave notch of the L is inside its bounding box but outside the polygon.
    assert in_target(flat, 120, 180) and in_target(flat, 180, 120)
    assert not in_target(flat, 180, 180)


# --- UI-Vision ---------------------------------------------------------------------------------


@pytest.fixture
def ui_vision(tmp_path: Path) -> Path:
    root = tmp_path / "ui-vision"
    folder = root / "annotations" / "element_grounding"
    base = {
        "image_path": "libreoffice_calc/screen_0001.png",
        "image_size": [1920, 1080],
        "platform": "LibreOffice Calc",
    }
    _write_json(
        folder / "element_grounding_basic.json",
        [
            {**base, "bbox": [12, 40, 44, 70], "prompt_to_evaluate": "Bold", "element_type": "button"},
            {**base, "bbox": [300, 90, 200, 60], "prompt_to_evaluate": "Name Box", "element_type": "textbox"},
        ],
    )
    _write_json(
        folder / "element_grounding_spatial.json",
        [
            {
                **base,
                "bbox": [50, 40, 82, 70],
                "prompt_to_evaluate": "The button right of Bold",
                "element_type": "button",
            }
        ],
    )
    (root / "images").mkdir()
    return root


def test_ui_vision_swaps_reversed_corners_and_finds_images_two_levels_up(ui_vision: Path):
    ds = load_dataset(ui_vision)
    assert ds.format == "ui-vision"
    bold, name_box, spatial = ds.samples
    assert bold.box == (12, 40, 44, 70) and bold.instruction == "Bold"
    assert name_box.box == (200, 60, 300, 90)
    assert bold.image == (ui_vision / "images/libreoffice_calc/screen_0001.png").resolve()
    assert bold.id == "element_grounding_basic:0" and spatial.id == "element_grounding_spatial:0"
    # app_category: the platform's category in UI-Vision's mapdict_cat2platform.json.
    assert bold.groups == {
        "split": "basic",
        "platform": "LibreOffice Calc",
        "element_type": "button",
        "app_category": "Productivity",
    }
    assert spatial.groups["split"] == "spatial"
    assert any("1 box(es) had reversed corners" in n for n in ds.notes)
    one = load_dataset(ui_vision / "annotations/element_grounding/element_grounding_spatial.json")
    assert one.samples[0].image == spatial.image


# --- JSON Lines --------------------------------------------------------------------------------


def test_jsonl_rows_keep_ids_and_every_scalar_field_as_a_group(tmp_path: Path):
    rows = [
        {
            "id": "a1",
            "image": "shots/one.png",
            "instruction": "Click Save",
            "bbox": [10, 10, 50, 30],
            "app": "editor",
        },
        {
            "image": "shots/two.png",
            "instruction": "Click Open",
            "bbox": [90, 40, 60, 20],
            "app": "files",
            "dark": True,
        },
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n", encoding="utf-8")
    assert detect_format(path) == "jsonl"
    ds = load_dataset(path)
    assert [s.id for s in ds.samples] == ["a1", "mine:1"]
    assert ds.samples[0].image == (tmp_path / "shots/one.png").resolve()
    assert ds.samples[1].box == (60, 20, 90, 40)
    assert ds.samples[1].groups == {"app": "files", "dark": "True"}
    assert ds.group_fields == ("app", "dark")


def test_jsonl_fraction_boxes_are_scaled_by_the_image_size(tmp_path: Path):
    path = tmp_path / "fr.jsonl"
    row = {"image": "a.png", "instruction": "x", "bbox": [0.1, 0.2, 0.3, 0.4], "image_size": [1000, 500]}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    ds = load_dataset(path)
    assert ds.samples[0].box == pytest.approx((100, 100, 300, 200))
    assert any("fractions" in n for n in ds.notes)


# --- Hugging Face datasets ---------------------------------------------------------------------


def _screens(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (200 + 10 * i, 100), (i * 40, 90, 160)) for i in range(n)]


def _datasets():
    """The `datasets` package that builds the fixtures (under the transformers 4.57 overlay, the
    datasets 4 that make install puts into .oldest: datasets 5 needs huggingface_hub 1)."""
    return require("datasets", "make install (it also puts a datasets that fits 4.57's hub into .oldest)")


def test_hf_save_to_disk_copy_of_screenspot_with_fraction_boxes(tmp_path: Path):
    """rootsautomation/ScreenSpot's columns: file_name, bbox, instruction, data_type, data_source, image."""
    datasets = _datasets()
    features = datasets.Features(
        {
            "file_name": datasets.Value("string"),
            "bbox": datasets.Sequence(datasets.Value("float64")),
            "instruction": datasets.Value("string"),
            "data_type": datasets.Value("string"),
            "data_source": datasets.Value("string"),
            "image": datasets.Image(),
        }
    )
    images = _screens(3)
    data = {
        "file_name": ["mobile_a.png", "web_b.png", "pc_c.png"],
        "bbox": [[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 1.0]],
        "instruction": ["open the menu", "scroll", "close the window"],
        "data_type": ["icon", "text", "icon"],
        "data_source": ["ios", "shop", "windows"],
        "image": images,
    }
    folder = tmp_path / "ScreenSpot-hf"
    datasets.Dataset.from_dict(data, features=features).save_to_disk(str(folder))
    assert detect_format(folder) == "hf"
    cache = tmp_path / "out" / "images"
    ds = load_dataset(folder, cache=cache, limit=2)
    assert ds.format == "hf" and len(ds.samples) == 2
    first, second = ds.samples
    assert first.id == "ScreenSpot-hf:0"
    assert first.image_size == (200, 100) and first.box == pytest.approx((20, 20, 100, 60))
    assert second.image_size == (210, 100) and second.box == pytest.approx((0, 0, 210, 100))
    assert first.groups == {"data_type": "icon", "data_source": "ios"}
    assert first.image.parent == cache.resolve()
    with Image.open(first.image) as im:
        assert im.size == (200, 100) and im.getpixel((0, 0)) == (0, 90, 160)
    assert sorted(p.name for p in cache.iterdir()) == sorted([first.image.name, second.image.name])
    assert any("fractions" in n for n in ds.notes)
    before = first.image.stat().st_mtime_ns
    load_dataset(folder, cache=cache, limit=2)  # a resumed run rewrites nothing
    assert first.image.stat().st_mtime_ns == before


def test_hf_parquet_with_pixel_xywh_boxes_is_detected_from_the_boxes(tmp_path: Path):
    datasets = _datasets()
    data = {
        "id": ["s0", "s1"],
        "bbox": [[150, 40, 30, 20], [10, 10, 40, 40]],  # s0 has w < x: not [x1, y1, x2, y2]
        "instruction": ["a", "b"],
        "ui_type": ["icon", "text"],
        "image": _screens(2),
    }
    path = tmp_path / "data" / "test-00000-of-00001.parquet"
    path.parent.mkdir()
    feats = datasets.Features(
        {
            "id": datasets.Value("string"),
            "bbox": datasets.Sequence(datasets.Value("int64")),
            "instruction": datasets.Value("string"),
            "ui_type": datasets.Value("string"),
            "image": datasets.Image(),
        }
    )
    datasets.Dataset.from_dict(data, features=feats).to_parquet(str(path))
    assert detect_format(path) == "hf" and detect_format(tmp_path / "data") == "hf"
    ds = load_dataset(tmp_path / "data", cache=tmp_path / "cache")
    assert [s.id for s in ds.samples] == ["s0", "s1"]
    assert ds.samples[0].box == (150, 40, 180, 60) and ds.samples[1].box == (10, 10, 50, 50)
    assert ds.samples[0].groups == {"ui_type": "icon"}
    assert any("[x, y, w, h] pixels" in n for n in ds.notes)


# --- detection and scoring ---------------------------------------------------------------------


def test_detect_format_names_every_layout(screenspot_v1, screenspot_pro, osworld_g, ui_vision):
    assert detect_format(screenspot_v1) == "screenspot"
    assert detect_format(screenspot_v1 / "screenspot_web.json") == "screenspot"
    assert detect_format(screenspot_pro) == "screenspot-pro"
    assert detect_format(osworld_g) == "osworld-g"
    assert detect_format(osworld_g / "OSWorld-G.json") == "osworld-g"
    assert detect_format(ui_vision) == "ui-vision"
    assert set(FORMATS) == {
        "screenspot",
        "screenspot-pro",
        "osworld-g",
        "ui-vision",
        "mmbench-gui",
        "venusbench-gd",
        "jsonl",
        "hf",
    }


def test_detection_reads_fields_of_every_entry_not_just_the_first(tmp_path: Path):
    """A renamed OSWorld-G file is found by its fields; one entry lacking them rules the format out."""
    entry = {
        "id": "x",
        "image_path": "a.png",
        "instruction": "i",
        "box_type": "bbox",
        "box_coordinates": [1, 2, 3, 4],
    }
    assert detect_format(_write_json(tmp_path / "renamed.json", [entry, entry])) == "osworld-g"
    mixed = _write_json(tmp_path / "mixed.json", [entry, {"image_path": "a.png", "instruction": "i"}])
    with pytest.raises(LavError) as excinfo:
        detect_format(mixed)
    assert "supported formats" in _one_line_error(excinfo)


def _sample(target: str, box=None, polygon=None) -> Sample:
    return Sample("s", Path("a.png"), "i", target, box, polygon, None, {})


def test_in_target_counts_box_edges_and_corners():
    s = _sample("box", (10, 20, 30, 40))
    assert in_target(s, 10, 20) and in_target(s, 30, 40) and in_target(s, 20, 40)
    assert not in_target(s, 30.001, 30) and not in_target(s, 20, 19.999)
    assert not in_target(s, None, None)


def test_in_target_polygons_include_edges_and_exclude_a_concave_notch():
    # A U shape: the notch (40..60 x 0..50) is inside the bounding box, outside the polygon.
    u = ((0, 0), (40, 0), (40, 50), (60, 50), (60, 0), (100, 0), (100, 100), (0, 100))
    s = _sample("polygon", (0, 0, 100, 100), u)
    assert in_target(s, 20, 20) and in_target(s, 80, 20) and in_target(s, 50, 70)
    assert not in_target(s, 50, 20)  # in the notch
    assert in_target(s, 50, 50)  # on the notch's floor: an edge
    assert in_target(s, 40, 25) and in_target(s, 0, 0) and in_target(s, 100, 50)
    assert not in_target(s, 100.5, 50) and not in_target(s, None, None)


@pytest.mark.parametrize("target", ["negative", "refusal"])
def test_negative_and_refusal_samples_are_right_only_without_a_click(target):
    s = _sample(target)
    assert in_target(s, None, None)
    assert not in_target(s, 0, 0)


# --- bad data ----------------------------------------------------------------------------------


# w < x: only [x, y, w, h] fits, so the file's convention is settled
_GOOD = {"img_filename": "a.png", "bbox": [30, 2, 3, 4], "instruction": "go", "data_type": "text"}


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([_GOOD, {"img_filename": "a.png", "bbox": [1, 2, 3, 4]}], ["entry 1", "'instruction'"]),
        ([_GOOD, {**_GOOD, "bbox": [1, 2, 3]}], ["entry 1", "'bbox'", "3 values"]),
        ([{**_GOOD, "bbox": [1, "2", 3, 4]}, _GOOD], ["entry 0", "'bbox'", "not a number"]),
        ([_GOOD, {**_GOOD, "id": "b7", "bbox": [40, 2, -3, 4]}], ["entry 1 (id 'b7')", "negative width"]),
        ([_GOOD, "not an object"], ["entry 1", "not an object"]),
        ([_GOOD, {**_GOOD, "instruction": 5}], ["entry 1", "'instruction'", "not a string"]),
    ],
)
def test_malformed_entries_raise_one_line_naming_file_entry_and_field(tmp_path, entries, expected):
    path = _write_json(tmp_path / "screenspot_web.json", entries)
    with pytest.raises(LavError) as excinfo:
        load_dataset(path, images=tmp_path)
    message = _one_line_error(excinfo)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_osworld_g_bad_entries_name_the_entry(tmp_path: Path):
    entry = {
        "id": "K-0",
        "image_path": "a.png",
        "instruction": "i",
        "box_type": "bbox",
        "box_coordinates": [1, 2, -3, 4],
    }
    path = _write_json(tmp_path / "OSWorld-G.json", [entry])
    with pytest.raises(LavError, match=r"entry 0 \(id 'K-0'\).*negative width"):
        load_dataset(path)
    _write_json(path, [{**entry, "box_type": "polygon", "box_coordinates": [1, 2, 3, 4, 5]}])
    with pytest.raises(LavError, match="x, y pairs"):
        load_dataset(path)
    _write_json(path, [{**entry, "box_type": "circle"}])
    with pytest.raises(LavError, match="'box_type'"):
        load_dataset(path)


def test_unreadable_annotation_files_raise_one_line(tmp_path: Path):
    bad = tmp_path / "screenspot_mobile.json"
    bad.write_text('[{"img_filename": ', encoding="utf-8")
    with pytest.raises(LavError) as excinfo:
        load_dataset(bad, format="screenspot")
    assert "not valid JSON" in _one_line_error(excinfo) and str(bad) in str(excinfo.value)
    _write_json(bad, {"img_filename": "a.png"})
    with pytest.raises(LavError) as excinfo:
        load_dataset(bad, format="screenspot")
    assert "not a JSON list" in _one_line_error(excinfo)
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text(
        '{"image": "a.png", "instruction": "i", "bbox": [1, 2, 3, 4]}\n{oops\n', encoding="utf-8"
    )
    with pytest.raises(LavError) as excinfo:
        load_dataset(jsonl)
    assert "line 2" in _one_line_error(excinfo)


def test_unknown_format_and_zero_samples_name_the_supported_formats(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    for call in (
        lambda: load_dataset(tmp_path),
        lambda: load_dataset(tmp_path / "notes.txt"),
        lambda: load_dataset(_write_json(tmp_path / "screenspot_mobile.json", []), format="screenspot"),
        lambda: load_dataset(tmp_path, format="coco"),
    ):
        with pytest.raises(LavError) as excinfo:
            call()
        assert "supported formats: screenspot" in _one_line_error(excinfo)


def test_limit_keeps_the_first_samples_and_rejects_nonsense(screenspot_v1: Path):
    ds = load_dataset(screenspot_v1, limit=2)
    assert [s.id for s in ds.samples] == ["screenspot_mobile:0", "screenspot_mobile:1"]
    with pytest.raises(LavError, match="limit"):
        load_dataset(screenspot_v1, limit=0)


def test_repeated_ids_are_made_unique_and_noted(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    row = {"id": "same", "image": "a.png", "instruction": "i", "bbox": [1, 2, 3, 4]}
    path.write_text((json.dumps(row) + "\n") * 3, encoding="utf-8")
    ds = load_dataset(path)
    assert [s.id for s in ds.samples] == ["same", "same#2", "same#3"]
    assert any("repeated" in n for n in ds.notes)


# --- the demo benchmark ------------------------------------------------------------------------


def test_demo_benchmark_loads_as_screenspot_pro_and_its_boxes_hold_the_targets(tmp_path: Path):
    from lav.demo.screens import held_out

    out = write_demo_benchmark(tmp_path / "demo", n=12, seed=1)
    assert detect_format(out) == "screenspot-pro"
    ds = load_dataset(out)
    assert ds.format == "screenspot-pro" and len(ds.samples) == 12
    assert {s.groups["group"] for s in ds.samples} == {"base", "adapter"}
    assert sum(s.target == "negative" for s in ds.samples) == 2
    for task in ("base", "adapter"):
        mine = [s for s in ds.samples if s.groups["group"] == task]
        screens = held_out(len(mine), task, start=1_000_000)
        for sample, screen in zip(mine, screens, strict=True):
            assert sample.image.is_file() and sample.image_size == screen.image.size
            assert sample.groups["application"] == f"shapes-{task}" and sample.groups["ui_type"] == "icon"
            if sample.target == "negative":
                named = tuple(sample.instruction.removeprefix("Click the ").split())
                assert named not in {(c, s) for c, s, _ in screen.shapes}
                assert not in_target(sample, *screen.centre)
                continue
            assert sample.instruction == screen.instruction
            x0, y0, x1, y1 = screen.box
            for x, y in [screen.centre, (x0, y0), (x1 - 0.01, y1 - 0.01)]:
                assert screen.contains(x, y) and in_target(sample, x, y)
            assert not in_target(sample, x0 - 1, y0)
            with Image.open(sample.image) as im:
                assert im.tobytes() == screen.image.tobytes()


def test_demo_benchmark_never_overwrites_user_files(tmp_path: Path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.txt").write_text("precious", encoding="utf-8")
    with pytest.raises(LavError):
        write_demo_benchmark(target, n=4)
    assert (target / "thesis.txt").read_text(encoding="utf-8") == "precious"
    again = write_demo_benchmark(tmp_path / "fresh", n=4)
    assert write_demo_benchmark(again, n=4) == again  # its own earlier output is replaced
