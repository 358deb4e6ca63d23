"""The synthetic screens and the training batches built from them."""

from __future__ import annotations

import pytest
import torch

from lav.demo import batches as B
from lav.demo import screens as S
from lav.demo import train as T


def test_same_seed_gives_the_same_screen():
    a, b = S.make_screen(7), S.make_screen(7)
    assert a.image.tobytes() == b.image.tobytes()
    assert (a.instruction, a.box) == (b.instruction, b.box)
    assert S.make_screen(8).image.tobytes() != a.image.tobytes()


@pytest.mark.parametrize("task", S.TASKS)
def test_target_is_drawn_in_its_box_with_its_colour(task):
    for seed in range(20):
        s = S.make_screen(seed, task)
        x0, y0, x1, y1 = s.box
        assert 0 <= x0 < x1 <= S.WIDTH and 0 <= y0 < y1 <= S.HEIGHT
        cx, cy = s.centre
        if s.shape == "triangle":
            cy += (y1 - y0) / 4  # a triangle's centroid lies below its box centre
        pixel = s.image.getpixel((int(cx), int(cy)))
        want = S.COLOURS[s.colour]
        assert max(abs(p - q) for p, q in zip(pixel, want, strict=True)) <= 14, (seed, pixel, want)
        colours = S.BASE_COLOURS if task == "base" else S.NEW_COLOURS
        assert s.colour in colours
        assert s.instruction == f"Click the {s.colour} {s.shape}"


def test_answer_on_the_0_1000_scale_points_into_the_box():
    for seed in range(50):
        s = S.make_screen(seed)
        x, y = (int(v) for v in s.answer.strip("()").split(", "))
        assert s.contains(x / 1000 * S.WIDTH, y / 1000 * S.HEIGHT)


def test_held_out_screens_are_not_training_screens():
    held = S.held_out(3)
    assert all(s.seed >= S.HELD_OUT_SEED for s in held)
    cfg = T.Config()
    last_training_seed = cfg.seed * 1_000_000 + 500_000 + cfg.adapter_steps * cfg.batch
    assert last_training_seed < S.HELD_OUT_SEED
    # The vision pretraining's screens too (seeds from cfg.seed * 1_000_000 up).
    assert cfg.seed * 1_000_000 + cfg.vision_steps * cfg.batch < S.HELD_OUT_SEED


def test_cell_weights_cover_the_box_cells_only():
    w = B.cell_weights((40, 40, 60, 60)).view(S.ROWS, S.COLS)  # inside cell (row 1, col 1)
    assert w[1, 1] == 1 and w.sum() == 1
    w = B.cell_weights((48, 40, 80, 60)).view(S.ROWS, S.COLS)  # half in col 1, half in col 2
    assert torch.allclose(w[1, 1:3], torch.tensor([0.5, 0.5]))


def test_processor_keeps_the_screen_size_so_the_grid_is_fixed():
    proc = T.processor()
    s = S.make_screen(0)
    batch = T.make_batch(proc, [s])
    assert batch["image_grid_thw"].tolist() == [[1, S.HEIGHT // 16, S.WIDTH // 16]]
    n_image = int((batch["input_ids"] == T.build_model().config.image_token_id).sum())
    assert n_image == S.ROWS * S.COLS


def test_batch_labels_are_the_answer_and_digit_rows_precede_digits():
    proc = T.processor()
    items = [S.make_screen(1), S.make_screen(2, "adapter")]
    batch = T.make_batch(proc, items)
    tok = proc.tokenizer
    for b, s in enumerate(items):
        lab = batch["labels"][b]
        assert tok.decode(lab[lab >= 0]) == s.answer + "<|im_end|>"
        rows = batch["digit_rows"][b]
        rows = rows[rows >= 0]
        next_tokens = tok.decode(batch["input_ids"][b, rows + 1])
        assert next_tokens == "".join(ch for ch in s.answer if ch.isdigit())
