"""`lav demo-data`: a small synthetic benchmark from the demo screens."""

from __future__ import annotations

import argparse

NAME = "demo-data"


def add_parser(subparsers) -> None:
    """Register ``demo-data`` on the ``lav`` command's sub-parsers."""
    from .. import argtypes

    d = subparsers.add_parser(
        NAME,
        help="write a small synthetic benchmark (ScreenSpot-Pro layout) from the demo screens",
        description=(
            "Writes a small synthetic benchmark in ScreenSpot-Pro's layout (annotations/*.json + images/) "
            "from held-out demo screens, half per demo task (shapes-base, shapes-adapter). About one "
            "sample in ten is a negative sample (gt_type: negative) without a box: its instruction names a "
            "shape that is not on the screen, so the right answer is to say so and not click."
        ),
    )
    d.add_argument("--out", default="lav-eval-demo/data", help="output folder (default: lav-eval-demo/data)")
    d.add_argument("-n", type=argtypes.demo_samples, default=40, help="number of samples (default 40)")
    d.add_argument("--seed", type=argtypes.seed, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from ..checks import check_out
    from ..eval.datasets import write_demo_benchmark

    check_out(args.out)
    path = write_demo_benchmark(args.out, n=args.n, seed=args.seed)
    print(f"demo benchmark: {path}")
    return 0
