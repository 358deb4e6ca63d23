"""`lav run`: one screenshot and instruction, analysed and saved (`lav.load`, `Visualizer.analyze`,
`Result.save`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..checks import check_item, check_out
from ..faithful.options import add_check_args, check_options
from ..faithful.summary import check_lines
from ..files import check_adapter_folder, check_model_source
from .options import (
    ADAPTER_HELP,
    MAPS_HELP,
    MODEL_HELP,
    add_analysis_args,
    add_model_args,
    layers,
    load_options,
    map_names,
    say,
)

NAME = "run"


def add_parser(sub) -> None:
    run = sub.add_parser("run", help="analyse one screenshot and instruction")
    run.add_argument("--model", required=True, help=MODEL_HELP)
    run.add_argument("--adapter", help=ADAPTER_HELP)
    run.add_argument("--image", required=True, help="screenshot file")
    run.add_argument("--instruction", required=True, help='e.g. "Click the Save button"')
    run.add_argument("--out", default="lav-out", help="output folder (default: lav-out)")
    run.add_argument(
        "--compare-base",
        action="store_true",
        help="also run with the adapter disabled and show the difference",
    )
    run.add_argument(
        "--maps",
        metavar="NAME,...",
        help=MAPS_HELP,
    )
    run.add_argument(
        "--focus-heads",
        metavar="SPEC",
        help="decoder heads for the focus_selected map: layer:head pairs ('-1:3,-2:0') or top-K (with --head-ranking)",
    )
    run.add_argument(
        "--head-ranking", metavar="FILE", help="lav eval's summary.json: its ranking of heads, for top-K"
    )
    add_model_args(run)
    add_analysis_args(run)
    add_check_args(run)


def _print_result(res, out: Path) -> None:
    if res.click is not None:
        c = res.click
        raw = ", ".join(f"{v:g}" for v in c.raw)
        print(
            f"click: ({c.x:.1f}, {c.y:.1f}) px in the {res.image_size[0]}x{res.image_size[1]} image  [{c.convention}: {raw}]"
        )
        if c.warning:
            print(f"warning: {c.warning}")
    elif res.refused:
        print(f"click: none, the model refused ({res.click_error})")
    else:
        print(f"click: none ({res.click_error})")
    if res.base is not None:
        b = res.base
        base_txt = f"({b.click.x:.1f}, {b.click.y:.1f})" if b.click is not None else f"none ({b.click_error})"
        print(f"base model click: {base_txt}")
    print(f"answer: {res.response!r}")
    for line in check_lines(res):
        print(line)
    print(f"outputs: {out}/report.html  {out}/overlay.png  {out}/result.json  {out}/maps.npz")


def run(args: argparse.Namespace) -> int:
    # Everything that needs no model is checked before the model loads (seconds to minutes).
    check_item(args.instruction, args.response)
    checks = check_options(args)
    maps = map_names(args.maps)
    focus_heads = None
    if args.focus_heads is not None:
        from ..methods.heads import parse_heads

        focus_heads = parse_heads(args.focus_heads, args.head_ranking)
    from ..options import AnalysisOptions

    # Checked here, once, and handed to the analysis as it is.
    options = AnalysisOptions(
        edge_layers=layers(args.edge_layers, (-2, -1)),
        focus_layers=layers(args.focus_layers, -1),
        maps=maps,
        focus_heads=focus_heads,
        compare_base=args.compare_base,
        max_new_tokens=args.max_new_tokens,
        system=args.system,
        template=args.template,
        coords=args.coords,
    )
    check_out(args.out)  # user files, a dangling link, an unwritable disk: before the model loads
    from ..inputs import DEFAULT_MAX_PIXELS, load_image

    max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels
    image = load_image(args.image, max_pixels=max_pixels)
    check_model_source(args.model)  # a damaged folder is named before torch even imports
    if args.adapter is not None:
        check_adapter_folder(args.adapter)
    from transformers.utils import logging as hf_logging

    from ..devices import resolve_device
    from ..loading import load

    # stderr carries lav's own progress lines; transformers' per-file bars would bury them.
    hf_logging.disable_progress_bar()
    resolve_device(args.device)
    t0 = time.perf_counter()
    say(f"loading {args.model}" + (f" with adapter {args.adapter}" if args.adapter else ""))
    viz = load(args.model, adapter=args.adapter, **load_options(args))
    say(f"loaded {viz.parts.family} on {viz.device} in {time.perf_counter() - t0:.1f}s")
    say("running the forced response" if args.response else "generating")
    res = viz.analyze(image, args.instruction, response=args.response, options=options)
    if checks is not None:
        from ..faithful.measure import attach

        say("checking the maps: " + ", ".join(c for c in ("faithfulness", "zoom") if getattr(checks, c)))
        attach(viz, res, checks, options)
    say(f"writing {args.out}")
    out = res.save(args.out)
    _print_result(res, out)
    return 0
