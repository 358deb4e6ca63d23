"""Bounded inputs: one JSON reader with a depth limit everywhere, numbers range-checked where parsed.

Each case is one a hostile or damaged input produced on the old code: a `RecursionError` from deeply
nested JSON, an `OverflowError` from ``1e400`` or ``--seed 1e21``, or an allocation without bound from
``--shard 0/99999999999999999999999``. Here each is exit 2 with one line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import lav
from lav import jsonsafe
from lav.cli import main
from lav.demo import assets

SRC = Path(lav.__file__).parent
DEEP = "[" * 50_000 + "]" * 50_000


def _run(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def test_every_json_read_in_lav_goes_through_the_bounded_reader():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "jsonsafe.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bjson\.loads?\(", line):
                offenders.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert not offenders, "read JSON with lav.jsonsafe.loads:\n" + "\n".join(offenders)


@pytest.mark.parametrize("text", [DEEP, '{"a": ' * 5000 + "1" + "}" * 5000, "[" * 101 + "]" * 101])
def test_nesting_beyond_the_limit_is_a_value_error(text):
    with pytest.raises(ValueError, match="nested deeper than 100 levels"):
        jsonsafe.loads(text)


def test_a_number_too_large_for_a_float_is_refused_and_ordinary_json_passes():
    with pytest.raises(ValueError, match="too large"):
        jsonsafe.loads('{"global_step": 1e400}')
    assert jsonsafe.loads('{"a": [1, 2.5, {"b": null}], "c": "[[[["}') == {
        "a": [1, 2.5, {"b": None}],
        "c": "[[[[",
    }
    assert jsonsafe.loads("[" * 100 + "]" * 100) is not None


# --- every reader, through the command that reads it --------------------------------------------
def test_deeply_nested_annotation_file_is_one_line(tmp_path, capsys):
    data = tmp_path / "ann.json"
    data.write_text(DEEP)
    code, err = _run(
        capsys, ["eval", "--model", str(assets.BASE), "--data", str(data), "--out", str(tmp_path / "o")]
    )
    assert code == 2 and "nested deeper" in err and len(err.strip().splitlines()) == 1


def test_deeply_nested_jsonl_line_is_one_line(tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    ok = {"img_filename": "a.png", "instruction": "Click", "bbox": [1, 2, 3, 4]}
    data.write_text(json.dumps(ok) + "\n" + DEEP + "\n")
    code, err = _run(
        capsys, ["eval", "--model", str(assets.BASE), "--data", str(data), "--out", str(tmp_path / "o")]
    )
    assert code == 2 and "line 2" in err and "nested deeper" in err


def test_deeply_nested_head_ranking_is_one_line(tmp_path, capsys):
    ranking = tmp_path / "summary.json"
    ranking.write_text('{"heads": ' + DEEP + "}")
    argv = ["run", "--model", str(assets.BASE), "--image", str(assets.SCREEN), "--instruction", "Click"]
    argv += ["--focus-heads", "top-3", "--head-ranking", str(ranking), "--out", str(tmp_path / "o")]
    code, err = _run(capsys, argv)
    assert code == 2 and "nested deeper" in err


@pytest.mark.parametrize("state", ['{"global_step": 1e400}', '{"global_step": ' + DEEP + "}"])
def test_trainer_state_out_of_bounds_gives_no_step(tmp_path, state):
    from lav.integrations.evolve import _step_of

    folder = tmp_path / "last"
    folder.mkdir()
    (folder / "trainer_state.json").write_text(state)
    assert _step_of(folder) is None


def test_deeply_nested_result_json_is_refused_on_load(tmp_path):
    from tests.unit.test_result_record import _result

    out = tmp_path / "r"
    out.mkdir()
    _result().write_record(out)
    (out / "result.json").write_text('{"schema_version": 2, "maps": ' + DEEP + "}")
    with pytest.raises(lav.LavError, match="nested deeper"):
        lav.Result.load(out)


def test_plan_for_a_screenshot_wider_than_200_to_1_is_one_line(capsys):
    # Found by the fuzz (tests/e2e/test_fuzz_surfaces.py): smart_resize's ValueError escaped.
    code, err = _run(capsys, ["plan", "--model", str(assets.BASE), "--image-size", "1", "201"])
    assert code == 2 and "200:1" in err


# --- numbers at the argument parser -----------------------------------------------------------
BIG = "99999999999999999999999"


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--seed", "1000000000000000000000"],
        ["demo", "--seed", "-1"],
        ["plan", "--model", "m", "--image-size", str(10**30), "1"],
        ["demo-data", "-n", "1099511627776"],
        ["demo-data", "--seed", BIG],
        ["eval", "--model", "m", "--data", "d", "--shard", f"0/{BIG}"],
        ["eval", "--model", "m", "--data", "d", "--shard", "3/2"],
        ["eval", "--model", "m", "--data", "d", "--batch-size", BIG],
        ["evolve", "--model", "m", "--adapters", "a", "--data", "d", "--max-new-tokens", BIG],
        ["run", "--model", "m", "--image", "i", "--instruction", "x", "--max-pixels", BIG],
        ["serve", "--port", "70000"],
        ["serve", "--max-queue", BIG],
        ["serve", "--cache-mb", "0"],
    ],
)
def test_numbers_out_of_range_are_a_usage_error(capsys, argv, tmp_path):
    if argv[0] in ("demo", "demo-data"):
        argv = [*argv, "--out", str(tmp_path / "o")]
    code, err = _run(capsys, argv)
    assert code == 2
    assert re.search(r"argument [-\w/ ]+: (must be at (least|most)|part \d+ of)", err), err
    assert not (tmp_path / "o").exists()


def test_a_safetensors_dtype_name_with_a_flipped_bit_is_named_before_the_loader(tmp_path):
    # Found by the fuzz of lav evolve: safetensors' own SafetensorError escaped the adapter loader.
    import shutil

    from lav.files import check_adapter_folder

    shutil.copytree(assets.ADAPTER, tmp_path / "ad")
    path = tmp_path / "ad" / "adapter_model.safetensors"
    data = bytearray(path.read_bytes())
    i = data.find(b'"F32"')
    data[i + 3] = ord("3")  # "F33"
    path.write_bytes(bytes(data))
    with pytest.raises(lav.LavError, match="no known dtype: 'F33'"):
        check_adapter_folder(tmp_path / "ad")
