"""`lav run` end to end on a saved tiny Qwen4-Exp folder with a LoRA adapter, against references.

The tiny model's QSA indexer keeps 2 blocks of 4 keys per query, so the digit rows see only part of
the screenshot ("on"); with a budget that covers every key ("off") nothing is dropped.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers

from lav.cli import main
from lav.testing import available_families, tiny_checkpoint

from ..integration.qsa_reference import indexer_inputs, reference_selection
from .conftest import _adapter
from .reference import edge_reference, focus_reference, load_reference_model, prompt_inputs

pytestmark = pytest.mark.skipif(
    "qwen4_exp" not in available_families(),
    reason=f"transformers {transformers.__version__} has no Qwen4-Exp (qwen4_exp arrived in 5.x)",
)

RESPONSE = "(107, 243)"
DIGITS = [1, 2, 3, 6, 7, 8]
INSTRUCTION = "Click the red button"


@pytest.fixture(scope="module")
def qwen4(tmp_path_factory):
    root = tmp_path_factory.mktemp("qwen4")
    out = {}
    for qsa, text in (("on", {}), ("off", {"indexer_budget": 4096})):
        folder = tiny_checkpoint("qwen4_exp", root / qsa, text=text)
        out[qsa] = (folder, _adapter(folder, root / f"{qsa}-lora"))
    return out


def _selection_reference(model, inputs, start):
    """Share of the digit rows whose indexer (last indexed layer) selected each image token."""
    with indexer_inputs(model) as (calls, indexers), torch.no_grad():
        model(**inputs)
    selected = reference_selection(indexers[-1], *calls[-1][0][:3])
    config = (model.get_base_model() if hasattr(model, "get_base_model") else model).config
    image = (inputs["input_ids"][0] == config.image_token_id).nonzero().flatten()
    _, h, w = inputs["image_grid_thw"][0].tolist()
    rows = selected[[start - 1 + i for i in DIGITS]][:, image].double().mean(dim=0)
    return rows.numpy().reshape(h // 2, w // 2)


@pytest.mark.parametrize("qsa", ["on", "off"])
def test_run_with_adapter_and_base_writes_maps_equal_to_the_references(qsa, qwen4, screenshot, tmp_path):
    folder, lora = qwen4[qsa]
    out = tmp_path / "out"
    args = ["run", "--model", folder, "--adapter", lora, "--image", screenshot]
    args += ["--instruction", INSTRUCTION, "--response", RESPONSE, "--compare-base", "--out", out]
    assert main([str(a) for a in args]) == 0
    maps = np.load(out / "maps.npz")
    processor = transformers.AutoProcessor.from_pretrained(folder)
    inputs, start = prompt_inputs(processor, screenshot, INSTRUCTION, RESPONSE)
    depth = transformers.AutoConfig.from_pretrained(folder).vision_config.depth
    for prefix, adapter in (("", lora), ("base_", None)):
        model = load_reference_model(folder, adapter)
        edge = edge_reference(model, inputs, [depth - 2, depth - 1])
        np.testing.assert_allclose(maps[prefix + "edge"], edge, atol=1e-4)
        focus = focus_reference(folder, inputs, start, DIGITS, adapter=adapter)
        np.testing.assert_allclose(maps[prefix + "focus"], focus, atol=1e-4)
        selection = _selection_reference(model, inputs, start)
        np.testing.assert_allclose(maps[prefix + "indexer_selection"], selection, atol=1e-7)
        np.testing.assert_allclose(maps[prefix + "indexer_selection_layers"], selection[None], atol=1e-7)
        if qsa == "on":
            assert selection.min() == 0 < selection.max(), "the indexer must drop part of the image"
            # A cell no digit row selected gets no decision focus at all.
            assert (maps[prefix + "focus_raw"][selection == 0] == 0).all()
        else:
            assert (selection == 1).all()
    np.testing.assert_allclose(
        maps["indexer_selection_diff"], maps["indexer_selection"] - maps["base_indexer_selection"], atol=1e-7
    )
    result = json.loads((out / "result.json").read_text())
    assert result["family"] == "qwen4_exp" and result["coords_convention"] == "relative-1000"
    entry = result["maps"]["indexer_selection"]
    assert entry["grid"] == "merged" and entry["layers"] == [1]
    # Focus layers count the indexed-attention layers; the result names them among all layers.
    assert entry["info"]["decoder_layers"] == [3] == result["maps"]["focus"]["info"]["decoder_layers"]
    assert result["focus_layers"] == [1]
