"""Training batches from synthetic screens: model inputs, answer labels, digit rows, attention targets.

Every screen is exactly `screens.WIDTH` x `screens.HEIGHT` pixels, so the processor keeps it at that
size and the grid is fixed: 16 x 12 patches of 16 px, 8 x 6 merged image tokens of 32 px
(`screens.CELL`), the decoder's image tokens in raster order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import transformers

from ..geometry import Grid, grid_to_sequence
from ..metrics import cell_coverage
from ..testing import build_processor
from . import screens as S

#: The demo model's family (a tiny `Qwen3VLForConditionalGeneration`, see `lav.demo.model`).
FAMILY = "qwen3_vl"


def processor() -> transformers.ProcessorMixin:
    """The demo's processor: every screen is exactly `screens.WIDTH` x `screens.HEIGHT` pixels."""
    pixels = S.WIDTH * S.HEIGHT
    return build_processor(FAMILY, min_pixels=pixels, max_pixels=pixels)


def messages(instruction: str, answer: str | None = None) -> list[dict]:
    """The chat of one screen: the image and the instruction, and the answer when training."""
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
    if answer is not None:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return msgs


def cell_weights(box: tuple[int, int, int, int]) -> torch.Tensor:
    """(ROWS * COLS,) float32 share of ``box``'s area in each merged-token cell, raster order (sums to 1)."""
    # Whole-pixel cells and integer corners make the coverage exact multiples of 1/CELL**2, so the
    # normalised weights are bit-equal to pixel-count overlaps normalised the same way.
    w = torch.from_numpy(cell_coverage(box, (S.ROWS, S.COLS), (S.WIDTH, S.HEIGHT))).float()
    return (w / w.sum()).flatten()


def make_batch(proc: transformers.ProcessorMixin, items: Sequence[S.Screen]) -> dict[str, torch.Tensor]:
    """Model inputs + ``labels`` (answer and ``<|im_end|>``), ``digit_rows`` (B, D) query positions
    that produce digits (-1 = none) and ``target`` (B, n_image_tokens) attention targets."""
    tok = proc.tokenizer
    texts = [proc.apply_chat_template(messages(s.instruction, s.answer), tokenize=False) for s in items]
    enc = proc(text=texts, images=[s.image for s in items], return_tensors="pt", padding=True)
    ids = enc["input_ids"]
    head = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    # Qwen tokenizers spell every digit as a token of its own.
    digits = set(tok.convert_tokens_to_ids(list("0123456789")))
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    labels = torch.full_like(ids, -100)
    rows = []
    for b in range(len(items)):
        seq = ids[b].tolist()
        start = next(
            i + len(head) for i in range(len(seq) - len(head), -1, -1) if seq[i : i + len(head)] == head
        )
        end = seq.index(im_end, start)
        labels[b, start : end + 1] = ids[b, start : end + 1]
        # The token at position p is produced by the query at p - 1.
        rows.append([p - 1 for p in range(start, end) if seq[p] in digits])
    width = max(len(r) for r in rows)
    digit_rows = torch.tensor([r + [-1] * (width - len(r)) for r in rows])
    enc = dict(enc)
    enc["labels"] = labels
    enc["digit_rows"] = digit_rows
    enc["target"] = torch.stack([cell_weights(s.box) for s in items])
    return enc


def widget_patches(screen: S.Screen, patch: int = 16, merge: int = 2) -> torch.Tensor:
    """(n_patches,) bool: patches that overlap a widget, in the vision tower's block-major order."""
    grid = Grid(1, S.HEIGHT // patch, S.WIDTH // patch, merge)
    mask = torch.zeros(grid.h, grid.w, dtype=torch.bool)
    for box in screen.widget_boxes:
        mask |= torch.from_numpy(cell_coverage(box, (grid.h, grid.w), (S.WIDTH, S.HEIGHT)) > 0)
    return grid_to_sequence(mask[None], grid)
