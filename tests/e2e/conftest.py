"""Tiny checkpoints saved as real Hugging Face folders, LoRA adapter folders and screenshots."""

from __future__ import annotations

import numpy as np
import peft
import pytest
import torch
import transformers
from PIL import Image

from lav.testing import tiny_checkpoint

SIZE = (300, 200)  # non-square screenshot, not a multiple of the patch size


def _adapter(model_dir, out_dir, zero_b=False, seed=3):
    model = transformers.AutoModelForImageTextToText.from_pretrained(model_dir)
    torch.manual_seed(seed)
    cfg = peft.LoraConfig(
        r=4,
        lora_alpha=16,
        target_modules=["qkv", "q_proj", "k_proj", "v_proj"],
        init_lora_weights=zero_b is True,
    )
    wrapped = peft.get_peft_model(model, cfg)
    if not zero_b:
        with torch.no_grad():
            for name, p in wrapped.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.3)
    wrapped.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    out = {}
    for family in ("qwen3_vl", "qwen2_5_vl"):
        folder = tiny_checkpoint(family, root / family)
        out[family] = {
            "model": folder,
            "adapter": _adapter(folder, root / f"{family}-lora"),
            "zero_adapter": _adapter(folder, root / f"{family}-lora-zero", zero_b=True),
        }
    # An adapter trained on a model of another width: same module names, other shapes.
    other = tiny_checkpoint("qwen3_vl", root / "other", text={"hidden_size": 96, "intermediate_size": 192})
    out["other_adapter"] = _adapter(other, root / "other-lora")
    return out


@pytest.fixture(scope="session")
def screenshot(tmp_path_factory):
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    img[50:90, 200:260] = (230, 30, 30)  # a "button"
    path = tmp_path_factory.mktemp("img") / "screen.png"
    Image.fromarray(img).save(path)
    return path
