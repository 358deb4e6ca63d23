"""A damaged field in a checkpoint's config.json or processor config: ``lav run`` ends with exit 2 and
one line naming the file and the field, for every field that lav or transformers reads, and never
with a traceback (the demo checkpoint, one field changed at a time)."""

from __future__ import annotations

import json
import shutil

import pytest

from lav.cli import main
from lav.demo import assets

#: Fields of the demo's config.json that nothing reads when loading and running the model (a
#: wrong value there runs as before, checked in test_fields_nothing_reads_run_as_before).
UNREAD = {"architectures", "dtype", "transformers_version"}


def _leaves(data: dict, prefix: tuple = ()) -> list[tuple[tuple[str, ...], object]]:
    out = []
    for key, value in data.items():
        out.append(((*prefix, key), value))
        if isinstance(value, dict):
            out += _leaves(value, (*prefix, key))
    return out


def _wrong_kind(value: object) -> object:
    """A value of another JSON kind than ``value``."""
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, (int, float)):
        return "12"
    if isinstance(value, str):
        return 7
    if isinstance(value, list):
        return "[0]"
    if isinstance(value, dict):
        return [1]
    return {"a": 1}


CONFIG = json.loads((assets.BASE / "config.json").read_text())
PROCESSOR = json.loads((assets.BASE / "processor_config.json").read_text())
CONFIG_FIELDS = [p for p, _ in _leaves(CONFIG) if p[0] not in UNREAD]
IMAGE_FIELDS = [p for p, _ in _leaves(PROCESSOR["image_processor"])]


def _set(data: dict, path: tuple[str, ...], value: object) -> dict:
    data = json.loads(json.dumps(data))
    cur = data
    for key in path[:-1]:
        cur = cur[key]
    cur[path[-1]] = value
    return data


def _get(data: dict, path: tuple[str, ...]) -> object:
    for key in path:
        data = data[key]
    return data


@pytest.fixture
def checkpoint(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(assets.BASE, folder)
    return folder


def _run(folder, tmp_path, capsys) -> tuple[int, list[str]]:
    code = main(
        [
            "run",
            "--model",
            str(folder),
            "--image",
            str(assets.SCREEN),
            "--instruction",
            "Click the purple triangle",
        ]
        + ["--device", "cpu", "--max-new-tokens", "4", "--out", str(tmp_path / "out")]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lav: error")]
    return code, err


def _refused(code, err, file: str, field: str) -> None:
    assert code == 2, err
    assert len(err) == 1, err
    assert file in err[0] and f"field {field} " in err[0], err[0]


@pytest.mark.parametrize("path", CONFIG_FIELDS, ids=".".join)
def test_every_config_field_of_the_wrong_kind_is_named(path, checkpoint, tmp_path, capsys):
    bad = _set(CONFIG, path, _wrong_kind(_get(CONFIG, path)))
    (checkpoint / "config.json").write_text(json.dumps(bad))
    _refused(*_run(checkpoint, tmp_path, capsys), "config.json", ".".join(path))


@pytest.mark.parametrize("path", IMAGE_FIELDS, ids=".".join)
def test_every_image_processor_field_of_the_wrong_kind_is_named(path, checkpoint, tmp_path, capsys):
    bad = _set(PROCESSOR, ("image_processor", *path), _wrong_kind(_get(PROCESSOR["image_processor"], path)))
    (checkpoint / "processor_config.json").write_text(json.dumps(bad))
    _refused(
        *_run(checkpoint, tmp_path, capsys), "processor_config.json", "image_processor." + ".".join(path)
    )


@pytest.mark.parametrize(
    "path, value",
    [
        (("vision_config",), "qwen3_vl_vision"),  # the case: a sub-config of the wrong type
        (("vision_config", "depth"), 0),
        (("vision_config", "patch_size"), -16),
        (("vision_config", "spatial_merge_size"), 2.5),
        (("vision_config", "deepstack_visual_indexes"), [2]),  # the demo has 2 blocks: 0 and 1
        (("text_config", "num_hidden_layers"), 0),
        (("text_config", "rope_parameters", "mrope_section"), [6, 0, 5]),
        (("text_config", "rope_parameters", "rope_theta"), -1.0),
        (("text_config", "rms_norm_eps"), 0),
        (("text_config", "eos_token_id"), 256),  # vocab_size is 256: ids 0..255
        (("image_token_id",), -1),
    ],
    ids=lambda v: ".".join(v) if isinstance(v, tuple) else repr(v),
)
def test_config_fields_with_a_wrong_value_are_named(path, value, checkpoint, tmp_path, capsys):
    (checkpoint / "config.json").write_text(json.dumps(_set(CONFIG, path, value)))
    _refused(*_run(checkpoint, tmp_path, capsys), "config.json", ".".join(path))


@pytest.mark.parametrize(
    "path, value",
    [
        (("merge_size",), 1),  # the model merges 2x2: the maps would sit on the wrong grid
        (("patch_size",), 14),
        (("temporal_patch_size",), 0),
        (("image_std",), [0.5, 0.0, 0.5]),
        (("image_mean",), [0.5, 0.5]),
        (("size", "longest_edge"), -1),
        (("resample",), 9),
    ],
    ids=lambda v: ".".join(v) if isinstance(v, tuple) else repr(v),
)
def test_image_processor_fields_with_a_wrong_value_are_named(path, value, checkpoint, tmp_path, capsys):
    bad = _set(PROCESSOR, ("image_processor", *path), value)
    (checkpoint / "processor_config.json").write_text(json.dumps(bad))
    _refused(
        *_run(checkpoint, tmp_path, capsys), "processor_config.json", "image_processor." + ".".join(path)
    )


def test_preprocessor_config_json_is_checked_the_same_way(checkpoint, tmp_path, capsys):
    image = dict(PROCESSOR["image_processor"], patch_size="16")
    (checkpoint / "preprocessor_config.json").write_text(json.dumps(image))
    _refused(*_run(checkpoint, tmp_path, capsys), "preprocessor_config.json", "patch_size")


@pytest.mark.slow
def test_fields_nothing_reads_run_as_before(checkpoint, tmp_path, capsys):
    bad = CONFIG
    for name in UNREAD:
        bad = _set(bad, (name,), _wrong_kind(CONFIG[name]))
    (checkpoint / "config.json").write_text(json.dumps(bad))
    code, err = _run(checkpoint, tmp_path, capsys)
    assert code == 0 and not err
