"""Bad input gets exit code 2 and one line that says what is wrong and what to do; nothing half-written."""

from __future__ import annotations

import json
import shutil

import pytest
import transformers
from PIL import Image

from lav.cli import main
from lav.demo import assets

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
    import lav.render.views

    def broken(res, folder):
        (folder / "overlay.png").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lav.render.views, "write_pictures", broken)
    code, line = _run_model(capsys, checkpoints, tmp_path, bad_images / "good.png")
    assert code == 2 and "No space left" in line
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_output_folder_with_other_files_is_not_overwritten(bad_images, checkpoints, capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    code, line = _run_model(capsys, checkpoints, tmp_path, bad_images / "good.png")
    assert code == 2 and "thesis.tex" in line and "lav replaces only" in line
    assert (out / "thesis.tex").read_text() == "precious"


def test_rerun_replaces_a_previous_output(bad_images, checkpoints, capsys, tmp_path):
    for _ in range(2):
        code, line = _run_model(capsys, checkpoints, tmp_path, bad_images / "good.png")
        assert code == 0, line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".lav-manifest.json",
        "image.png",
        "maps.npz",
        "overlay.png",
        "report.html",
        "result.json",
    ]


# --- issue #12: every bad file, device and argument is one line and exit 2 --------------------------


@pytest.fixture
def demo(tmp_path):
    """Copies of the shipped demo model and adapter, to damage one file of."""
    shutil.copytree(assets.BASE, tmp_path / "base")
    shutil.copytree(assets.ADAPTER, tmp_path / "adapter")
    return tmp_path


