"""A few optimisation steps of the demo's training code (the full run is `python -m lav.demo.train`)."""

from __future__ import annotations

import json

import pytest
import torch

from lav.demo import batches as B
from lav.demo import losses as L
from lav.demo import screens as S
from lav.demo import train as T


def test_attention_loss_is_the_cross_entropy_of_the_digit_rows_towards_the_target():
    model = T.build_model(seed=0)
    proc = T.processor()
    items = [S.make_screen(3), S.make_screen(4)]
    batch = T.make_batch(proc, items)
    parts = T.losses(model, batch, model.config.image_token_id)
    # Reference: recompute every row's attention by hand from the eager weights of the last layer.
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "digit_rows", "target")}
    with torch.no_grad():
        attn = model(**inputs, output_attentions=True).attentions[-1]
    total = 0.0
    for b in range(len(items)):
        img = (batch["input_ids"][b] == model.config.image_token_id).nonzero().flatten()
        rows = [r for r in batch["digit_rows"][b].tolist() if r >= 0]
        per_row = [
            -(batch["target"][b] * torch.log(attn[b, h, r, img] + 1e-6)).sum()
            for h in range(attn.shape[1])
            for r in rows
        ]
        total += torch.stack(per_row).mean()
    assert torch.allclose(parts["attn"], total / len(items), rtol=1e-5)
    # A uniform attention over ~100 keys costs about log(100); a random model is near that.
    assert 3.0 < parts["attn"].item() < 6.0


def test_a_few_steps_lower_both_losses_on_a_fixed_batch():
    torch.manual_seed(0)
    model = T.build_model(seed=0)
    proc = T.processor()
    items = [S.make_screen(i) for i in range(4)]
    cfg = T.Config(batch=4, warmup=1, eval_every=0, probe_weight=1.0)
    before = T.losses(model, T.make_batch(proc, items), model.config.image_token_id)
    records = []
    T._train(model, proc, lambda i: items[i % 4], steps=8, lr=3e-3, cfg=cfg, log=records.append)
    after = T.losses(model, T.make_batch(proc, items), model.config.image_token_id)
    assert after["ce"] < before["ce"] - 0.5
    assert after["attn"] < before["attn"] - 0.5
    assert records and "probe" in records[-1]


def test_training_entry_point_writes_a_loadable_base_and_adapter(tmp_path):
    log = tmp_path / "log.jsonl"
    code = T.main(
        [
            "--out",
            str(tmp_path),
            "--batch",
            "2",
            "--base-steps",
            "2",
            "--adapter-steps",
            "2",
            "--vision-steps",
            "2",
            "--eval-every",
            "0",
            "--warmup",
            "1",
            "--log",
            str(log),
        ]
    )
    assert code == 0
    assert (tmp_path / "base" / "model.safetensors").is_file()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    phases = [json.loads(line).get("phase") for line in log.read_text().splitlines()]
    assert "base done" in phases and "adapter done" in phases

    import lav

    viz = lav.load(tmp_path / "base", adapter=tmp_path / "adapter", device="cpu")
    assert viz.has_adapter


