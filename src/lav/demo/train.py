"""Train the demo's base model and its LoRA adapter from scratch: ``python -m lav.demo.train``.

The model is a tiny `Qwen3VLForConditionalGeneration` (the real class) with the project's
character-level tokenizer and chat template. It answers "(x, y)" on Qwen3-VL's 0-1000 scale.

**The demo model's attention is taught, not emergent.** Next-token training alone stays on a
plateau at this size and budget (see TRAINING.md), so the loss has two parts:

- cross-entropy on the answer tokens (the digits, the punctuation, ``<|im_end|>``);
- an attention loss on the queries that produce the coordinate digits (the query before each digit),
  in the last `losses.SUPERVISED_LAYERS` decoder layers, every head: cross-entropy between the attention row
  and the target's image tokens, weighted by how much of the target's box each token's cell covers.

So the decision focus that `lav` shows in those layers is the pattern this loss put there; the
other layers and the vision tower's self-attention (the edge map) are not supervised.

First (``--vision-steps``, 600 in the shipped recipe) the vision encoder is pretrained alone, as
real towers are before a language model sees them: denoising of the screens (`pretrain_vision`:
every patch noisy, every patch's clean pixels the target; masked-patch reconstruction is an
option), no loss on attention; ``--tower-lr-scale 0`` (the default) then keeps it frozen during
grounding. TRAINING.md has the objectives tried and what each did to the edge map (issue #16).

The adapter is a PEFT LoRA on the decoder, trained by the same losses on instructions that name
colours the base model never reads (`screens.NEW_COLOURS`).

Here: the loop, evaluation and the command line. Batches: `lav.demo.batches`; losses:
`lav.demo.losses`; the model, its LoRA and saving: `lav.demo.model`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import PIL.ImageOps
import torch
import transformers

from ..coords import parse_answer, to_click
from ..metrics import point_in_box
from ..models import inspect_model
from . import screens as S
from .batches import make_batch, messages, processor, widget_patches
from .losses import losses
from .model import LORA, build_model, save, save_adapter

#: Where `python -m lav.demo.train` writes (and the package ships) the model and the adapter.
WEIGHTS = Path(__file__).parent / "weights"

__all__ = [
    "Config",
    "build_model",
    "bundle_screenshot",
    "hit_rate",
    "losses",
    "main",
    "make_batch",
    "predict",
    "pretrain_vision",
    "processor",
    "train_adapter",
    "train_base",
]


@dataclass
class Config:
    """One training run; the defaults are the shipped model's."""

    seed: int = 0
    batch: int = 16
    base_steps: int = 2000
    base_lr: float = 2e-3
    adapter_steps: int = 400
    adapter_lr: float = 2e-3
    #: Share of the adapter's batches that are base-task screens (so it keeps the base task).
    adapter_replay: float = 0.3
    warmup: int = 100
    attn_weight: float = 1.0
    #: Weight of the position probe (0 = off): a linear head, thrown away after training, that
    #: reads each image token's (row, column) from the residual stream entering the last layer.
    probe_weight: float = 1.0
    #: Weight of the edge loss (0 = off): the share of the attention that the vision blocks' patches
    #: *receive* (lav's edge map) which lands on widget patches, pushed up.
    edge_weight: float = 0.0
    eval_every: int = 250
    eval_screens: int = 48
    #: Steps of pretraining of the vision tower alone before grounding (`pretrain_vision`;
    #: 0 = none, the recipe shipped before issue #16), batches of ``batch``. The shipped recipe:
    #: 600 steps of denoising (``vision_noise`` 1, no masks); see TRAINING.md for the variants tried.
    vision_steps: int = 600
    #: Share of each screen's patches masked during that pretraining (replaced by a learned token).
    vision_mask: float = 0.0
    #: Side, in patches, of the squares masked together (1: single patches, SimMIM's default; 2: a
    #: merged image token; larger: block-wise masking, as in BEiT), on each image's patch grid.
    vision_mask_block: int = 1
    #: Share of the pretraining screens replaced by a random crop (a quarter to all of the screen's
    #: area, the screen's aspect, anywhere on it), which the processor scales back to about the
    #: screen's patch count: the random-resized-crop augmentation real towers are trained with, so
    #: that the title bar, always at the top of a whole screen, is absent from most crops.
    vision_crop: float = 0.0
    #: Share of the pretraining screens shown with inverted colours (a dark theme: the title bar
    #: light, the content dark), so that darkness alone marks nothing.
    vision_invert: float = 0.0
    #: Standard deviation of Gaussian noise added to every patch (of the processor's normalised
    #: pixels) during that pretraining; above 0 the loss covers every patch, masked or not
    #: (denoising), not only the masked ones.
    vision_noise: float = 1.0
    vision_lr: float = 1e-3
    #: Learning rate of the vision encoder (patch embedding, position table, blocks) during the
    #: grounding training, as a multiple of ``base_lr``: 0 freezes it (the mergers into the decoder
    #: always train). The shipped recipe freezes it after pretraining (0): grounding alone drove the
    #: tower's attention onto the background (TRAINING.md).
    tower_lr_scale: float = 0.0
    #: One thread: on a shared 2-core machine two threads per process thrash (measured 3-10x slower).
    threads: int = 1


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@torch.no_grad()
def predict(model, proc, items: Sequence[S.Screen], batch: int = 32) -> list[tuple[float, float] | None]:
    """Greedy clicks in image pixels (None where the answer has no click `lav.coords` can read)."""
    tok = proc.tokenizer
    side = tok.padding_side
    tok.padding_side = "left"
    model.eval()
    convention = inspect_model(model).spec.coords  # 0-1000 for the demo's Qwen3-VL
    size = (S.WIDTH, S.HEIGHT)  # the processor keeps every screen at its size
    clicks: list[tuple[float, float] | None] = []
    try:
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            texts = [
                proc.apply_chat_template(messages(s.instruction), add_generation_prompt=True, tokenize=False)
                for s in chunk
            ]
            enc = proc(text=texts, images=[s.image for s in chunk], return_tensors="pt", padding=True)
            out = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
            for row in out[:, enc["input_ids"].shape[1] :]:
                parsed = parse_answer(tok.decode(row, skip_special_tokens=True))
                if parsed is None or parsed.refusal is not None:
                    clicks.append(None)
                    continue
                click = to_click(parsed, convention, size, size)
                clicks.append((click.x, click.y))
    finally:
        tok.padding_side = side
    return clicks


