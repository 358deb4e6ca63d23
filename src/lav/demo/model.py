"""The demo model: a tiny Qwen3-VL of the real transformers class, its LoRA, and how both are saved."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import transformers

from .. import jsonsafe
from ..testing import save_checkpoint, tiny_config
from .batches import FAMILY

_TEXT = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    # 16 rotary pairs per head: 6 temporal, 5 height, 5 width (interleaved as in Qwen3-VL).
    "rope_parameters": {
        "rope_type": "default",
        "mrope_section": [6, 5, 5],
        "rope_theta": 10000.0,
        "mrope_interleaved": True,
    },
    "rope_scaling": {"rope_type": "default", "mrope_section": [6, 5, 5], "mrope_interleaved": True},
    "max_position_embeddings": 1024,
}
_VISION = {
    "depth": 2,
    "hidden_size": 96,
    "intermediate_size": 192,
    "num_heads": 4,
    "out_hidden_size": 128,
    "num_position_embeddings": 64,
    "deepstack_visual_indexes": [0],
}
LORA = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    # Decoder only: the vision tower (and so the edge map) stays the base model's.
    "target_modules": r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
}


def build_model(seed: int = 0) -> transformers.PreTrainedModel:
    """A freshly initialised demo model (eager attention, so training can read its attention)."""
    config = tiny_config(FAMILY, text=_TEXT, vision=_VISION)
    torch.manual_seed(seed)
    model = transformers.AutoModelForImageTextToText.from_config(config)
    _init_position_grid(model.model.visual.pos_embed.weight)
    model.set_attn_implementation("eager")
    return model


@torch.no_grad()
def _init_position_grid(weight: torch.Tensor) -> None:
    """Start the vision tower's learned position table as a smooth 2-D code of (row, column).

    The decoder reads *where* the target is from the image tokens it attends to, and the only
    absolute position they carry comes from this table (the rotary embeddings touch scores, not
    values). A random start at std 0.02 leaves that signal buried under the patch features; a
    sine/cosine code of unit size makes it readable from the first step. It stays trainable.
    """
    n, dim = weight.shape
    side = int(n**0.5)
    i, j = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    u = (i.flatten().float() / (side - 1))[:, None]
    v = (j.flatten().float() / (side - 1))[:, None]
    freqs = torch.arange(1, 5).float()[None] * math.pi
    code = torch.cat(
        [torch.sin(u * freqs), torch.cos(u * freqs), torch.sin(v * freqs), torch.cos(v * freqs), u, v], 1
    )
    weight.zero_()
    weight[:, : code.shape[1]] = code


def save(model: transformers.PreTrainedModel, proc: transformers.ProcessorMixin, folder: Path) -> Path:
    """The base model as a standard HF folder (sdpa attention: training's eager is only for reading it)."""
    model.set_attn_implementation("sdpa")
    try:
        return save_checkpoint(model, proc, folder)
    finally:
        model.set_attn_implementation("eager")


def save_adapter(model, folder: Path) -> Path:
    """The PEFT adapter as a standard PEFT folder that names no hub base model."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    # The folder is found next to the base model, not by name on the hub.
    cfg_file = folder / "adapter_config.json"
    cfg = jsonsafe.loads(cfg_file.read_text())
    cfg["base_model_name_or_path"] = "lav-demo-base"
    cfg_file.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    # PEFT's generated model card is a template of placeholders; the demo's README says it all.
    (folder / "README.md").unlink(missing_ok=True)
    return folder
