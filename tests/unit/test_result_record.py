"""`Result` as a record: saved and loaded back equal, torch-free, maps by name in every output."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from lav import LavError, Map, Result
from lav.coords import Click
from lav.result import SCHEMA_VERSION


def _maps(rng, h=6, w=8, m=2, extra: bool = False) -> dict[str, Map]:
    maps = {
        "edge": Map(
            "edge",
            rng.random((h, w), dtype=np.float32),
            "patch",
            "edge",
            "Edge map",
            (2, 3),
            {
                "edge_raw": rng.random((h, w), dtype=np.float32),
                "edge_layers": rng.random((2, h, w), dtype=np.float32),
            },
            {"windowed_blocks": [2]},
        ),
        "focus": Map(
            "focus",
            rng.random((h // m, w // m), dtype=np.float32),
            "merged",
            "focus",
            "Decision focus",
            (1,),
            {
                "focus_raw": rng.random((h // m, w // m), dtype=np.float32),
                "focus_x": rng.random((h // m, w // m), dtype=np.float32),
                "image_share": rng.random((1, 3), dtype=np.float32),
            },
            {"tokens": "coordinate digits", "rows": [0, 1, 3]},
        ),
    }
    if extra:
        maps["probe"] = Map("probe", rng.random((h, w), dtype=np.float32), "patch", "edge", "Probe map")
    return maps


def _result(seed=0, base=True, click=True, extra=False) -> Result:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (37, 51, 3), dtype=np.uint8))

    def one(enabled: bool) -> Result:
        return Result(
            model="tiny/qwen3",
            adapter="./lora" if enabled else "./lora",
            adapter_enabled=enabled,
            family="qwen3_vl",
            instruction="Click the <b>Save</b> button",
            response="(120.5, 340)",
            forced_response=True,
            image=image,
            resized_size=(64, 48),
            grid={"t": 1, "h": 6, "w": 8, "merge": 2, "patch": 8},
            click=Click(6.1, 16.3, (120.5, 340.0), "point", "relative-1000", None, True, True, None)
            if click
            else None,
            click_error=None if click else "the answer has no numbers",
            coords_convention="relative-1000" if click else None,
            answer_tokens=["(", "1", "2"],
            attention_backend="sdpa",
            received_method=["fused-cpu"],
            timings={"generate": 0.123456789, "maps": 1e-9},
            maps=_maps(rng, extra=extra),
        )

    res = one(True)
    if base:
        res.base = one(False)
    return res


@pytest.mark.parametrize("base", [True, False])
@pytest.mark.parametrize("click", [True, False])
def test_load_returns_a_result_equal_to_the_saved_one(tmp_path, base, click):
    res = _result(base=base, click=click)
    res.save(tmp_path / "out")
    back = Result.load(tmp_path / "out")
    assert back == res
    for name, m in res.maps.items():
        got = back.maps[name]
        assert got.values.dtype == m.values.dtype and np.array_equal(got.values, m.values)
        for key, arr in m.arrays.items():
            assert got.arrays[key].tobytes() == arr.tobytes()
    assert (back.base is None) == (not base)
    assert back.image.tobytes() == res.image.tobytes()


def test_a_changed_field_or_array_makes_results_unequal():
    a, b = _result(), _result()
    assert a == b
    b.maps["edge"].arrays["edge_raw"][0, 0] += 1e-7
    assert a != b
    c = _result()
    c.timings["maps"] = 2e-9
    assert a != c
    d = _result()
    d.base.response = "(1, 2)"
    assert a != d


def test_json_keys_are_the_attribute_names_and_carry_the_schema_version(tmp_path):
    res = _result()
    res.save(tmp_path / "o")
    data = json.loads((tmp_path / "o" / "result.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    for key, value in data.items():
        if key in ("schema_version", "maps", "base", "click"):
            continue
        got = getattr(res, key)
        got = list(got) if isinstance(got, tuple) else got
        assert got == value, key
    assert set(data["maps"]) == {"edge", "focus"}
    assert data["maps"]["focus"]["grid"] == "merged"


def test_every_map_reaches_json_npz_and_report_by_name(tmp_path):
    res = _result(extra=True)
    out = res.save(tmp_path / "o")
    data = json.loads((out / "result.json").read_text())
    assert "probe" in data["maps"]
    with np.load(out / "maps.npz") as npz:
        assert "probe" in npz.files and "base_probe" in npz.files and "probe_diff" in npz.files
        assert np.array_equal(npz["probe"], res.maps["probe"].values)
    page = (out / "report.html").read_text()
    assert 'data-toggle="probe"' in page and "Probe map" in page and 'data-layer="probe"' in page


def test_a_version_2_record_loads_without_the_fields_version_3_added(tmp_path):
    res = _result()
    out = res.save(tmp_path / "o")
    data = json.loads((out / "result.json").read_text())
    assert data["schema_version"] == 3 and data["refused"] is False and data["answer_span"] is None
    # What lav wrote before answer_span, refused and the click's candidates existed.
    data["schema_version"] = 2
    del data["answer_span"], data["refused"], data["click"]["candidates"]
    (out / "result.json").write_text(json.dumps(data))
    old = Result.load(out)
    assert old.answer_span is None and old.refused is False
    assert old.click is not None and old.click.candidates == ((old.click.x, old.click.y),)
    assert old.maps == res.maps and old.response == res.response


def test_answer_span_and_refused_round_trip(tmp_path):
    res = _result(click=False)
    res.refused, res.answer_span, res.click_error = (
        True,
        (0, 12),
        "the answer is the refusal sentinel [-1, -1]",
    )
    back = Result.load(res.save(tmp_path / "o"))
    assert back == res and back.answer_span == (0, 12) and back.refused


def test_old_or_foreign_folders_are_refused_with_a_clear_error(tmp_path):
    res = _result()
    out = res.save(tmp_path / "o")
    data = json.loads((out / "result.json").read_text())
    data["schema_version"] = 1
    (out / "result.json").write_text(json.dumps(data))
    with pytest.raises(LavError, match="schema_version 1"):
        Result.load(out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LavError, match="not a lav result folder"):
        Result.load(tmp_path / "empty")
    (out / "result.json").write_text("[1, 2")
    with pytest.raises(LavError, match="cannot read"):
        Result.load(out)


_NO_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
"""


def test_import_lav_imports_neither_torch_nor_transformers():
    code = "import sys, lav; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_save_load_and_render_work_without_torch(tmp_path):
    _result().save(tmp_path / "first")
    code = _NO_TORCH + textwrap.dedent(
        f"""
        import lav
        res = lav.Result.load({str(tmp_path / "first")!r})
        res.overlay().save({str(tmp_path / "again.png")!r})
        html = res.report_html()
        res.save({str(tmp_path / "second")!r})
        assert lav.Result.load({str(tmp_path / "second")!r}) == res
        print("ok", len(html) > 1000)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok True"
    first = Image.open(tmp_path / "first" / "overlay.png")
    assert first.tobytes() == Image.open(tmp_path / "again.png").tobytes()


def test_result_module_does_not_import_the_renderers():
    code = "import sys, lav.result; print([m for m in ('lav.report', 'lav.render', 'lav.export') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
