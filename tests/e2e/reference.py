"""Independent references for the maps: the model's own eager attention and float64 softmax."""

from __future__ import annotations

import numpy as np
import torch
import transformers
from PIL import Image

from tests.core.probe import qk_probe, raster_from_block_major, received_reference


def _minmax(a):
    a = np.asarray(a, dtype=np.float64)
    return (a - a.min()) / (a.max() - a.min())


def prompt_inputs(processor, image_path, instruction, response):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    img = Image.open(image_path).convert("RGB")
    prompt = processor(text=[text], images=[img], return_tensors="pt")
    full = processor(text=[text + response], images=[img], return_tensors="pt")
    return dict(full), prompt["input_ids"].shape[1]


def edge_reference(model, inputs, blocks):
    """Mean over heads and blocks of float64 received attention, min-max, raster (h, w)."""
    vision = [m for m in model.modules() if type(m).__name__.endswith("VisionAttention")]
    vc = (model.get_base_model() if hasattr(model, "get_base_model") else model).config.vision_config
    t, h, w = inputs["image_grid_thw"][0].tolist()
    with qk_probe(model, [vision[b] for b in blocks]) as calls:
        model(**inputs)
    maps = []
    for block_calls in calls:
        seq = torch.cat([received_reference(q, k, s) for q, k, s in block_calls], dim=1)
        # Qwen2.5-VL runs every block, full-attention ones too, on window-ordered patches.
        if vc.model_type.startswith("qwen2_5"):
            tower = next(m for m in model.modules() if hasattr(m, "fullatt_block_indexes"))
            if hasattr(tower, "get_window_index"):
                win = tower.get_window_index(inputs["image_grid_thw"])[0]
            else:
                from transformers.vision_utils import get_vision_window_index

                win = get_vision_window_index(
                    inputs["image_grid_thw"],
                    spatial_merge_size=2,
                    window_size=vc.window_size,
                    patch_size=vc.patch_size,
                )[0]
            perm = (win[:, None] * 4 + torch.arange(4)[None]).flatten()
            seq = seq[:, torch.argsort(perm)]
        maps.append(raster_from_block_major(seq, t, h, w, vc.spatial_merge_size)[:, 0].mean(0).numpy())
    return _minmax(np.mean(maps, axis=0))


def load_reference_model(model_dir, adapter=None, attn_implementation="sdpa"):
    model = transformers.AutoModelForImageTextToText.from_pretrained(
        model_dir, attn_implementation=attn_implementation
    )
    if adapter is not None:
        import peft

        model = peft.PeftModel.from_pretrained(model, str(adapter))
    return model.eval()


def focus_reference(model_dir, inputs, answer_start, digit_tokens, layer=-1, adapter=None):
    """Eager output_attentions of the queries before each digit, on the image tokens, min-max (h/2, w/2)."""
    eager = load_reference_model(model_dir, adapter, attn_implementation="eager")
    with torch.no_grad():
        attn = eager(**inputs, output_attentions=True).attentions[layer][0].double()  # (H, L, L)
    image_token_id = (eager.get_base_model() if adapter is not None else eager).config.image_token_id
    image = (inputs["input_ids"][0] == image_token_id).nonzero().flatten()
    queries = [answer_start - 1 + i for i in digit_tokens]
    rows = attn[:, queries][:, :, image].mean(dim=(0, 1)).numpy()
    _, h, w = inputs["image_grid_thw"][0].tolist()
    return _minmax(rows.reshape(h // 2, w // 2))