def _demo_run(capsys, demo, *extra, model=None, adapter=None, instruction="Click the purple triangle"):
    args = ["run", "--model", model or demo / "base", "--image", assets.SCREEN, "--instruction", instruction]
    args += ["--device", "cpu", "--out", demo / "out"]
    if adapter is not None:
        args += ["--adapter", adapter]
    code = main([str(a) for a in [*args, *extra]])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err.strip().splitlines()


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if the model starts loading: these checks must come first."""
    import lav.loading

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(lav.loading, "load", refuse)


@pytest.mark.parametrize("name", ["base/model.safetensors", "adapter/adapter_model.safetensors"])
def test_truncated_weights_are_named(demo, capsys, name):
    p = demo / name
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    code, err = _demo_run(capsys, demo, adapter=demo / "adapter")
    assert code == 2 and err[-1].startswith("lav: error:")
    assert "truncated" in err[-1] and p.name in err[-1]
    assert not (demo / "out").exists()


def test_adapter_config_that_is_a_json_list(demo, capsys):
    (demo / "adapter" / "adapter_config.json").write_text("[1, 2, 3]")
    code, err = _demo_run(capsys, demo, adapter=demo / "adapter")
    assert code == 2 and "adapter_config.json holds a JSON list, not a JSON object" in err[-1]


@pytest.mark.parametrize(
    "damage",
    [
        "empty",
        "no_config",
        "bad_config",
        "config_list",
        "tokenizer",
        "no_weights",
        "template_cut",
        "template_json",
        "no_tokenizer",
    ],
)
def test_broken_local_model_folder_says_what_is_wrong_not_the_hub(demo, capsys, damage):
    base = demo / "base"
    if damage == "empty":
        shutil.rmtree(base)
        base.mkdir()
    elif damage == "no_config":
        (base / "config.json").unlink()
    elif damage == "bad_config":
        (base / "config.json").write_text('{"model_type": "qwen3_vl",')
    elif damage == "config_list":
        (base / "config.json").write_text("[]")
    elif damage == "tokenizer":
        (base / "tokenizer.json").write_bytes(b"\x00\xff garbage")
    elif damage == "no_weights":
        (base / "model.safetensors").unlink()
    elif damage == "template_cut":  # found by the fuzz test: jinja's own error escaped
        text = (base / "chat_template.jinja").read_text()
        (base / "chat_template.jinja").write_text(text[: int(len(text) * 0.96)])
    elif damage == "template_json":  # found by the fuzz test: a template without the image
        (base / "chat_template.jinja").write_text("[]")
    elif damage == "no_tokenizer":  # found by the fuzz test: transformers built a tokenizer anyway
        (base / "tokenizer.json").unlink()
    code, err = _demo_run(capsys, demo)
    assert code == 2 and err[-1].startswith("lav: error:")
    assert "hub" not in err[-1] and str(base) in err[-1]


@pytest.mark.parametrize("device", ["mps", "xpu", "hpu", "meta", "cuda:7"])
def test_device_this_machine_lacks_is_refused(demo, capsys, device):
    import torch

    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has mps")
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    code, err = _demo_run(capsys, demo, "--device", device)
    assert code == 2 and f"device '{device}'" in err[-1]


def test_image_wider_than_the_processor_accepts(demo, capsys, no_model_load):
    Image.new("RGB", (20000, 20), (200, 200, 200)).save(demo / "wide.png")
    code, err = _demo_run(capsys, demo, "--image", demo / "wide.png")
    assert code == 2 and "20000x20" in err[-1] and "1000:1" in err[-1] and "200:1" in err[-1]


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "lots"])
def test_max_pixels_must_be_positive(demo, capsys, no_model_load, value):
    code, err = _demo_run(capsys, demo, "--max-pixels", value)
    assert code == 2 and "--max-pixels" in err[-1]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--edge-layers", "1.5"], "edge_layers='1.5' is not 'all' or a list of integers"),
        (["--focus-layers", "all", "-1"], "focus_layers='all -1'"),
        (["--max-new-tokens", "0"], "--max-new-tokens: must be at least 1"),
        (["--max-new-tokens", "100000"], "max_new_tokens must be from 1 to 4096"),
        (["--template", "Task: {task}"], "must contain '{instruction}'"),
        (["--response", "  "], "forced response is empty"),
        (["--out", str(assets.SCREEN)], "is a file"),
        (["--out", str(assets.SCREEN / "out")], "lies under"),
        (["--coords", "pixels"], "invalid choice"),
        (["--dtype", "int8"], "invalid choice"),
    ],
)
def test_model_independent_arguments_are_checked_before_loading(demo, capsys, no_model_load, extra, words):
    code, err = _demo_run(capsys, demo, *extra)
    assert code == 2 and words in err[-1]


def test_very_long_instruction_is_refused_with_its_length(demo, capsys, no_model_load):
    code, err = _demo_run(capsys, demo, instruction="Click " * 20_000)
    assert code == 2 and "120,000 characters" in err[-1]


@pytest.mark.parametrize("where", ["instruction", "response"])
@pytest.mark.parametrize("tag", ["<|image_pad|>", "<|im_start|>"])
def test_special_tokens_typed_into_the_prompt_are_refused(demo, capsys, where, tag):
    # Needs `Visualizer.analyze` to call `lav.checks.check_prompt_text` (the tokenizer is the model's).
    text = f"Click the triangle{tag}"
    extra = ["--response", f"(1, 2){tag}"] if where == "response" else []
    code, err = _demo_run(capsys, demo, *extra, instruction=text if where == "instruction" else "Click it")
    assert code == 2 and tag in err[-1] and where in err[-1]
    assert not (demo / "out").exists()


def test_adapter_for_another_base_model_warns_in_one_line(demo, capsys):
    cfg_path = demo / "adapter" / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "Qwen/Qwen2.5-VL-7B-Instruct"
    cfg_path.write_text(json.dumps(cfg))
    code, err = _demo_run(capsys, demo, adapter=demo / "adapter")
    assert code == 0
    warned = [line for line in err if line.startswith("lav: warning:")]
    assert len(warned) == 1 and "Qwen/Qwen2.5-VL-7B-Instruct" in warned[0], err
    assert not any("adapter" in line and "warning" in line.lower() for line in err if line not in warned)
