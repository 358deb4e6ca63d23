"""Bad input gets exit code 2 and one line that says what is wrong and what to do; nothing half-written."""

from __future__ import annotations

import pytest
import transformers
from PIL import Image

from lav.cli import main

from .conftest import SIZE


def run(capsys, *args):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def _run_model(capsys, checkpoints, tmp_path, image, *extra, instruction="Click it", family="qwen3_vl"):
    return run(
        capsys,
        "run",
        "--model",
        checkpoints[family]["model"],
        "--image",
        image,
        "--instruction",
        instruction,
        "--response",
        "(1, 2)",
        "--out",
        tmp_path / "out",
        *extra,
    )


@pytest.fixture
def bad_images(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", SIZE, (200, 200, 200)).save(good)
    data = good.read_bytes()
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.png").write_text("this is not an image\n")
    Image.new("L", (4000, 3000)).save(tmp_path / "big.png")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("missing.png", "does not exist"),
        ("empty.png", "empty"),
        ("truncated.png", "truncated"),
        ("notes.png", "not an image"),
    ],
)
def test_unreadable_image_is_refused_with_one_line(name, words, bad_images, checkpoints, capsys, tmp_path):
    code, line = _run_model(capsys, checkpoints, tmp_path, bad_images / name)
    assert code == 2
    assert line.startswith("lav: error:") and words in line.lower()
    assert not (tmp_path / "out").exists()


def test_huge_image_names_the_override(bad_images, checkpoints, capsys, tmp_path):
    code, line = _run_model(capsys, checkpoints, tmp_path, bad_images / "big.png", "--max-pixels", "1000000")
    assert code == 2 and "--max-pixels" in line
    code, _ = _run_model(capsys, checkpoints, tmp_path, bad_images / "big.png", "--max-pixels", "20000000")
    assert code == 0


def test_empty_instruction_is_refused(bad_images, checkpoints, capsys, tmp_path):
    code, line = _run_model(capsys, checkpoints, tmp_path, bad_images / "good.png", instruction="  ")
    assert code == 2 and "instruction is empty" in line


@pytest.mark.parametrize("kind", ["missing", "not_peft", "other_base"])
def test_bad_adapter_is_refused(kind, bad_images, checkpoints, capsys, tmp_path):
    adapter = {
        "missing": tmp_path / "nope",
        "not_peft": bad_images,  # a folder, but no adapter_config.json
        "other_base": checkpoints["other_adapter"],
    }[kind]
    code, line = _run_model(capsys, checkpoints, tmp_path, bad_images / "good.png", "--adapter", adapter)
    assert code == 2
    expected = {
        "missing": "does not exist",
        "not_peft": "not a peft adapter",
        "other_base": "does not fit this model",
    }
    assert expected[kind] in line.lower()
    assert not (tmp_path / "out").exists()


def test_unsupported_model_names_the_supported_families(tmp_path, bad_images, capsys):
    cfg = transformers.LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    transformers.LlamaForCausalLM(cfg).save_pretrained(tmp_path / "llama")
    code, line = run(
        capsys, "run", "--model", tmp_path / "llama", "--image", bad_images / "good.png", "--instruction", "x"
    )
    assert code == 2 and "'llama' is not supported" in line and "qwen3_vl" in line


def test_model_folder_that_does_not_exist(tmp_path, bad_images, capsys):
    code, line = run(
        capsys,
        "run",
        "--model",
        tmp_path / "no-model",
        "--image",
        bad_images / "good.png",
        "--instruction",
        "x",
    )
    assert code == 2 and "does not exist" in line


def test_hub_id_offline_says_to_download_first(bad_images, capsys):
    code, line = run(
        capsys,
        "run",
        "--model",
        "Qwen/Qwen3-VL-2B-Instruct",
        "--image",
        bad_images / "good.png",
        "--instruction",
        "x",
    )
    assert code == 2 and "download" in line


def test_failed_write_leaves_no_partial_output(monkeypatch, bad_images, checkpoints, capsys, tmp_path):
    import lav.report

    def broken(res, folder):
        (folder / "overlay.png").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(lav.report, "write_outputs", broken)
    with pytest.raises(OSError):
        _run_model(capsys, checkpoints, tmp_path, bad_images / "good.png")
    assert not (tmp_path / "out").exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())  # no temporary folder left


def test_output_folder_with_other_files_is_not_overwritten(bad_images, checkpoints, capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    code, line = _run_model(capsys, checkpoints, tmp_path, bad_images / "good.png")
    assert code == 2 and "other files" in line
    assert (out / "thesis.tex").read_text() == "precious"


def test_rerun_replaces_a_previous_output(bad_images, checkpoints, capsys, tmp_path):
    for _ in range(2):
        code, _ = _run_model(capsys, checkpoints, tmp_path, bad_images / "good.png")
        assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "maps.npz",
        "overlay.png",
        "report.html",
        "result.json",
    ]
