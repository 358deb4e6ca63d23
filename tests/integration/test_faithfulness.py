"""Deletion / insertion curves and the zoom test on the demo model, whose answer depends on one region.

The demo adapter clicks the purple triangle of the bundled screenshot (`lav.demo.assets`): its answer
is planted on the merged cell that holds the triangle. A map planted on that cell must explain the
answer better than random orders (deletion area below random's, insertion area above) and its inverse
order worse; a mistake in the order, the cell geometry or the masking loses that.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import lav
from lav.demo import assets
from lav.faithful import CheckOptions, faithfulness, zoom
from lav.metrics import point_in_box
from lav.result import Map

pytestmark = pytest.mark.slow

CELL = 32  # the demo's merged cell: patch 16 x merge 2, and its 256 x 192 screens are not resized


@pytest.fixture(scope="module")
def demo():
    viz = lav.load("demo", adapter="demo", device="cpu")
    res = viz.analyze(str(assets.SCREEN), assets.instruction(), maps=["edge", "focus"])
    box = assets.box()
    assert res.click is not None and point_in_box(res.click.x, res.click.y, box), "the demo should hit"
    return viz, res, box


def planted(res, box) -> lav.Result:
    """``res`` with one map, 1 on the merged cells the target's box touches, 0 elsewhere."""
    values = np.zeros((6, 8), np.float32)
    x0, y0, x1, y1 = box
    values[y0 // CELL : (y1 - 1) // CELL + 1, x0 // CELL : (x1 - 1) // CELL + 1] = 1
    m = Map("planted", values, "merged", "focus", "planted on the target")
    return dataclasses.replace(res, maps={"planted": m}, base=None)


@pytest.mark.parametrize("removal", ["mean", "blur"])
def test_planted_map_beats_random_and_its_inverse_loses(demo, removal):
    viz, res, box = demo
    out = faithfulness(
        viz, planted(res, box), CheckOptions(faithfulness=True, removal=removal, steps=5),
        hit=lambda x, y: point_in_box(x, y, box),
    )  # fmt: skip
    auc = out["auc"]
    p, inv, rnd = auc["planted"], auc["planted_inverse"], auc["random"]
    assert p["deletion_auc"] < rnd["deletion_auc"] < inv["deletion_auc"]
    assert p["insertion_auc"] > rnd["insertion_auc"] > inv["insertion_auc"]
    assert p["deletion_hit_auc"] < inv["deletion_hit_auc"]
    assert p["insertion_hit_auc"] > inv["insertion_hit_auc"]
    # The curves start at the model's own answer: the click on the target, its log-probability
    # the highest of the deletion curve; deleting everything loses the click.
    d = out["orders"]["planted"]["deletion"]
    assert d["hit"][0] and not d["hit"][-1]
    assert out["x"][0] == 0 and out["x"][-1] == 1 and len(out["x"]) == 6
    # Both ends are shared by every order.
    for name in ("planted_inverse", "random_0"):
        assert out["orders"][name]["deletion"]["logprob"][0] == d["logprob"][0]
        assert out["orders"][name]["insertion"]["logprob"][-1] == d["logprob"][0]


def test_first_point_is_the_forced_answers_log_probability(demo):
    """The curve's first point against an independent forward: the processor's inputs for the answer
    forced as text, and the log-softmax of the coordinate digits' logits."""
    import torch

    viz, res, box = demo
    out = faithfulness(viz, planted(res, box), CheckOptions(faithfulness=True, steps=2))
    proc = viz.processor
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": res.instruction}]}]
    prompt = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    enc = proc(text=[prompt + res.response], images=[res.image], return_tensors="pt")
    n = len(res.response)  # one token per character in the demo's tokenizer
    with torch.no_grad():
        logits = viz.model(**enc).logits[0].double()
    ids = enc["input_ids"][0]
    digits = [i for i, ch in enumerate(res.response) if ch.isdigit()]
    start = ids.shape[0] - n
    want = sum(torch.log_softmax(logits[start + i - 1], -1)[ids[start + i]].item() for i in digits)
    assert out["tokens"] == len(digits)
    assert out["orders"]["planted"]["deletion"]["logprob"][0] == pytest.approx(want, abs=1e-4)


def test_zoom_maps_a_forced_click_back_to_original_pixels(demo):
    viz, res, box = demo
    # Peak: cell (row 1, column 4), centre (144, 48). Crop 1/3 of each side: 85 x 64 px
    # (round(256/3), 192/3) from x0 = round(144 - 42.5) = 102 (half to even), y0 = 48 - 32 = 16.
    out = zoom(viz, planted(res, box), CheckOptions(zoom=True, zoom_factor=3), response="(500, 250)")
    got = out["maps"]["planted"]
    assert got["crop"] == [102, 16, 187, 80]
    # (500, 250) on the 0-1000 scale of the 85 x 64 crop: (42.5, 16) in the crop, (144.5, 32) here.
    assert got["click"] == {"x": 102 + 42.5, "y": 16 + 16.0}
    assert got["hit"] is None


def test_base_result_runs_with_the_adapter_disabled(demo):
    viz, _, box = demo
    res = viz.analyze(str(assets.SCREEN), assets.instruction(), compare_base=True)
    base = planted(res.base, box)
    out = faithfulness(viz, base, CheckOptions(faithfulness=True, steps=2))
    with_adapter = faithfulness(
        viz, dataclasses.replace(base, adapter_enabled=True), CheckOptions(faithfulness=True, steps=2)
    )
    # The base model answers elsewhere; forcing its answer is likelier without the adapter.
    first = out["orders"]["planted"]["deletion"]["logprob"][0]
    assert first > with_adapter["orders"]["planted"]["deletion"]["logprob"][0]
    assert viz.model.active_adapter and not viz.model.training


def test_click_checks_continued_on_the_forward_cache_equal_fresh_greedy_answers(demo, monkeypatch):
    """The steps whose greedy answer differs are decoded on from the forced forwards' caches, pooled
    across batches; the curves (every step's click on target or not) equal those of a fresh generate
    per step, whether the pool decodes once (the demo's cache fits the budget) or before every batch
    (a budget of one batch's cache)."""
    from lav.faithful import decode, measure

    viz, res, box = demo
    checks = CheckOptions(faithfulness=True, steps=10)
    decoded: list[int] = []
    real = decode.GreedyPool.decode

    def counted(self):
        out = real(self)
        decoded.append(len(out))
        return out

    def run(opts: CheckOptions) -> dict:
        out = faithfulness(viz, res, opts, hit=lambda x, y: point_in_box(x, y, box))
        out.pop("seconds"), out.pop("batch_size")
        return out

    monkeypatch.setattr(decode.GreedyPool, "decode", counted)
    pooled = run(checks)
    assert len(decoded) == 1 and decoded[0] > 2 * checks.steps, "one decode for the steps of every batch"
    decoded.clear()
    # The cache held when a forward ends (the pooled rows and the forward's own) within the budget,
    # which is one batch's cache here: the pool decodes before every batch that finds rows in it.
    held: list[tuple[int, int]] = []
    add = decode.GreedyPool.add

    def checked(self, keys, inputs, cache, *args):
        kept = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
        held.append((self.bytes + kept, self.budget))
        return add(self, keys, inputs, cache, *args)

    monkeypatch.setattr(decode.GreedyPool, "add", checked)
    monkeypatch.setattr(measure, "CACHE_BUDGET", 0)
    small = run(dataclasses.replace(checks, batch_size=4))
    assert len(decoded) > 5 and sum(decoded) > 2 * checks.steps
    assert held and all(b <= budget for b, budget in held), held
    monkeypatch.setattr(decode.GreedyPool, "add", lambda *a, **k: False)  # every step generates afresh
    fresh = run(checks)
    assert pooled == fresh and small == fresh
    hits = [h for o in fresh["orders"].values() for c in o.values() for h in c["hit"]]
    assert any(hits) and not all(hits), "the comparison needs steps on and off the target"
