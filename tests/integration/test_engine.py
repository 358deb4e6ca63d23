"""The staged, batched engine: analyze_many equals one-by-one analyze; capture safe to share; a
registered map method reaches every output; the caller's model is left as it was found."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import replace

import numpy as np
import peft
import pytest
import torch
from PIL import Image

import lav
from lav import methods
from lav.capture import vision_received
from lav.capture.compat import ALL_ATTENTION_FUNCTIONS, ALL_MASK_ATTENTION_FUNCTIONS
from lav.result import Map
from lav.testing import tiny_checkpoint

SIZES = [(120, 100), (90, 160), (64, 64), (200, 72)]
INSTRUCTION = "Click the Save button"


def _images(seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in SIZES]


def _adapter(model):
    torch.manual_seed(5)
    cfg = peft.LoraConfig(r=4, lora_alpha=16, target_modules=["qkv", "q_proj", "k_proj", "v_proj"])
    wrapped = peft.get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    return wrapped


@pytest.fixture(scope="module")
def vizs(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    out = {}
    for family in ("qwen3_vl", "qwen2_5_vl"):
        folder = tiny_checkpoint(family, root / family)
        for dtype in (torch.float32, torch.float64):
            tag = "" if dtype == torch.float32 else "-f64"
            out[family + tag] = lav.load(folder, device="cpu", dtype=dtype)
            other = lav.load(folder, device="cpu", dtype=dtype)
            out[family + "-lora" + tag] = lav.Visualizer(
                _adapter(other.model), other.processor, model_name=str(folder)
            )
    return out


def _assert_same_click(a, b, atol: float) -> None:
    """The same click, exactly; its digit confidence (`lav.confidence`) from logits that the padded
    batch rounds like the maps: equal within ``atol`` (relative for the products of probabilities)."""
    if a is None or b is None:
        assert a == b
        return
    plain = {"confidence": None, "digits": (), "alternatives": ()}
    assert replace(a, **plain) == replace(b, **plain)
    assert (a.confidence is None) == (b.confidence is None)
    if a.confidence is not None:
        assert a.confidence == pytest.approx(b.confidence, rel=atol)
    assert [(d["token"], d["axis"]) for d in a.digits] == [(d["token"], d["axis"]) for d in b.digits]
    for da, db in zip(a.digits, b.digits, strict=True):
        assert da["p"] == pytest.approx(db["p"], abs=atol) and da["entropy"] == pytest.approx(
            db["entropy"], abs=atol
        )
    assert len(a.alternatives) == len(b.alternatives)
    for aa, ab in zip(a.alternatives, b.alternatives, strict=True):
        assert (aa["x"], aa["y"], aa["raw"]) == (ab["x"], ab["y"], ab["raw"])
        assert aa["p"] == pytest.approx(ab["p"], rel=atol)


def _assert_same(a: lav.Result, b: lav.Result, atol=1e-5):
    assert a.response == b.response
    _assert_same_click(a.click, b.click, atol)
    assert a.maps.keys() == b.maps.keys()
    for name in a.maps:
        np.testing.assert_allclose(a.maps[name].values, b.maps[name].values, atol=atol, err_msg=name)
        for key in a.maps[name].arrays:
            np.testing.assert_allclose(
                a.maps[name].arrays[key], b.maps[name].arrays[key], atol=atol, err_msg=f"{name}/{key}"
            )
    assert (a.base is None) == (b.base is None)
    if a.base is not None:
        _assert_same(a.base, b.base, atol)


# float64 shows the batching itself is exact up to the float32 the maps are stored in (an indexing or
# padding slip is O(1)); float32 shows
# what a user sees: the padded batch's matmuls round differently, ~1e-5 after min-max on tiny models.
@pytest.mark.parametrize(("dtype", "atol"), [("f64", 1e-6), ("f32", 1e-4)])
@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
@pytest.mark.parametrize("adapter", [False, True])
def test_analyze_many_equals_one_by_one_on_screens_of_different_sizes(vizs, family, adapter, dtype, atol):
    viz = vizs[family + ("-lora" if adapter else "") + ("-f64" if dtype == "f64" else "")]
    images = _images()
    responses = ["(120, 340)", "click(x=5, y=999)", "[10, 20, 300, 400]", "no idea"]
    items = [
        {"image": im, "instruction": INSTRUCTION, "response": r}
        for im, r in zip(images, responses, strict=True)
    ]
    # Generated answers too, interleaved with forced ones: the order of the results is the items'.
    items.insert(1, (images[1], INSTRUCTION))
    items.append({"image": images[3], "instruction": "Open the menu"})
    kwargs = {"compare_base": adapter, "max_new_tokens": 6, "focus_layers": "all", "edge_layers": "all"}
    many = viz.analyze_many(items, batch_size=3, **kwargs)
    assert len(many) == len(items)
    for item, got in zip(items, many, strict=True):
        d = item if isinstance(item, dict) else {"image": item[0], "instruction": item[1]}
        one = viz.analyze(d["image"], d["instruction"], d.get("response"), **kwargs)
        _assert_same(one, got, atol)
        assert got.image_size == d["image"].size
    # Different sizes really gave different grids (else padding was never exercised).
    assert len({tuple(r.grid.values()) for r in many}) >= 3


def test_analyze_many_takes_pairs_and_refuses_bad_items(vizs):
    viz = vizs["qwen3_vl"]
    img = _images()[0]
    assert viz.analyze_many([]) == []
    with pytest.raises(lav.InputError, match="item 0 has key"):
        viz.analyze_many([{"image": img, "instruction": "x", "focus_layers": -1}])
    with pytest.raises(lav.InputError, match="pairs or dicts"):
        viz.analyze_many(["just a string"])
    with pytest.raises(lav.InputError, match="batch_size"):
        viz.analyze_many([(img, "x")], batch_size=0)


def test_analyze_many_checks_every_item_before_any_work_and_names_the_bad_one(vizs, tmp_path):
    viz = vizs["qwen3_vl"]
    img = _images()[0]
    stages = []
    with pytest.raises(lav.LavError, match="^item 2: ") as info:
        viz.analyze_many([(img, "a"), (img, "b"), (img, "  ")], batch_size=1, progress=stages.append)
    assert stages == []  # refused before the first batch ran
    with pytest.raises(lav.LavError, match=f"^item 1: .*{tmp_path / 'gone.png'}"):
        viz.analyze_many([(img, "a"), (tmp_path / "gone.png", "b")], progress=stages.append)
    assert stages == [] and "instruction" in str(info.value)


def test_analyze_many_keeps_the_finished_results_when_a_later_batch_fails(vizs, monkeypatch):
    viz = vizs["qwen3_vl"]
    imgs = _images()
    items = [(imgs[0], "Click a"), (imgs[1], "Click b"), (imgs[2], "Click c")]
    alone = viz.analyze_many(items[:2], batch_size=2, max_new_tokens=3)
    real = type(viz)._batch
    calls = []

    def second_batch_fails(self, requests, *args, **kwargs):
        calls.append(len(requests))
        if len(calls) == 2:
            raise lav.CaptureError("the recorder saw the vision tower run twice")
        return real(self, requests, *args, **kwargs)

    monkeypatch.setattr(type(viz), "_batch", second_batch_fails)
    with pytest.raises(lav.BatchError, match="items 2 failed") as info:
        viz.analyze_many(items, batch_size=2, max_new_tokens=3)
    assert sorted(info.value.finished) == [0, 1] and info.value.failed == [2]
    for got, want in zip((info.value.finished[0], info.value.finished[1]), alone, strict=True):
        _assert_same(got, want)


# --- a map method registered by a test reaches every output ----------------------------------


class _Block0(methods.MapMethod):
    """Test-only: received attention of vision block 0, head 0, min-max normalised."""

    name = "block0"

    def needs(self, selection):
        return methods.Needs(vision_blocks=(0,))

    def reduce(self, item, selection):
        heads = vision_received(item.rec, 0, item.grids)[item.image_index]  # (H, t, h, w)
        return [Map(self.name, methods.minmax(heads[0, 0]), "patch", "edge", "Block 0, head 0")]


@pytest.fixture
def block0():
    method = methods.register(_Block0())
    yield method
    methods.unregister(method.name)


def test_a_registered_method_appears_in_json_npz_and_report_through_the_cli(tmp_path, block0):
    from lav.cli import main

    folder = tiny_checkpoint("qwen3_vl", tmp_path / "m")
    img = tmp_path / "s.png"
    _images()[0].save(img)
    out = tmp_path / "out"
    args = ["run", "--model", str(folder), "--image", str(img), "--instruction", INSTRUCTION]
    assert (
        main([*args, "--response", "(1, 2)", "--device", "cpu", "--edge-layers", "all", "--out", str(out)])
        == 0
    )
    data = json.loads((out / "result.json").read_text())
    assert data["maps"]["block0"]["title"] == "Block 0, head 0"
    with np.load(out / "maps.npz") as npz:
        values = npz["block0"]
        edge_layers = npz["edge_layers"]
    assert values.shape == edge_layers.shape[1:]
    page = (out / "report.html").read_text()
    assert 'data-toggle="block0"' in page and "Block 0, head 0" in page
    loaded = lav.Result.load(out)
    np.testing.assert_array_equal(loaded.maps["block0"].values, values)


def test_unknown_or_colliding_methods_are_refused(vizs, block0):
    viz = vizs["qwen3_vl"]
    with pytest.raises(lav.InputError, match="unknown map method 'nope'"):
        viz.analyze(_images()[0], INSTRUCTION, "(1, 2)", maps=["edge", "nope"])
    with pytest.raises(lav.InputError, match="registered already"):
        methods.register(_Block0())
    res = viz.analyze(_images()[0], INSTRUCTION, "(1, 2)", maps=["focus"])
    assert list(res.maps) == ["focus"]


# --- capture safe to share --------------------------------------------------------------------


def _state(model):
    cfgs = [m.config for m in model.modules() if hasattr(m, "config")]
    return (
        [(n, m.training) for n, m in model.named_modules()],
        sorted({str(c._attn_implementation_internal) for c in cfgs}),
        sorted(k for k in ALL_ATTENTION_FUNCTIONS if k.startswith("lav")),
        sorted(k for k in ALL_MASK_ATTENTION_FUNCTIONS if k.startswith("lav")),
    )


@pytest.fixture
def fast_switches():
    old = sys.getswitchinterval()
    sys.setswitchinterval(2e-5)
    yield
    sys.setswitchinterval(old)


def test_threads_on_one_visualizer_give_the_sequential_results(vizs, fast_switches):
    viz = vizs["qwen2_5_vl-lora"]
    images = _images(1)
    before = _state(viz.model)
    sequential = [viz.analyze(im, INSTRUCTION, "(10, 20)", compare_base=True) for im in images]
    got: list = [None] * len(images)
    errors: list = []

    def work(i):
        try:
            got[i] = viz.analyze(images[i], INSTRUCTION, "(10, 20)", compare_base=True)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for a, b in zip(sequential, got, strict=True):
        _assert_same(a, b, atol=0)
    assert _state(viz.model) == before


def test_two_visualizers_in_two_threads_never_see_each_others_recordings(vizs, fast_switches):
    a, b = vizs["qwen3_vl"], vizs["qwen2_5_vl"]
    images = _images(2)
    want = {
        name: [viz.analyze(im, INSTRUCTION, "(3, 4)") for im in images] for name, viz in (("a", a), ("b", b))
    }
    got: dict = {"a": [], "b": []}

    def work(name, viz):
        for im in images:
            got[name].append(viz.analyze(im, INSTRUCTION, "(3, 4)"))

    threads = [threading.Thread(target=work, args=x) for x in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("a", "b"):
        assert len(got[name]) == len(images)
        for x, y in zip(want[name], got[name], strict=True):
            _assert_same(x, y, atol=0)


class _Boom(methods.MapMethod):
    name = "boom"

    def needs(self, selection):
        return methods.Needs(vision_blocks=selection.vision_blocks)

    def reduce(self, item, selection):
        raise RuntimeError("boom")


def test_the_callers_model_is_left_as_found_also_after_an_error(tmp_path):
    folder = tiny_checkpoint("qwen3_vl", tmp_path / "m")
    viz = lav.load(folder, device="cpu")
    model = viz.model
    model.train()
    model.model.visual.eval()  # a mixed state, as a training loop with a frozen tower has
    before = _state(model)
    viz.analyze(_images()[0], INSTRUCTION, "(1, 2)")
    assert _state(model) == before
    methods.register(_Boom())
    try:
        with pytest.raises(RuntimeError, match="boom"):
            viz.analyze(_images()[0], INSTRUCTION, "(1, 2)")
    finally:
        methods.unregister("boom")
    assert _state(model) == before
    assert model.training and not model.model.visual.training
    # And a plain forward still runs on the model's own backend.
    model.eval()
    inputs = viz.to_device(dict(viz.processor(text=["hi"], return_tensors="pt")))
    model(**inputs)


def test_visualizer_does_not_switch_the_model_to_eval(tmp_path):
    folder = tiny_checkpoint("qwen3_vl", tmp_path / "m")
    viz = lav.load(folder, device="cpu")
    viz.model.train()
    lav.Visualizer(viz.model, viz.processor)
    assert viz.model.training


def test_focus_keeps_per_head_maps_whose_mean_is_the_layer_map(vizs):
    res = vizs["qwen3_vl"].analyze(_images()[0], INSTRUCTION, "(120, 340)", focus_layers="all")
    heads = res.maps["focus"].arrays["focus_heads"]
    layers = res.maps["focus"].arrays["focus_layers"]
    g = res.grid
    assert heads.shape[0] == layers.shape[0] and heads.shape[2:] == (
        g["h"] // g["merge"],
        g["w"] // g["merge"],
    )
    assert heads.shape[1] > 1
    np.testing.assert_allclose(heads.mean(axis=1), layers, atol=1e-6)
    # Heads differ from each other: a layout slip that repeated one head would pass the mean alone.
    assert not np.allclose(heads[:, 0], heads[:, 1])


def test_progress_names_each_stage_in_order_for_both_passes(vizs):
    stages: list[str] = []
    vizs["qwen3_vl-lora"].analyze(
        _images()[0], INSTRUCTION, compare_base=True, max_new_tokens=3, progress=stages.append
    )
    assert stages == ["preparing", "generating", "maps", "base: preparing", "base: generating", "base: maps"]
    stages.clear()
    vizs["qwen3_vl"].analyze(_images()[0], INSTRUCTION, "(1, 2)", progress=stages.append)
    assert stages == ["preparing", "forward", "maps"]


def test_a_progress_callback_that_raises_stops_and_leaves_the_model_as_found(vizs):
    viz = vizs["qwen3_vl"]
    before = _state(viz.model)

    def stop(stage):
        if stage == "maps":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        viz.analyze(_images()[0], INSTRUCTION, "(1, 2)", progress=stop)
    assert _state(viz.model) == before


def test_a_model_that_raises_mid_forward_is_left_as_found(vizs):
    viz = vizs["qwen2_5_vl-lora"]
    before = _state(viz.model)
    layer = viz.parts.decoder_attention[-1]

    def boom(module, args, kwargs):
        raise RuntimeError("out of memory, say")

    handle = layer.register_forward_pre_hook(boom, with_kwargs=True)
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            viz.analyze(_images()[0], INSTRUCTION, "(1, 2)", compare_base=True)
    finally:
        handle.remove()
    assert _state(viz.model) == before
    # The adapter is enabled again and the next analysis is the one it was before the failure.
    again = viz.analyze(_images()[0], INSTRUCTION, "(1, 2)", compare_base=True)
    assert again.adapter_enabled and again.base is not None


def test_focus_heads_without_the_map_that_uses_them_is_refused(vizs):
    with pytest.raises(lav.InputError, match="focus_selected"):
        vizs["qwen3_vl"].analyze(_images()[0], INSTRUCTION, "(1, 2)", maps=["focus"], focus_heads=[(0, 0)])
