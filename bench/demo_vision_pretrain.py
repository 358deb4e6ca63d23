"""Issue #16's experiments: does pretraining the demo's vision tower alone put its received
attention (the edge map) on the widgets?

No loss on attention: a linear head on the last vision block's output predicts patches' pixels
(the processor's normalised patch rows), L1. By default SimMIM-style (Xie et al., CVPR 2022): a
share of each screen's patches (``--mask``, in squares of ``--mask-block``) replaced by a learned
mask token after the patch embedding, the loss on those only; with ``--noise`` Gaussian noise on
every patch and the loss on every patch (denoising; the shipped recipe is ``--mask 0 --noise 1
--steps 600``); ``--crop`` / ``--invert`` augment the screens. The tower is the demo
model's (`lav.demo.model.build_model`: 2 blocks x 96 wide, sine/cosine position table), trained
from scratch on the training seeds of the synthetic screens.

The pretraining itself is `lav.demo.train.pretrain_vision`, the recipe's optional first phase
(this script ran it before the recipe did; its first numbers in TRAINING.md came from that copy).
Measured for each tower, per vision block, on held-out screens with lav's own edge map (the
analysis of the shipped demo model with only its vision tower swapped): the share of the edge
map's top-10% patches that touch a widget, against the share of all patches that do (chance); and,
because the title bar is one widget box filling the first patch row, the share on that row and
the share on widgets below it (`demo_eval.edge_shares`).

    python bench/demo_vision_pretrain.py [--steps 1500] [--mask 0.5] [--n 100]
    python bench/demo_vision_pretrain.py --steps 600 --mask 0 --noise 1 --n 60 --save tower.pt
    python bench/demo_vision_pretrain.py --tower tower.pt --n 60          # measure a saved tower
    python bench/demo_vision_pretrain.py --steps 800 --ground 1000   # + grounding training on top

With ``--ground STEPS`` the demo's base grounding training (`lav.demo.train.train_base`, the
shipped recipe with ``base_steps=STEPS``) then runs on top of the pretrained tower, and its tower is
measured too, with the base model's clicks on held-out screens: does grounding keep the attention
on the widgets?
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lav  # noqa: E402
from demo_eval import edge_shares  # noqa: E402
from lav.demo import assets  # noqa: E402
from lav.demo import screens as S  # noqa: E402
from lav.demo.batches import processor  # noqa: E402
from lav.demo.model import build_model  # noqa: E402


def pretrain(cfg) -> tuple[dict, list]:
    """A fresh demo vision tower trained by `lav.demo.train.pretrain_vision` with ``cfg`` (a
    `lav.demo.train.Config`); its state dict, the log."""
    from lav.demo.train import pretrain_vision

    model = build_model(cfg.seed)
    log: list = []

    def keep(record: dict) -> None:
        log.append(record)
        print(json.dumps(record), file=sys.stderr, flush=True)

    pretrain_vision(model, processor(), cfg, keep)
    return {k: v.detach().clone() for k, v in model.model.visual.state_dict().items()}, log


def edge_on_widgets(tower_state: dict | None, n: int) -> dict:
    """Per vision block, means over ``n`` held-out screens: the share of the block's edge map's top
    10% on widgets (and the widgets' share of patches, chance), on the title bar's row, and on
    widgets below that row (and their share there): `demo_eval.edge_shares`."""
    viz = lav.load(assets.BASE, device="cpu")
    if tower_state is not None:
        viz.model.model.visual.load_state_dict(tower_state)
    shares = []
    for screen in S.held_out(n, "base"):
        res = viz.analyze(
            screen.image, screen.instruction, response=screen.answer, edge_layers="all", maps=["edge"]
        )
        shares.append(edge_shares(res.map("edge").arrays["edge_layers"], screen))
    # Means over the screens; lists are over [default map, block 0, block 1, ...].
    m = {key: np.mean([e[key] for e in shares], axis=0) for key in shares[0]}
    return {
        name: {
            "top10_on_widgets": float(m["on"][i]),
            "widget_share": float(m["on_area"]),
            "top10_on_title_row": float(m["title"][i]),
            "title_row_share": float(m["title_area"]),
            "top10_on_widgets_below_title": float(m["below"][i]),
            "widget_share_below_title": float(m["below_area"]),
            "shown_on_widgets_below_title": float(m["shown_widgets"][i]),
            "shown_on_background_below_title": float(m["shown_background"][i]),
        }
        for i, name in enumerate(
            [
                "default map (last 2 blocks)",
                *(f"block {b}" for b in range(len(viz.model.model.visual.blocks))),
            ]
        )
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--mask", type=float, default=0.5, help="share of patches masked (default 0.5)")
    ap.add_argument(
        "--mask-block", type=int, default=1, help="side of the masked squares, in patches (default 1)"
    )
    ap.add_argument("--crop", type=float, default=0.0, help="share of screens randomly cropped (default 0)")
    ap.add_argument("--invert", type=float, default=0.0, help="share of screens inverted (default 0)")
    ap.add_argument("--noise", type=float, default=0.0, help="noise on every patch, loss on all (default 0)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--n", type=int, default=100, help="held-out screens measured (default 100)")
    ap.add_argument("--ground", type=int, default=0, help="then this many base grounding steps on top")
    ap.add_argument(
        "--tower-lr-scale",
        type=float,
        default=0.0,
        help="learning rate of the vision encoder during grounding, x base_lr (default 0: frozen, run A)",
    )
    ap.add_argument("--json", help="also write the numbers to this file")
    ap.add_argument("--tower", help="measure this saved tower (a --save file) instead of pretraining one")
    ap.add_argument("--save", help="also save the pretrained tower's state dict here (torch.save)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if args.tower:
        if not Path(args.tower).is_file():
            ap.error(f"--tower {args.tower}: no such file (write one with --save)")
        state, log = torch.load(args.tower), []
    else:
        from lav.demo.train import Config

        cfg = Config(
            batch=args.batch,
            vision_steps=args.steps,
            vision_mask=args.mask,
            vision_mask_block=args.mask_block,
            vision_crop=args.crop,
            vision_invert=args.invert,
            vision_noise=args.noise,
            vision_lr=args.lr,
        )
        state, log = pretrain(cfg)
    minutes = (time.perf_counter() - t0) / 60
    if args.save:
        torch.save(state, args.save)
    stats = {
        "settings": vars(args),
        "pretrain_minutes": round(minutes, 1),
        "loss": log,
        "shipped tower": edge_on_widgets(None, args.n),
        "random tower (untrained)": edge_on_widgets(
            {k: v for k, v in build_model(0).model.visual.state_dict().items()}, args.n
        ),
        "pretrained tower": edge_on_widgets(state, args.n),
    }
    names = ["shipped tower", "random tower (untrained)", "pretrained tower"]
    if args.ground:
        from dataclasses import replace

        from lav.demo.train import Config, hit_rate, train_base

        model = build_model(0)
        model.model.visual.load_state_dict(state)
        log_lines = []
        cfg = replace(Config(), base_steps=args.ground, tower_lr_scale=args.tower_lr_scale)
        model, proc = train_base(cfg, log_lines.append, model=model)
        name = f"pretrained, then {args.ground} grounding steps"
        stats[name] = edge_on_widgets(model.model.visual.state_dict(), args.n)
        stats["grounding_log"] = log_lines
        stats["base_hit_held_out"] = hit_rate(model, proc, S.held_out(args.n, "base"))
        print(f"base model on {args.n} held-out screens: {stats['base_hit_held_out']:.1%} clicks in the box")
        names.append(name)
    if args.tower:
        print(f"tower: {args.tower} (saved, not pretrained here)")
    else:
        print(f"pretraining: {args.steps} steps x {args.batch} screens, {minutes:.1f} min")
    print(
        "| tower | block | edge top-10% on widgets (chance) | on the title bar's row (its share) "
        "| on widgets below the title bar (chance) | drawn below the title bar: widgets / background |"
    )
    print("|---|---|---|---|---|---|")
    for name in names:
        for block, s in stats[name].items():
            print(
                f"| {name} | {block} | {s['top10_on_widgets']:.1%} ({s['widget_share']:.1%}) "
                f"| {s['top10_on_title_row']:.1%} ({s['title_row_share']:.1%}) "
                f"| {s['top10_on_widgets_below_title']:.1%} ({s['widget_share_below_title']:.1%}) "
                f"| {s['shown_on_widgets_below_title']:.2f} / {s['shown_on_background_below_title']:.2f} |"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(stats, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
