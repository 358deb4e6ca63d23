"""`lav.load`: devices torch cannot use, a caller's model object, and an adapter for another base model."""

from __future__ import annotations

import pytest
import torch
import transformers

from lav.demo import assets
from lav.errors import AdapterWarning, InputError, LavError
from lav.loading import base_mismatch, check_processor, load, resolve_device


@pytest.mark.parametrize("device", ["mps", "xpu", "hpu", "meta", "bogus", "cuda:-1", ""])
def test_device_this_machine_cannot_use_is_refused(device):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has mps")
    if device == "xpu" and hasattr(torch, "xpu") and torch.xpu.is_available():
        pytest.skip("this machine has xpu")
    with pytest.raises(InputError, match="device"):
        resolve_device(device)


def test_gpu_index_beyond_the_machine_is_refused():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(InputError, match=f"cuda:{count + 6}"):
        resolve_device(f"cuda:{count + 6}")


@pytest.mark.parametrize("device", [5, 1.0, None])
def test_device_of_the_wrong_type_is_refused(device):
    with pytest.raises(InputError, match="device must be a string"):
        resolve_device(device)


def test_cpu_and_auto_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")


@pytest.fixture(scope="module")
def demo_model():
    model = transformers.AutoModelForImageTextToText.from_pretrained(assets.BASE, dtype=torch.float32)
    return model, transformers.AutoProcessor.from_pretrained(assets.BASE)


def test_model_object_is_used_as_it_is_with_auto(demo_model):
    model, processor = demo_model
    viz = load(model, processor=processor)
    assert viz.model is model
    viz = load(model, processor=processor, device="cpu", dtype="float32")  # what it already is
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"dtype": "bfloat16"}, "does not cast"),
        ({"dtype": torch.float16}, "does not cast"),
        ({"device": "meta"}, "meta"),
        ({"device": "cuda:0" if torch.cuda.is_available() else "mps"}, "device"),
    ],
)
def test_model_object_with_another_device_or_dtype_is_refused_not_ignored(demo_model, kwargs, words):
    model, processor = demo_model
    before = {n: (p.device, p.dtype) for n, p in model.named_parameters()}
    with pytest.raises(InputError, match=words):
        load(model, processor=processor, **kwargs)
    assert {n: (p.device, p.dtype) for n, p in model.named_parameters()} == before


@pytest.mark.parametrize("value", [0, -1, True, 2.5])
def test_non_positive_max_image_pixels_is_refused(demo_model, value):
    model, processor = demo_model
    with pytest.raises(InputError, match="max_image_pixels"):
        load(model, processor=processor, max_image_pixels=value)


def test_model_of_the_wrong_type_is_refused():
    with pytest.raises(InputError, match="model must be"):
        load(42)


@pytest.mark.parametrize(
    ("trained_on", "loaded", "same"),
    [
        ("Qwen/Qwen3-VL-2B-Instruct", "/models/Qwen3-VL-2B-Instruct", True),
        ("Qwen/Qwen3-VL-2B-Instruct", "qwen/qwen3-vl-2b-instruct/", True),
        ("lav-demo-base", "src/lav/demo/weights/base", True),
        ("Qwen/Qwen3-VL-2B-Instruct", "Qwen/Qwen3-VL-8B-Instruct", False),
        ("Qwen/Qwen2.5-VL-3B-Instruct", "/ckpt/qwen3-vl", False),
        (None, "anything", True),
    ],
)
def test_base_mismatch_compares_the_last_name_component(tmp_path, trained_on, loaded, same):
    reason = base_mismatch(trained_on, loaded, None, tmp_path)
    assert (reason is None) == same
    if not same:
        assert repr(trained_on) in reason and repr(loaded) in reason


def test_base_mismatch_compares_the_config_when_the_adapter_has_one(tmp_path, demo_model):
    model, _ = demo_model
    (tmp_path / "config.json").write_text('{"model_type": "qwen2_5_vl", "hidden_size": 4096}')
    reason = base_mismatch("base", "base", model.config, tmp_path)
    assert "model_type='qwen2_5_vl'" in reason


def test_adapter_for_another_base_name_warns(tmp_path, demo_model):
    import json
    import shutil

    model, processor = demo_model
    adapter = tmp_path / "adapter"
    shutil.copytree(assets.ADAPTER, adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "Qwen/Qwen2-VL-72B-Instruct"
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    fresh = transformers.AutoModelForImageTextToText.from_pretrained(assets.BASE, dtype=torch.float32)
    with pytest.warns(AdapterWarning, match="Qwen2-VL-72B-Instruct"):
        load(fresh, adapter, processor=processor)


def test_processor_whose_image_token_is_not_the_models_is_refused(demo_model):
    model, processor = demo_model
    check_processor(processor, model.config, "demo")
    other = type(model.config).from_dict(model.config.to_dict())
    other.image_token_id = 7
    with pytest.raises(LavError, match="not as the model's image_token_id 7"):
        check_processor(processor, other, "demo")


def test_processor_whose_template_drops_the_image_is_refused(demo_model):
    model, _ = demo_model
    processor = transformers.AutoProcessor.from_pretrained(assets.BASE)
    processor.chat_template = "{% for m in messages %}{{ m.role }}{% endfor %}"
    with pytest.raises(LavError, match="does not place the image"):
        check_processor(processor, model.config, "demo")
    processor.chat_template = "{% if %}"
    with pytest.raises(LavError, match="cannot be used"):
        check_processor(processor, model.config, "demo")