def test_edge_loss_reads_the_same_received_attention_as_lavs_edge_map():
    import lav

    model = T.build_model(seed=1)
    proc = T.processor()
    screen = S.make_screen(5)
    batch = T.make_batch(proc, [screen])
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "digit_rows", "target")}
    scores = L.VisionScores(model)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        scores.close()
    h, w = S.HEIGHT // 16, S.WIDTH // 16
    # block-major (merge blocks consecutive) -> raster (h, w)
    mine = torch.stack(
        [b[0].view(h // 2, w // 2, 2, 2).permute(0, 2, 1, 3).reshape(h, w) for b in scores.received]
    )
    model.set_attn_implementation("sdpa")
    res = lav.Visualizer(model, proc).analyze(screen.image, screen.instruction, edge_layers="all")
    assert torch.allclose(mine, torch.from_numpy(res.map("edge").arrays["edge_layers"]), atol=1e-5)
    # and the widget mask in the same order marks the target's patches
    mask = B.widget_patches(screen).view(h // 2, w // 2, 2, 2).permute(0, 2, 1, 3).reshape(h, w)
    x0, y0, x1, y1 = screen.box
    assert mask[(y0 + y1) // 32, (x0 + x1) // 32] and 0 < mask.sum() < h * w
    assert not any(True for _ in model.model.visual.blocks[0].attn._forward_pre_hooks)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"vision_mask_block": 2, "vision_crop": 1.0, "vision_invert": 0.5},
        {"vision_mask": 0.0, "vision_noise": 0.5},
    ],
    ids=["masked-patches", "squares-crops-inverted", "denoising"],
)
def test_vision_pretraining_lowers_the_reconstruction_loss_and_touches_only_the_encoder(options):
    model = T.build_model(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    records = []
    cfg = T.Config(batch=4, vision_steps=12, vision_lr=3e-3, **options)
    T.pretrain_vision(model, T.processor(), cfg, records.append)
    losses = [r["recon"] for r in records]
    assert losses[-1] < 0.8 * losses[0]
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    encoder = ("model.visual.patch_embed.", "model.visual.pos_embed.", "model.visual.blocks.")
    assert changed and all(k.startswith(encoder) for k in changed)
    # The decoder, the mergers and the rest of the model are untouched; no hook is left behind.
    assert not model.model.visual.patch_embed._forward_hooks
    assert not model.model.visual.blocks[-1]._forward_hooks


@pytest.mark.parametrize("side", [1, 2, 3, 4])
def test_pretraining_masks_whole_squares_of_the_grid_in_the_processors_row_order(side):
    """The masked rows, put back on the grid from the processor's order, form whole side x side
    squares aligned to the grid."""
    screen = S.make_screen(3, "base")
    enc = T.processor().image_processor(images=[screen.image], return_tensors="pt")
    _, h, w = enc["image_grid_thw"][0].tolist()
    gen = torch.Generator().manual_seed(side)
    mask = T._patch_mask(enc["image_grid_thw"], 2, side, 0.5, gen)
    assert mask.shape == (h * w,) and 0 < mask.sum() < h * w
    # Row order -> raster: merge windows of 2 x 2 patches, row-major (DESIGN.md's patch order).
    grid = mask.view(h // 2, w // 2, 2, 2).permute(0, 2, 1, 3).reshape(h, w)
    for r in range(h):
        for c in range(w):
            assert grid[r, c] == grid[r - r % side, c - c % side]
    # Every image of a batch gets its own squares.
    two = T._patch_mask(torch.tensor([[1, h, w], [1, h, w]]), 2, side, 0.5, torch.Generator().manual_seed(0))
    assert two.shape == (2 * h * w,) and not torch.equal(two[: h * w], two[h * w :])


def test_pretraining_crops_lie_inside_the_screen_with_its_aspect():
    import random

    image = S.make_screen(4, "base").image
    rng = random.Random(0)
    sizes = set()
    for _ in range(50):
        crop = T._crop(image, rng)
        assert 0.2 * image.width * image.height <= crop.width * crop.height <= image.width * image.height
        assert abs(crop.width / crop.height - image.width / image.height) < 0.1
        sizes.add(crop.size)
    assert len(sizes) > 10


def _encoder_and_merger_change(scale: float) -> tuple[float, float]:
    model = T.build_model(seed=0)
    encoder = {k: v.clone() for k, v in model.model.visual.blocks.state_dict().items()}
    merger = {k: v.clone() for k, v in model.model.visual.merger.state_dict().items()}
    cfg = T.Config(batch=2, base_steps=2, warmup=1, eval_every=0, vision_steps=0, tower_lr_scale=scale)
    T.train_base(cfg, log=lambda r: None, model=model)
    moved = lambda new, old: max((new[k] - old[k]).abs().max().item() for k in old)  # noqa: E731
    return (
        moved(model.model.visual.blocks.state_dict(), encoder),
        moved(model.model.visual.merger.state_dict(), merger),
    )


def test_grounding_keeps_a_frozen_encoder_and_trains_a_scaled_one_slower():
    frozen_encoder, frozen_merger = _encoder_and_merger_change(0.0)
    assert frozen_encoder == 0.0 and frozen_merger > 0
    slow_encoder, _ = _encoder_and_merger_change(0.1)
    full_encoder, _ = _encoder_and_merger_change(1.0)
    # AdamW's first steps move each weight by about lr: a tenth of the rate, about a tenth the move.
    assert 0 < slow_encoder < 0.2 * full_encoder


@pytest.mark.parametrize(
    "argv",
    [
        ["--vision-steps", "-1"],
        ["--tower-lr-scale", "-0.1"],
        ["--vision-mask", "1.5"],
        ["--vision-crop", "1.5"],
        ["--vision-mask-block", "0"],
        ["--adapter-replay", "2"],
        ["--batch", "0"],
        ["--skip-base", "--vision-steps", "5"],
        ["--skip-base", "--tower-lr-scale=0.5"],
        ["--skip-base", "--base-step", "5"],
    ],
)
def test_training_options_out_of_range_exit_2_before_anything_is_written(tmp_path, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        # No training steps and no evaluation: without the check, a run would end at once and
        # write the folder, failing the last assertion instead of running for half an hour.
        base = [
            "--out",
            str(tmp_path / "out"),
            "--base-steps",
            "0",
            "--adapter-steps",
            "0",
            "--eval-every",
            "0",
        ]
        T.main([*base, *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("python -m lav.demo.train: error: --")
    option = next(a for a in argv if a.startswith("--") and a != "--skip-base").split("=")[0]
    assert option in err[-1]
    assert not (tmp_path / "out").exists()