def hit_rate(model, proc, items: Sequence[S.Screen]) -> float:
    """Share of ``items`` whose predicted click falls inside the target's box (`lav.metrics`)."""
    clicks = predict(model, proc, items)
    return sum(c is not None and point_in_box(*c, s.box) for c, s in zip(clicks, items, strict=True)) / len(
        items
    )


def _step(opt, sched, params, loss: torch.Tensor) -> None:
    """One optimisation step: gradients of ``loss``, clipped to norm 1, then the schedule."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()


def _encoder_params(model) -> list[torch.nn.Parameter]:
    """The vision encoder's parameters: patch embedding, position table, blocks (not the mergers)."""
    tower = model.model.visual
    return [p for part in (tower.patch_embed, tower.pos_embed, tower.blocks) for p in part.parameters()]


def pretrain_vision(model, proc, cfg: Config, log: Callable[[dict], None] = print) -> None:
    """Pretrain ``model``'s vision encoder alone, in place, by a dense objective of the kind real
    towers learn from, with no loss on attention: a linear head on the last block's output, thrown
    away afterwards, predicts patches' pixels (the processor's normalised patch rows), L1.

    - ``cfg.vision_noise`` > 0 (the shipped recipe): denoising. Gaussian noise on every patch, the
      loss on every patch, so the last block's attention from every position is trained — what an
      unmasked screenshot at inference exercises.
    - ``cfg.vision_mask``: masked-patch reconstruction, SimMIM-style (Xie et al., CVPR 2022): that
      share of the patches (in squares of ``cfg.vision_mask_block``) replaced by a learned mask
      token after the patch embedding (the position table still says where each one is); without
      noise the loss is on the masked patches only.
    - ``cfg.vision_crop`` / ``cfg.vision_invert``: random resized crops, inverted colours.

    Screens of both tasks, from the training seeds. The mergers into the decoder are not touched.
    """
    tower = model.model.visual
    width = tower.patch_embed.proj.out_channels
    patch_dim = tower.patch_embed.proj.weight[0].numel()
    torch.manual_seed(cfg.seed)
    head = torch.nn.Linear(width, patch_dim)
    mask_token = torch.nn.Parameter(torch.zeros(width))
    params = [*_encoder_params(model), *head.parameters(), mask_token]
    opt = torch.optim.AdamW(params, lr=cfg.vision_lr, betas=(0.9, 0.95), weight_decay=0.05)
    steps = cfg.vision_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, steps, min(50, steps)))
    state: dict = {}

    def masked_embed(module, args, out):
        return torch.where(state["mask"][:, None], mask_token.to(out.dtype), out)

    def last_block(module, args, out):
        state["hidden"] = out[0] if isinstance(out, tuple) else out

    hooks = [
        tower.patch_embed.register_forward_hook(masked_embed),
        tower.blocks[-1].register_forward_hook(last_block),
    ]
    gen = torch.Generator().manual_seed(cfg.seed)
    rng_offset = cfg.seed * 1_000_000
    merge = tower.spatial_merge_size
    crops = random.Random(f"lav-demo/crops/{cfg.seed}")
    tower.train()
    t0 = time.perf_counter()
    try:
        for step in range(steps):
            screens = [
                S.make_screen(rng_offset + step * cfg.batch + i, "base" if i % 2 else "adapter")
                for i in range(cfg.batch)
            ]
            images = [_augment(s.image, crops, cfg) for s in screens]
            enc = proc.image_processor(images=images, return_tensors="pt")
            pixels = enc["pixel_values"]
            state["mask"] = _patch_mask(
                enc["image_grid_thw"], merge, cfg.vision_mask_block, cfg.vision_mask, gen
            )
            if cfg.vision_noise:
                # Every patch noisy, every patch's clean pixels the target: the last block's
                # attention from visible patches (all an unmasked screenshot has) gets a loss too.
                noise = torch.randn(pixels.shape, generator=gen) * cfg.vision_noise
                tower(pixels + noise, grid_thw=enc["image_grid_thw"])
                scored = torch.ones_like(state["mask"])
            else:
                tower(pixels, grid_thw=enc["image_grid_thw"])
                scored = state["mask"]
            loss = (head(state["hidden"])[scored] - pixels[scored]).abs().mean()
            _step(opt, sched, params, loss)
            if step % 50 == 0 or step == steps - 1:
                log(
                    {
                        "vision_step": step,
                        "recon": round(loss.item(), 4),
                        "s": round(time.perf_counter() - t0, 1),
                    }
                )
    finally:
        for h in hooks:
            h.remove()


