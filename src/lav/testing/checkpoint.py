"""Complete Hugging Face folders for tiny Qwen-VL models, loadable like a real checkpoint.

`tiny_checkpoint("qwen3_vl", folder)` writes what a hub download holds (config, safetensors weights,
tokenizer, image/video processor configs, chat template), so that
``AutoProcessor.from_pretrained(folder)`` and ``AutoModelForImageTextToText.from_pretrained(folder)``
take the same code paths as for ``Qwen/Qwen3-VL-2B-Instruct``, offline and in milliseconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import transformers

from .. import jsonsafe
from ..errors import InputError
from .models import tiny_model
from .processor import build_processor


def save_checkpoint(
    model: transformers.PreTrainedModel, processor: transformers.ProcessorMixin, folder: str | os.PathLike
) -> Path:
    """Write ``model`` (config + safetensors) and ``processor`` (tokenizer, processor configs, chat
    template) into ``folder`` as a hub checkpoint lays them out; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    _add_legacy_rope(folder / "config.json")
    processor.save_pretrained(folder)
    return folder


def _add_legacy_rope(config_file: Path) -> None:
    """Give every ``rope_parameters`` of the saved config its pre-5 spelling too.

    transformers 5 writes only ``rope_parameters``; 4.57 reads ``rope_scaling`` + ``rope_theta`` and
    fails without them. Hub checkpoints carry the old keys, which 5 converts on load, so with both the
    folder loads in either release the way a downloaded one does.
    """
    config = jsonsafe.loads(config_file.read_text(encoding="utf-8"))

    def visit(node: dict[str, Any]) -> None:
        rope = node.get("rope_parameters")
        if isinstance(rope, dict) and "rope_type" in rope and node.get("rope_scaling") is None:
            node["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
            node.setdefault("rope_theta", rope.get("rope_theta"))
        for value in node.values():
            if isinstance(value, dict):
                visit(value)

    visit(config)
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def tiny_checkpoint(family: str, folder: str | os.PathLike, seed: int = 0, **config_overrides: Any) -> Path:
    """Save a randomly initialised tiny model of ``family`` (`lav.tiny_model`) with its
    processor into ``folder``; ``config_overrides`` go to `tiny_model` (``text=``, ``vision=``)."""
    model = tiny_model(family, seed=seed, **config_overrides)
    processor = build_processor(family)
    vision = model.config.vision_config
    image_processor = processor.image_processor
    if (vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size) != (
        image_processor.patch_size,
        image_processor.merge_size,
        image_processor.temporal_patch_size,
    ):
        raise InputError(
            f"the {family} vision config (patch {vision.patch_size}, merge {vision.spatial_merge_size}, "
            f"temporal {vision.temporal_patch_size}) does not match its processor; leave those keys "
            "out of the overrides."
        )
    return save_checkpoint(model, processor, folder)
