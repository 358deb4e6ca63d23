"""`lav.files`: every path and file lav reads fails with one line naming the file, never an OS traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lav.demo import assets
from lav.errors import ImageError, LavError
from lav.files import (
    check_adapter_folder,
    check_model_folder,
    check_path,
    check_safetensors,
    read_json,
    read_text,
    reading,
)


def test_check_path_names_each_problem(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    cases = [
        (tmp_path / "missing", "file", "does not exist"),
        (tmp_path / "link", "file", "symbolic link to"),
        (tmp_path, "file", "is a directory"),
        (tmp_path / "f", "dir", "is a file, not a folder"),
        ("", "file", "empty path"),
        ("a\x00b", "file", "NUL"),
        (3, "file", "must be a path"),
    ]
    for path, kind, words in cases:
        with pytest.raises(LavError) as e:
            check_path(path, "thing", kind=kind)
        assert words in str(e.value)
    assert check_path(tmp_path / "f", "thing") == tmp_path / "f"


def test_check_path_raises_the_callers_error_class(tmp_path):
    with pytest.raises(ImageError):
        check_path(tmp_path / "missing.png", "image file", error=ImageError)


def test_fifo_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(LavError, match="not a regular file"):
        check_path(tmp_path / "pipe", "image file")


def test_read_json_wants_the_expected_type(tmp_path):
    p = tmp_path / "c.json"
    for text, words in [
        ("[1, 2]", "holds a JSON list, not a JSON object"),
        ('"s"', "holds a JSON string"),
        ("null", "holds a JSON null"),
        ("{", "is not valid JSON"),
        ("", "is not valid JSON"),
    ]:
        p.write_text(text)
        with pytest.raises(LavError, match="c.json") as e:
            read_json(p, "adapter config")
        assert words in str(e.value)
    p.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(LavError, match="not UTF-8"):
        read_json(p, "adapter config")
    p.write_text("[1]")
    assert read_json(p, "list file", expect=list) == [1]


def test_reading_maps_os_errors_and_lets_others_through(tmp_path):
    with pytest.raises(LavError, match=r"cannot read thing .*x \("), reading(tmp_path / "x", "thing"):
        raise OSError(5, "Input/output error")
    with pytest.raises(ZeroDivisionError), reading(tmp_path / "x", "thing"):
        raise ZeroDivisionError  # a bug stays a bug


def test_sound_safetensors_pass():
    header = check_safetensors(assets.BASE / "model.safetensors", "model weights")
    assert len(header) > 10
    check_safetensors(assets.ADAPTER / "adapter_model.safetensors", "adapter weights")


@pytest.mark.parametrize("keep", [0, 7, 8, 200, 100_000, -1])
def test_truncated_safetensors_are_named(tmp_path, keep):
    data = (assets.BASE / "model.safetensors").read_bytes()
    p = tmp_path / "model.safetensors"
    p.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    with pytest.raises(LavError, match="truncated") as e:
        check_safetensors(p, "model weights")
    assert str(p) in str(e.value)


def test_damaged_safetensors_header_is_named(tmp_path):
    data = bytearray((assets.BASE / "model.safetensors").read_bytes())
    p = tmp_path / "model.safetensors"
    n = int.from_bytes(data[:8], "little")
    for pos, value in [(8, ord("[")), (8 + n // 2, 0xFF), (3, 0x7F)]:
        damaged = bytearray(data)
        damaged[pos] = value
        p.write_bytes(bytes(damaged))
        with pytest.raises(LavError, match="model.safetensors"):
            check_safetensors(p, "model weights")


def test_model_folder_problems_are_named_not_blamed_on_the_hub(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LavError, match="is empty"):
        check_model_folder(empty)
    (empty / "notes.txt").write_text("x")
    with pytest.raises(LavError, match="has no config.json"):
        check_model_folder(empty)
    model = tmp_path / "model"
    shutil.copytree(assets.BASE, model)
    check_model_folder(model)
    (model / "model.safetensors").unlink()
    with pytest.raises(LavError, match="has no weights"):
        check_model_folder(model)
    shutil.copy(assets.BASE / "model.safetensors", model)
    (model / "tokenizer_config.json").write_text("[]")
    with pytest.raises(LavError, match="tokenizer_config.json holds a JSON list"):
        check_model_folder(model)


def test_adapter_folder_config_that_is_a_list(tmp_path):
    adapter = tmp_path / "adapter"
    shutil.copytree(assets.ADAPTER, adapter)
    folder, cfg = check_adapter_folder(adapter)
    assert folder == adapter and cfg["peft_type"] == "LORA"
    (adapter / "adapter_config.json").write_text(json.dumps([cfg]))
    with pytest.raises(LavError, match="JSON list"):
        check_adapter_folder(adapter)


_UNPRIVILEGED = """
import os, sys
from lav.errors import LavError
from lav.files import read_text
os.setgid(65534); os.setuid(65534)  # after the imports: root's Python may be unreadable to nobody
try:
    read_text(sys.argv[1], "model file")
except LavError as e:
    print(e)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_unreadable_file_as_an_unprivileged_user():
    # pytest's tmp folders are 0700 under root's: use one `nobody` can reach (/tmp is world-open).
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        p = Path(d) / "config.json"
        p.write_text("{}")
        p.chmod(0o000)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        out = subprocess.run(
            [sys.executable, "-c", _UNPRIVILEGED, str(p)], capture_output=True, text=True, env=env, timeout=60
        )
    assert "Traceback" not in out.stderr, out.stderr
    assert "permission denied" in out.stdout and str(p) in out.stdout


def test_read_text_reads_utf8(tmp_path):
    p = tmp_path / "t.jinja"
    p.write_text("héllo", encoding="utf-8")
    assert read_text(p, "chat template") == "héllo"
