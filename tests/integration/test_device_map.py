"""Models over several devices (accelerate device maps, CPU and disk offload) and quantized bases.

On the CPU only: the split is across ``cpu`` and ``disk`` (accelerate's offload hooks load each
disk-mapped layer's weights for its call), the quantized base is bitsandbytes' CPU backend. The
maps of a split model must equal the unsplit model's, capture must leave its logits bit-identical,
and nothing the user did not ask to move may move.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers

import lav
from lav.capture import capture
from lav.cli import main
from lav.errors import LavError
from lav.models import inspect_model
from lav.testing import tiny_checkpoint
from tests.deps import on_ci, require

from ..e2e.conftest import _adapter
from ..helpers import image_inputs

FAMILIES = ("qwen2_vl", "qwen3_vl")
RESPONSE = "(12, 34)"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    return {family: tiny_checkpoint(family, root / family, seed=1) for family in FAMILIES}


def split_map(model, vision="cpu", embeddings="cpu") -> dict[str, str]:
    """The vision tower and embeddings as given, decoder layer 0 on the CPU, the other layers on disk."""
    language = model.model.language_model
    dmap = {"model.visual": vision, "lm_head": "cpu"}
    for name, child in language.named_children():
        if name == "layers":
            for i in range(len(child)):
                dmap[f"model.language_model.layers.{i}"] = "cpu" if i == 0 else "disk"
        else:
            dmap[f"model.language_model.{name}"] = embeddings if name == "embed_tokens" else "cpu"
    return dmap


def _map_of(folder) -> dict[str, str]:
    return split_map(transformers.AutoModelForImageTextToText.from_pretrained(folder))


def placement(model) -> dict[str, tuple[str, torch.dtype]]:
    return {name: (str(p.device), p.dtype) for name, p in model.named_parameters()}


@pytest.mark.parametrize("family", FAMILIES)
def test_split_over_cpu_and_disk_gives_the_unsplit_maps(family, folders, screenshot, tmp_path):
    whole = lav.load(folders[family], device="cpu")
    split = lav.load(
        folders[family], device="cpu", device_map=_map_of(folders[family]), offload_folder=tmp_path / "off"
    )
    assert "disk" in split.model.hf_device_map.values()
    for kwargs in ({"response": RESPONSE}, {"max_new_tokens": 6}):
        a = whole.analyze(screenshot, "Click the red button", edge_layers="all", focus_layers="all", **kwargs)
        b = split.analyze(screenshot, "Click the red button", edge_layers="all", focus_layers="all", **kwargs)
        assert a.response == b.response
        arrays_a, arrays_b = a.arrays(), b.arrays()
        assert sorted(arrays_a) == sorted(arrays_b)
        for name in arrays_a:
            np.testing.assert_allclose(arrays_b[name], arrays_a[name], atol=1e-6, rtol=0, err_msg=name)


@pytest.mark.parametrize("family", FAMILIES)
def test_capture_leaves_the_split_model_logits_bit_identical(family, folders, tmp_path):
    viz = lav.load(
        folders[family], device="cpu", device_map=_map_of(folders[family]), offload_folder=tmp_path / "off"
    )
    model = viz.model
    inputs = image_inputs(model.config, [(1, 4, 6)])
    if transformers.__version__.startswith("4."):
        inputs.pop("mm_token_type_ids")
    inputs = viz.to_device(inputs)
    parts = inspect_model(model)
    with torch.no_grad():
        plain = model(**inputs).logits
        with capture(
            model,
            vision_blocks=range(len(parts.vision_attention)),
            decoder_layers=range(len(parts.decoder_attention)),
            rows_from=inputs["input_ids"].shape[1] - 3,
        ) as rec:
            captured = model(**inputs).logits
    assert torch.equal(plain, captured)
    assert all(row.device.type == "cpu" for rows in rec.rows.values() for row in rows.values())


def test_nothing_the_user_did_not_ask_for_is_moved(folders, screenshot, tmp_path):
    folder = folders["qwen2_vl"]
    viz = lav.load(
        folder,
        device="cpu",
        device_map=split_map(
            transformers.AutoModelForImageTextToText.from_pretrained(folder), "disk", "disk"
        ),
        offload_folder=tmp_path / "off",
    )
    before = placement(viz.model)
    assert {d for d, _ in before.values()} == {"cpu", "meta"}  # offloaded weights wait on meta
    assert viz.device == torch.device("cpu")  # the embeddings' execution device, not the first (meta) weight
    res = viz.analyze(screenshot, "Click it", response=RESPONSE)
    assert placement(viz.model) == before
    assert res.edge.dtype == np.float32


def test_a_model_object_keeps_its_placement_and_refuses_a_device_map(folders):
    folder = folders["qwen2_vl"]
    model = transformers.AutoModelForImageTextToText.from_pretrained(folder)
    processor = transformers.AutoProcessor.from_pretrained(folder)
    with pytest.raises(LavError, match="device_map"):
        lav.load(model, processor=processor, device_map="auto")


def _write(path, text):
    path.write_text(text)
    return path


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def _run_args(folder, screenshot_file, out, *extra):
    common = ("run", "--model", folder, "--image", screenshot_file, "--instruction", "Click it")
    return (*common, "--response", RESPONSE, "--out", out, "--device", "cpu", *extra)


@pytest.fixture
def screenshot_file(screenshot, tmp_path):
    path = tmp_path / "shot.png"
    screenshot.save(path)
    return path


def test_lav_run_with_a_device_map_file_and_disk_offload(folders, screenshot_file, tmp_path, capsys):
    folder = folders["qwen3_vl"]
    map_file = _write(tmp_path / "map.json", json.dumps(_map_of(folder)))
    code, err = _cli(capsys, *_run_args(folder, screenshot_file, tmp_path / "whole"))
    assert code == 0, err
    code, err = _cli(
        capsys,
        *_run_args(folder, screenshot_file, tmp_path / "split", "--device-map", map_file),
        "--offload-folder",
        tmp_path / "off",
    )
    assert code == 0, err
    whole, split = lav.Result.load(tmp_path / "whole"), lav.Result.load(tmp_path / "split")
    for name, array in whole.arrays().items():
        np.testing.assert_allclose(split.arrays()[name], array, atol=1e-6, rtol=0, err_msg=name)


BAD_MAPS = {
    "not JSON": ("{model.visual: cpu", "not readable JSON"),
    "a list": ('["cpu"]', "object of module name"),
    "unknown module": ('{"model.vision_tower": "cpu", "": "cpu"}', "does not have"),
    "unknown device": ('{"": "tpu"}', "unknown device"),
    "absent GPU": ('{"": 7}', "cuda"),
    "meta": ('{"": "meta"}', "holds no weights"),
    "uncovered weights": ('{"model.visual": "cpu"}', "without a device"),
    "disk without folder": ('{"": "disk"}', "--offload-folder"),
}


@pytest.mark.parametrize("case", BAD_MAPS, ids=list(BAD_MAPS))
def test_a_bad_device_map_is_one_line_and_exit_2(case, folders, screenshot_file, tmp_path, capsys):
    text, words = BAD_MAPS[case]
    map_file = _write(tmp_path / "map.json", text)
    code, err = _cli(
        capsys, *_run_args(folders["qwen2_vl"], screenshot_file, tmp_path / "o", "--device-map", map_file)
    )
    assert code == 2
    assert not any("Traceback" in line for line in err)
    assert words in err[-1], err
    assert not (tmp_path / "o" / "result.json").exists()


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--device-map", "everywhere"), "neither one of auto"),
        (("--offload-folder", "x"), "need a device map"),
        (("--device-map", "sequential", "--max-memory", "cpu=lots"), "DEVICE=SIZE"),
    ],
)
def test_bad_placement_options_are_one_line_and_exit_2(
    extra, words, folders, screenshot_file, tmp_path, capsys
):
    code, err = _cli(capsys, *_run_args(folders["qwen2_vl"], screenshot_file, tmp_path / "o", *extra))
    assert code == 2
    assert words in err[-1], err


def _bitsandbytes_on_cpu() -> str | None:
    """Why quantized tests cannot run here, or None."""
    from lav.placement import check_bitsandbytes

    try:
        check_bitsandbytes(torch.device("cpu"))
    except LavError as exc:
        return str(exc)
    return None


# A missing backend skips; a missing bitsandbytes too, except under CI, where these tests then run and fail.
needs_bnb_cpu = pytest.mark.skipif(
    _bitsandbytes_on_cpu() is not None
    and not (on_ci() and "not installed" in (_bitsandbytes_on_cpu() or "")),
    reason=f"no bitsandbytes CPU backend: {_bitsandbytes_on_cpu()}",
)


@pytest.fixture(scope="module")
def lora(folders, tmp_path_factory):
    return _adapter(folders["qwen2_vl"], tmp_path_factory.mktemp("lora") / "adapter")


@needs_bnb_cpu
@pytest.mark.parametrize("bits", [4, 8])
def test_lora_on_a_quantized_base_with_compare_base(bits, folders, lora, screenshot):
    folder = folders["qwen2_vl"]
    option = {f"load_in_{bits}bit": True}
    viz = lav.load(folder, adapter=lora, device="cpu", **option)
    quantized = [n for n, m in viz.model.named_modules() if "bitsandbytes" in type(m).__module__]
    assert quantized, "no bitsandbytes layer: the base was not quantized"
    before = placement(viz.model)
    res = viz.analyze(screenshot, "Click it", response=RESPONSE, compare_base=True)
    assert placement(viz.model) == before
    base = lav.load(folder, device="cpu", **option).analyze(screenshot, "Click it", response=RESPONSE)
    # disable_adapter() on the quantized base is the quantized base without the adapter.
    np.testing.assert_allclose(res.arrays()["base_edge_raw"], base.arrays()["edge_raw"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(res.arrays()["base_focus_raw"], base.arrays()["focus_raw"], atol=1e-6, rtol=0)
    assert not np.allclose(res.arrays()["edge_raw"], base.arrays()["edge_raw"], atol=1e-6)


@needs_bnb_cpu
def test_a_base_saved_quantized_loads_without_options(folders, lora, screenshot, tmp_path):
    bnb = transformers.BitsAndBytesConfig(load_in_4bit=True)
    model = transformers.AutoModelForImageTextToText.from_pretrained(
        folders["qwen2_vl"], quantization_config=bnb, device_map={"": "cpu"}
    )
    saved = tmp_path / "quantized"
    model.save_pretrained(saved)
    transformers.AutoProcessor.from_pretrained(folders["qwen2_vl"]).save_pretrained(saved)
    viz = lav.load(saved, adapter=lora, device="cpu")
    assert any("bitsandbytes" in type(m).__module__ for m in viz.model.modules())
    res = viz.analyze(screenshot, "Click it", response=RESPONSE, compare_base=True)
    assert res.base is not None
    with pytest.raises(LavError, match="already quantized"):
        lav.load(saved, device="cpu", load_in_8bit=True)


def test_no_bitsandbytes_backend_is_one_line_and_exit_2(
    monkeypatch, folders, screenshot_file, tmp_path, capsys
):
    import importlib.metadata

    real = importlib.metadata.version

    def version(name):
        if name == "bitsandbytes":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    code, err = _cli(
        capsys, *_run_args(folders["qwen2_vl"], screenshot_file, tmp_path / "o", "--load-in-4bit")
    )
    assert code == 2
    assert "pip install 'lav[quant]'" in err[-1], err


def test_bitsandbytes_without_a_backend_for_the_device_says_what_to_install(monkeypatch):
    functional = require("bitsandbytes.functional", "pip install -e '.[quant]' (make install does it)")
    from lav.placement import check_bitsandbytes

    def no_backend(*args, **kwargs):
        raise NotImplementedError("no kernel for this device\nmore detail")

    monkeypatch.setattr(functional, "quantize_4bit", no_backend)
    with pytest.raises(LavError, match=r"has no backend for cpu .*pip install 'lav\[quant\]'") as err:
        check_bitsandbytes(torch.device("cpu"))
    assert "\n" not in str(err.value)


def test_lav_eval_refuses_a_device_map_under_torchrun(monkeypatch, folders, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    code, err = _cli(
        capsys,
        "eval",
        "--model",
        folders["qwen2_vl"],
        "--data",
        tmp_path / "none.jsonl",
        "--device-map",
        "auto",
    )
    assert code == 2
    assert "--shard I/N" in err[-1], err


@needs_bnb_cpu
def test_4bit_computes_in_the_dtype_asked_for(folders):
    viz = lav.load(folders["qwen2_vl"], device="cpu", dtype="bfloat16", load_in_4bit=True)
    layers = [m for m in viz.model.modules() if type(m).__name__ == "Linear4bit"]
    assert layers
    assert {m.compute_dtype for m in layers} == {torch.bfloat16}
    assert {m.weight.quant_type for m in layers} == {"nf4"}


def test_plan_sizes_the_weights_as_loaded_without_loading_them(folders):
    from lav.plan import plan

    folder = folders["qwen3_vl"]
    found = plan(folder, (1568, 2784), device="cpu")
    model = transformers.AutoModelForImageTextToText.from_pretrained(folder)
    loaded = sum(p.numel() * p.element_size() for p in model.parameters())
    loaded += sum(b.numel() * b.element_size() for b in model.buffers())
    assert sum(found.weights.values()) == pytest.approx(loaded, rel=0.02)
    assert found.capture["cpu"] > 0 and found.grid[0] > found.grid[1]
    small = plan(folder, (1568, 2784), device="cpu", load_in_4bit=True)
    assert sum(small.weights.values()) < 0.7 * sum(found.weights.values())


def test_plan_infers_the_map_transformers_loads_with(folders, tmp_path):
    from lav.plan import plan

    folder = folders["qwen2_vl"]
    found = plan(folder, (300, 200), device="cpu", device_map="sequential", max_memory="cpu=1MiB")
    viz = lav.load(
        folder, device="cpu", device_map="sequential", max_memory="cpu=1MiB", offload_folder=tmp_path / "o"
    )
    assert found.device_map == viz.model.hf_device_map
    assert "disk" in found.weights


def test_lav_plan_prints_each_device(folders, capsys):
    code = main(
        ["plan", "--model", str(folders["qwen2_vl"]), "--image-size", "1920", "1080", "--device", "cpu"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "cpu: weights" in out and "capture" in out
