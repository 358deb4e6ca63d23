"""`lav` command line: a thin shell over the library (`lav.load`, `Visualizer.analyze`, `Result.save`)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .coords import CONVENTIONS
from .errors import LavError

EXIT_BAD_INPUT = 2


def _say(msg: str) -> None:
    print(f"lav: {msg}", file=sys.stderr, flush=True)


def _layers(values: list[str] | None, default):
    if values is None:
        return default
    if values == ["all"]:
        return "all"
    try:
        return [int(v) for v in values]
    except ValueError:
        raise LavError(f"layer indices must be integers or 'all', got {' '.join(values)}") from None


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    p.add_argument(
        "--attn-implementation", default="sdpa", help="backend the model runs: sdpa, eager, flash_attention_2"
    )
    p.add_argument(
        "--max-pixels", type=int, default=None, help="refuse images with more pixels than this (default 64M)"
    )


def _add_analysis_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--response", help="force this answer instead of generating (one forward pass)")
    p.add_argument(
        "--edge-layers", nargs="+", metavar="I", help="vision blocks for the edge map (default: -2 -1; 'all')"
    )
    p.add_argument(
        "--focus-layers",
        nargs="+",
        metavar="I",
        help="full-attention decoder layers for the focus (default: -1; 'all')",
    )
    p.add_argument(
        "--coords", choices=CONVENTIONS, help="coordinate convention of the answer (default: by model family)"
    )
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--system", help="system prompt")
    p.add_argument(
        "--template",
        help="user text with {instruction} where the instruction goes (for fine-tunes trained on another format)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lav", description="Where a Qwen-VL model looks when it clicks, with and without its LoRA."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="analyse one screenshot and instruction")
    run.add_argument("--model", required=True, help="Hugging Face model id or local checkpoint folder")
    run.add_argument("--adapter", help="PEFT LoRA adapter folder")
    run.add_argument("--image", required=True, help="screenshot file")
    run.add_argument("--instruction", required=True, help='e.g. "Click the Save button"')
    run.add_argument("--out", default="lav-out", help="output folder (default: lav-out)")
    run.add_argument(
        "--compare-base",
        action="store_true",
        help="also run with the adapter disabled and show the difference",
    )
    _add_model_args(run)
    _add_analysis_args(run)

    from .demo.cli import add_parser as add_demo_parser

    add_demo_parser(sub)
    _add_serve_parser(sub)
    from .eval.cli import add_parsers as add_eval_parsers

    add_eval_parsers(sub, _add_model_args)
    return parser


def _add_serve_parser(sub) -> None:
    from .serve.command import add_parser

    add_parser(sub, _add_model_args)


def _print_result(res, out: Path) -> None:
    if res.click is not None:
        c = res.click
        raw = ", ".join(f"{v:g}" for v in c.raw)
        print(
            f"click: ({c.x:.1f}, {c.y:.1f}) px in the {res.image_size[0]}x{res.image_size[1]} image  [{c.convention}: {raw}]"
        )
        if c.warning:
            print(f"warning: {c.warning}")
    else:
        print(f"click: none ({res.click_error})")
    if res.base is not None:
        b = res.base
        base_txt = f"({b.click.x:.1f}, {b.click.y:.1f})" if b.click is not None else f"none ({b.click_error})"
        print(f"base model click: {base_txt}")
    print(f"answer: {res.response!r}")
    print(f"outputs: {out}/report.html  {out}/overlay.png  {out}/result.json  {out}/maps.npz")


def cmd_run(args: argparse.Namespace) -> int:
    from . import load
    from .inputs import DEFAULT_MAX_PIXELS, load_image

    max_pixels = args.max_pixels or DEFAULT_MAX_PIXELS
    image = load_image(args.image, max_pixels=max_pixels)  # before loading a model: fail fast
    if not args.instruction.strip():
        raise LavError("the instruction is empty; say what to click, e.g. 'Click the Save button'")
    t0 = time.perf_counter()
    _say(f"loading {args.model}" + (f" with adapter {args.adapter}" if args.adapter else ""))
    viz = load(
        args.model,
        adapter=args.adapter,
        device=args.device,
        dtype=args.dtype,
        attn_implementation=args.attn_implementation,
        max_image_pixels=max_pixels,
    )
    _say(f"loaded {viz.parts.family} on {viz.device} in {time.perf_counter() - t0:.1f}s")
    _say("running the forced response" if args.response else "generating")
    res = viz.analyze(
        image,
        args.instruction,
        response=args.response,
        edge_layers=_layers(args.edge_layers, (-2, -1)),
        focus_layers=_layers(args.focus_layers, -1),
        compare_base=args.compare_base,
        max_new_tokens=args.max_new_tokens,
        system=args.system,
        template=args.template,
        coords=args.coords,
    )
    _say(f"writing {args.out}")
    out = res.save(args.out)
    _print_result(res, out)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.cli import run

    return run(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve.command import run

    return run(args)


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval.cli import run_eval

    return run_eval(args)


def cmd_demo_data(args: argparse.Namespace) -> int:
    from .eval.cli import run_demo_data

    return run_demo_data(args)


COMMANDS = {
    "run": cmd_run,
    "demo": cmd_demo,
    "serve": cmd_serve,
    "eval": cmd_eval,
    "demo-data": cmd_demo_data,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # stderr carries lav's own progress lines; transformers' per-file bars would bury them.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        return COMMANDS[args.command](args)
    except LavError as exc:
        print(f"lav: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        print(
            "lav: error: out of memory; try a smaller image (--max-pixels) or a machine with more memory",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("lav: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
