"""Float64 ground truth for the maps `lav.Visualizer.analyze` returns, built without lav's code.

The reference model is a float64 copy of the model under test with eager attention. Vision q/k come
from an attention function registered here that keeps what each call receives (post-RoPE, one call
per image or Qwen2.5-VL window); decoder rows come from eager ``output_attentions``. Everything
after that is full softmax in float64 and the geometry of shared/DESIGN.md written out again.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import transformers
from PIL import Image
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

_names = itertools.count()

#: transformers 5 runs MoE experts through torch's grouped matmul, which has no float64 kernel.
FLOAT64_EXPERTS = {"experts_implementation": "eager"} if transformers.__version__[0] != "4" else {}


def minmax(values: np.ndarray) -> np.ndarray:
    """To [0,1] in float64; a constant map becomes zeros."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = values.min(), values.max()
    return np.zeros_like(values) if not hi > lo else (values - lo) / (hi - lo)


@dataclass(frozen=True)
class Prompt:
    """Processor inputs of prompt + forced answer, and the first answer position."""

    inputs: dict[str, torch.Tensor]
    answer_start: int


def forced_prompt(processor, image: Image.Image, instruction: str, response: str) -> Prompt:
    """The chat-template prompt with one image and ``response`` appended, as a user would write it."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt = processor(text=[text], images=[image], return_tensors="pt")
    full = processor(text=[text + response], images=[image], return_tensors="pt")
    start = prompt["input_ids"].shape[1]
    assert torch.equal(full["input_ids"][0, :start], prompt["input_ids"][0])
    return Prompt({k: v for k, v in full.items() if isinstance(v, torch.Tensor)}, start)


def load_float64_eager(folder) -> torch.nn.Module:
    """The checkpoint in ``folder`` in float64 with eager attention: the reference model."""
    model = transformers.AutoModelForImageTextToText.from_pretrained(
        folder, attn_implementation="eager", **FLOAT64_EXPERTS
    )
    return model.to(torch.float64).eval()


@contextmanager
def vision_qk(model):
    """Keep (q, k, scaling) of every vision attention call, per block in call order."""
    blocks = [m for m in model.modules() if type(m).__name__.endswith("VisionAttention")]
    calls: dict[int, list] = {id(m): [] for m in blocks}
    delegate = ALL_ATTENTION_FUNCTIONS["sdpa"]

    def keep(module, query, key, value, *args, **kwargs):
        calls[id(module)].append((query.detach().clone(), key.detach().clone(), kwargs["scaling"]))
        return delegate(module, query, key, value, *args, **kwargs)

    name = f"reference64_{next(_names)}"
    AttentionInterface.register(name, keep)
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    vision_config = blocks[0].config
    saved = vision_config._attn_implementation_internal
    try:
        vision_config._attn_implementation_internal = name
        yield [calls[id(m)] for m in blocks]
    finally:
        vision_config._attn_implementation_internal = saved
        AttentionInterface._global_mapping.pop(name)
        AttentionMaskInterface._global_mapping.pop(name)


def received(query: torch.Tensor, key: torch.Tensor, scaling: float) -> torch.Tensor:
    """Column sums of the full float64 softmax: (1, H, n, D) q and k -> (H, n)."""
    q, k = query[0].double(), key[0].double()
    return torch.softmax(q @ k.transpose(-1, -2) * scaling, dim=-1).sum(dim=-2)


def window_order(model, grid_thw: torch.Tensor, merge: int) -> torch.Tensor:
    """Qwen2.5-VL: for each window-ordered position, the block-major patch it holds."""
    tower = next(m for m in model.modules() if hasattr(m, "fullatt_block_indexes"))
    if hasattr(tower, "get_window_index"):
        window_index = tower.get_window_index(grid_thw)[0]
    else:  # transformers 5 moved it out of the tower
        from transformers.vision_utils import get_vision_window_index

        vc = tower.config
        window_index = get_vision_window_index(
            grid_thw, spatial_merge_size=merge, window_size=vc.window_size, patch_size=vc.patch_size
        )[0]
    return (window_index[:, None] * merge * merge + torch.arange(merge * merge)[None]).flatten()


def block_major_to_raster(values: np.ndarray, h: int, w: int, merge: int) -> np.ndarray:
    """(n,) block-major vision order of one still image -> (h, w), by shared/DESIGN.md's formula."""
    out = np.empty((h, w), dtype=values.dtype)
    for s in range(h * w):
        block, within = divmod(s, merge * merge)
        bh, bw = divmod(block, w // merge)
        i, j = divmod(within, merge)
        out[bh * merge + i, bw * merge + j] = values[s]
    return out


def edge_reference(reference, inputs: dict[str, torch.Tensor], blocks: list[int]) -> np.ndarray:
    """Mean over heads and ``blocks`` of float64 received attention, min-max, (grid_h, grid_w)."""
    vc = reference.config.vision_config
    merge = vc.spatial_merge_size
    t, h, w = inputs["image_grid_thw"][0].tolist()
    assert t == 1, "a still image"
    with torch.no_grad(), vision_qk(reference) as calls:
        reference(**inputs)
    per_block = []
    for block in blocks:
        block_calls = calls[block]
        seq = torch.cat([received(q, k, s) for q, k, s in block_calls], dim=1).mean(dim=0)  # (n,)
        # Qwen2.5-VL runs every block, full-attention ones too, on window-ordered patches.
        if getattr(vc, "fullatt_block_indexes", None) is not None:
            seq = seq[torch.argsort(window_order(reference, inputs["image_grid_thw"], merge))]
        per_block.append(block_major_to_raster(seq.numpy(), h, w, merge))
    return minmax(np.mean(per_block, axis=0))


def digit_rows(tokenizer, input_ids: torch.Tensor, answer_start: int) -> list[int]:
    """Answer-token indices (0 = first answer token) whose text is a digit."""
    answer = input_ids[0, answer_start:].tolist()
    return [i for i, t in enumerate(answer) if tokenizer.decode([t]).strip().isdigit()]


@contextmanager
def _softmax_in_input_dtype():
    """Eager attention in transformers takes its softmax with ``dtype=torch.float32`` (Qwen2.5-VL,
    Qwen3-VL, 5.24 and 4.57), which rounds a float64 model's probabilities to float32; the reference
    keeps them in float64."""
    original = torch.nn.functional.softmax

    def softmax(input, dim=None, _stacklevel=3, dtype=None):
        if dtype == torch.float32 and input.dtype == torch.float64:
            dtype = torch.float64
        return original(input, dim=dim, _stacklevel=_stacklevel, dtype=dtype)

    torch.nn.functional.softmax = softmax
    try:
        yield
    finally:
        torch.nn.functional.softmax = original


def focus_reference(
    reference, inputs: dict[str, torch.Tensor], answer_start: int, rows: list[int], layer: int = -1
) -> np.ndarray:
    """Eager float64 attention of the queries before ``rows`` to the image tokens, min-max, (h/m, w/m).

    ``layer`` counts full-attention layers only (linear-attention layers have no attention map).
    """
    with torch.no_grad(), _softmax_in_input_dtype():
        out = reference(**inputs, output_attentions=True)
    maps = [a for a in out.attentions if a is not None]
    attn = maps[layer][0].double()  # (H, L, L)
    image = (inputs["input_ids"][0] == reference.config.image_token_id).nonzero().flatten()
    queries = [answer_start - 1 + i for i in rows]
    per_token = attn[:, queries][:, :, image].mean(dim=(0, 1)).numpy()  # raster over (h/m, w/m)
    _, h, w = inputs["image_grid_thw"][0].tolist()
    merge = reference.config.vision_config.spatial_merge_size
    return minmax(per_token.reshape(h // merge, w // merge))


def float64_inputs(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}


def reference_maps(
    folder, processor, image: Image.Image, instruction: str, response: str, blocks=(-2, -1)
) -> dict[str, np.ndarray]:
    """``edge``, ``focus``, ``focus_x``, ``focus_y`` of the checkpoint in ``folder``, in float64.

    The focus rows are the queries before the digits of the first number (x), the second (y) and both.
    """
    reference = load_float64_eager(folder)
    prompt = forced_prompt(processor, image, instruction, response)
    inputs = float64_inputs(prompt.inputs)
    depth = reference.config.vision_config.depth
    edge = edge_reference(reference, inputs, [b % depth for b in blocks])
    digits = digit_rows(processor.tokenizer, inputs["input_ids"], prompt.answer_start)
    # The answer is "(x, y)": the first run of consecutive digits spells x, the rest y.
    split = next((n for n, (a, b) in enumerate(itertools.pairwise(digits), 1) if b != a + 1), len(digits))
    x, y = digits[:split], digits[split:]
    start = prompt.answer_start
    return {
        "edge": edge,
        "focus": focus_reference(reference, inputs, start, digits),
        "focus_x": focus_reference(reference, inputs, start, x),
        "focus_y": focus_reference(reference, inputs, start, y),
        "grid": tuple(prompt.inputs["image_grid_thw"][0].tolist()),
    }