def _augment(image, rng: random.Random, cfg: Config):
    """One pretraining screen: cropped (`Config.vision_crop`), inverted (`Config.vision_invert`)."""
    if rng.random() < cfg.vision_crop:
        image = _crop(image, rng)
    if rng.random() < cfg.vision_invert:
        image = PIL.ImageOps.invert(image)
    return image


def _crop(image, rng: random.Random):
    """A random crop of ``image``: a quarter to all of its area, its aspect, anywhere on it."""
    side = math.sqrt(rng.uniform(0.25, 1.0))
    w, h = max(32, round(image.width * side)), max(32, round(image.height * side))
    x0, y0 = rng.randint(0, image.width - w), rng.randint(0, image.height - h)
    return image.crop((x0, y0, x0 + w, y0 + h))


def _patch_mask(
    grid_thw: torch.Tensor, merge: int, side: int, share: float, gen: torch.Generator
) -> torch.Tensor:
    """Which rows of the processor's ``pixel_values`` to mask: squares of ``side`` x ``side``
    patches on each image's grid, each masked with probability ``share``. The rows come in the
    processor's order (merge windows of ``merge`` x ``merge`` patches, row-major), so each row's
    (row, column) on the grid is worked out from that order, not assumed to be raster order."""
    masks = []
    for t, h, w in grid_thw.tolist():
        grid = torch.arange(h * w).reshape(h // merge, merge, w // merge, merge)
        index = grid.permute(0, 2, 1, 3).reshape(-1)  # raster index of each row, in the rows' order
        rows, cols = index // w, index % w
        blocks_w = -(-w // side)
        block = rows // side * blocks_w + cols // side
        drawn = torch.rand(-(-h // side) * blocks_w, generator=gen) < share
        masks.append(drawn[block].repeat(t))
    return torch.cat(masks)


def _train(
    model,
    proc,
    sample: Callable[[int], S.Screen],
    steps: int,
    lr: float,
    cfg: Config,
    log: Callable[[dict], None],
    evaluate: Callable[[], dict] | None = None,
    checkpoint: Callable[[], object] | None = None,
    slow: Sequence[torch.nn.Parameter] = (),
) -> None:
    """``slow`` parameters train at ``cfg.tower_lr_scale`` times ``lr``."""
    params = [p for p in model.parameters() if p.requires_grad]
    probe = None
    if cfg.probe_weight > 0:
        probe = torch.nn.Linear(model.config.text_config.hidden_size, S.ROWS + S.COLS)
        params = params + list(probe.parameters())
    # One group at scale 1 (the shipped recipe's optimiser, unchanged); else the slow ones apart.
    scaled = set() if cfg.tower_lr_scale == 1 else {id(p) for p in slow}
    groups = [{"params": [p for p in params if id(p) not in scaled]}]
    slow_params = [p for p in params if id(p) in scaled]
    if slow_params:
        groups.append({"params": slow_params, "lr": lr * cfg.tower_lr_scale})
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, steps, min(cfg.warmup, steps)))
    image_token_id = model.config.image_token_id
    t0 = time.perf_counter()
    counter = 0
    for step in range(steps):
        model.train()
        items = [sample(counter + i) for i in range(cfg.batch)]
        counter += cfg.batch
        batch = make_batch(proc, items)
        if cfg.edge_weight > 0:
            batch["widgets"] = torch.stack([widget_patches(s) for s in items])
        parts = losses(model, batch, image_token_id, probe)
        ce, attn = parts["ce"], parts["attn"]
        loss = ce + cfg.attn_weight * attn
        if probe is not None:
            loss = loss + cfg.probe_weight * parts["probe"]
        if "edge" in parts:
            loss = loss + cfg.edge_weight * parts["edge"]
        _step(opt, sched, params, loss)
        if step % 20 == 0 or step == steps - 1:
            record = {k: round(v.item(), 4) for k, v in parts.items() if v.dim() == 0}
            record["acc"] = [round(a, 2) for a in parts["acc"].tolist()]
            log(
                {
                    "step": step,
                    **record,
                    "lr": sched.get_last_lr()[0],
                    "s": round(time.perf_counter() - t0, 1),
                }
            )
        if evaluate is not None and cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            log({"step": step, **evaluate()})
            if checkpoint is not None:
                checkpoint()


def train_base(
    cfg: Config, log: Callable[[dict], None] = print, model=None, proc=None, folder: Path | None = None
):
    """The base model, trained on `screens` task ``"base"``; returns (model, processor).

    Without ``model``, a fresh one whose vision encoder is first pretrained (`pretrain_vision`,
    ``cfg.vision_steps``); a given ``model`` is trained as it is. Either way the encoder then
    trains at ``cfg.tower_lr_scale`` times the rate (0: frozen). With ``folder``, the model is saved
    there at every evaluation too."""
    proc = proc or processor()
    if model is None:
        model = build_model(cfg.seed)
        if cfg.vision_steps:
            t0 = time.perf_counter()
            pretrain_vision(model, proc, cfg, log)
            log({"phase": "vision pretraining done", "minutes": round((time.perf_counter() - t0) / 60, 1)})
    if cfg.tower_lr_scale == 0:
        for p in _encoder_params(model):
            p.requires_grad_(False)
    rng_offset = cfg.seed * 1_000_000
    held = S.held_out(cfg.eval_screens, "base")

    def sample(i: int) -> S.Screen:
        return S.make_screen(rng_offset + i, "base")

    ckpt = None if folder is None else (lambda: save(model, proc, folder))
    _train(
        model,
        proc,
        sample,
        cfg.base_steps,
        cfg.base_lr,
        cfg,
        log,
        lambda: {"base_hit": hit_rate(model, proc, held)},
        ckpt,
        slow=_encoder_params(model),
    )
    return model, proc


def train_adapter(base, proc, cfg: Config, log: Callable[[dict], None] = print):
    """A PEFT LoRA on ``base`` for task ``"adapter"`` (new colour words); returns the PeftModel."""
    import peft

    for p in base.parameters():
        p.requires_grad_(False)
    torch.manual_seed(cfg.seed + 1)
    model = peft.get_peft_model(base, peft.LoraConfig(**LORA))
    held = S.held_out(cfg.eval_screens, "adapter")
    held_base = S.held_out(cfg.eval_screens, "base")
    rng_offset = cfg.seed * 1_000_000 + 500_000

    def sample(i: int) -> S.Screen:
        task = "base" if (i * 0.6180339887) % 1.0 < cfg.adapter_replay else "adapter"
        return S.make_screen(rng_offset + i, task)

    def evaluate() -> dict:
        return {
            "adapter_hit": hit_rate(model, proc, held),
            "adapter_on_base_hit": hit_rate(model, proc, held_base),
        }

    _train(model, proc, sample, cfg.adapter_steps, cfg.adapter_lr, cfg, log, evaluate)
    return model


#: Held-out indices searched for the bundled screenshot (bench/demo_eval.py uses 0.., the tests 5000..).
BUNDLE_START = 9000


def bundle_screenshot(model, proc, folder: Path, start: int = BUNDLE_START, tries: int = 200) -> dict:
    """Pick the bundled screenshot: the first held-out adapter-task screen from ``start`` on where the
    adapter clicks inside the target and the base model (adapter disabled) does not. Writes
    ``screen.png`` and ``screen.json`` (seed, task, instruction, box, a second instruction)."""
    for i in range(start, start + tries):
        screen = S.held_out(1, "adapter", start=i)[0]
        (with_adapter,) = predict(model, proc, [screen])
        with model.disable_adapter():
            (without,) = predict(model, proc, [screen])
        if (
            with_adapter is not None
            and point_in_box(*with_adapter, screen.box)
            and not (without is not None and point_in_box(*without, screen.box))
        ):
            break
    else:
        raise RuntimeError(f"no held-out screen in {tries} where the adapter hits and the base misses")
    folder.mkdir(parents=True, exist_ok=True)
    screen.image.save(folder / "screen.png")
    other = next(f"Click the {c} {k}" for c, k, _ in screen.shapes[1:] if c in S.BASE_COLOURS)
    info = {
        "seed": screen.seed,
        "task": screen.task,
        "instruction": screen.instruction,
        "box": list(screen.box),
        "other_instruction": other,
        "note": "A held-out synthetic screen (lav.demo.screens.make_screen(seed, task)); box is the target's (x0, y0, x1, y1) in pixels.",
    }
    (folder / "screen.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _check_config(parser: argparse.ArgumentParser, cfg: Config, skip_base: bool, given: set[str]) -> None:
    """Every number of ``cfg`` in its range, else one line and exit 2 (argparse's error); ``given``:
    the options on the command line."""
    flag = lambda name: f"--{name.replace('_', '-')}"  # noqa: E731
    for name, value in asdict(cfg).items():
        if value < 0:
            parser.error(f"{flag(name)} must be 0 or more, not {value}")
    for name in ("batch", "threads", "vision_mask_block"):
        if getattr(cfg, name) < 1:
            parser.error(f"{flag(name)} must be 1 or more")
    for name in ("vision_mask", "vision_crop", "vision_invert", "adapter_replay"):
        if getattr(cfg, name) > 1:
            parser.error(f"{flag(name)} is a share: between 0 and 1")
    # The base model's options mean nothing to an adapter-only run: refused when asked for, not ignored.
    base_only = sorted(n for n in given if n.startswith(("--vision", "--tower", "--base")))
    if skip_base and base_only:
        parser.error(
            f"{', '.join(base_only)}: options of the base model's training; --skip-base trains only the adapter"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lav.demo.train", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=WEIGHTS, help=f"where base/ and adapter/ go (default: {WEIGHTS})"
    )
    parser.add_argument("--log", type=Path, help="also append the progress (JSON lines) to this file")
    parser.add_argument(
        "--bundle", type=Path, help="also pick the bundled screenshot and write it into this folder"
    )
    parser.add_argument("--skip-base", action="store_true", help="train only the adapter, on OUT/base")
    for name, value in asdict(Config()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    cfg = Config(**{k: getattr(args, k) for k in asdict(Config())})
    argv = sys.argv[1:] if argv is None else list(argv)
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    _check_config(parser, cfg, args.skip_base, given)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _run(args, cfg)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, cfg: Config) -> int:
    def log(record: dict) -> None:
        line = json.dumps(record)
        print(line, flush=True)
        if args.log:
            with open(args.log, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    t0 = time.perf_counter()
    log({"config": asdict(cfg)})
    if args.skip_base:
        base = transformers.AutoModelForImageTextToText.from_pretrained(
            args.out / "base", attn_implementation="eager"
        )
        proc = transformers.AutoProcessor.from_pretrained(args.out / "base")
    else:
        base, proc = train_base(cfg, log, folder=args.out / "base")
        save(base, proc, args.out / "base")
        log({"phase": "base done", "minutes": round((time.perf_counter() - t0) / 60, 1)})
    adapter = train_adapter(base, proc, cfg, log)
    save_adapter(adapter, args.out / "adapter")
    log({"phase": "adapter done", "minutes": round((time.perf_counter() - t0) / 60, 1)})
    if args.bundle is not None:
        log({"bundled": bundle_screenshot(adapter, proc, args.bundle)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
