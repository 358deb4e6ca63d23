"""`lav demo`: the shipped demo model and its LoRA adapter on the bundled screenshot (no network).

A thin shell: `lav.load` + `Visualizer.analyze(compare_base=True)` + `Result.save`, as `lav run`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import argtypes
from ..demo import assets
from .options import say

NAME = "demo"
DEFAULT_OUT = "lav-demo"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``demo`` on the ``lav`` command's sub-parsers; returns its parser."""
    p = subparsers.add_parser(
        "demo",
        help="run the bundled demo model and its LoRA adapter on a bundled screenshot",
        description=(
            "Runs lav's own tiny Qwen3-VL grounding model with its LoRA adapter (and, for comparison, "
            "without it) on a synthetic screenshot shipped with lav, and writes the report, overlays, "
            "maps and result.json. Needs no download. The demo model was trained by lav with an "
            "attention-supervision loss: its decision focus is taught, not emergent."
        ),
    )
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--image", help="your own screenshot instead of the bundled one (best at 256x192)")
    p.add_argument("--instruction", help='instruction for --image, e.g. "Click the purple circle"')
    p.add_argument(
        "--seed",
        type=argtypes.seed,
        default=0,
        help="torch seed (the demo decodes greedily; kept for reproducibility)",
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    p.add_argument("--no-adapter", action="store_true", help="run the base model alone")
    return p


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit status (0 on success)."""
    from ..checks import check_out, validate_request
    from ..errors import InputError
    from ..inputs import load_image

    if args.image is not None and args.instruction is None:
        raise InputError('--image needs --instruction too, e.g. --instruction "Click the red circle"')
    image = args.image if args.image is not None else assets.SCREEN
    instruction = args.instruction if args.instruction is not None else assets.instruction()
    # What needs no model is checked before torch and the model load, as in `lav run`.
    validate_request(instruction)
    check_out(args.out)
    load_image(image)
    import torch

    from ..loading import load

    torch.manual_seed(args.seed)
    adapter = None if getattr(args, "no_adapter", False) else assets.ADAPTER
    say(f"loading the demo model {assets.BASE}" + ("" if adapter is None else f" with adapter {adapter}"))
    viz = load(assets.BASE, adapter=adapter, device=args.device, dtype="float32")
    say(f'analysing {image} for "{instruction}"')
    res = viz.analyze(image, instruction, compare_base=adapter is not None)
    out = res.save(args.out)
    _print(res, Path(out), image, instruction)
    return 0


def _point(res) -> str:
    if res.click is None:
        return f"none ({res.click_error})"
    return f"({res.click.x:.1f}, {res.click.y:.1f}) px"


def _judge(res, instruction: str) -> None:
    """Whether the click hits the box of the shape the instruction names on the bundled screen."""
    boxes = assets.boxes_for(instruction)
    if not boxes:
        on_screen = ", ".join(f"{c} {s}" for c, s, _ in assets.shapes())
        print(
            f'the bundled screen has no target for "{instruction}" (its shapes: {on_screen}); the click is not judged'
        )
        return
    click = res.click
    hit = [b for b in boxes if click is not None and b[0] <= click.x < b[2] and b[1] <= click.y < b[3]]
    where = boxes[0] if len(boxes) == 1 else boxes
    print(f"target box {hit[0] if hit else where}: the click is {'inside' if hit else 'OUTSIDE'} it")


def _print(res, out: Path, image, instruction: str) -> None:
    w, h = res.image_size
    print(f'demo: "{instruction}" on {image} ({w}x{h})')
    print(f"answer: {res.response!r}  ->  click {_point(res)}" + (" with the adapter" if res.adapter else ""))
    if res.base is not None:
        print(f"base model: {res.base.response!r}  ->  click {_point(res.base)}")
    if image == assets.SCREEN:
        _judge(res, instruction)
    print(
        f"outputs in {out}/: report.html, overlay.png, overlay_base.png, overlay_diff.png, result.json, maps.npz, image.png"
    )
