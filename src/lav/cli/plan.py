"""`lav plan`: memory per device for a device map and screenshot size, before loading (`lav.plan`)."""

from __future__ import annotations

import argparse

from .. import argtypes
from ..files import check_model_source
from .options import ADAPTER_HELP, DTYPES, MODEL_HELP

NAME = "plan"


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="memory per device for a device map and screenshot size, before loading")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--adapter", help=ADAPTER_HELP + " (its size is added)")
    p.add_argument("--image-size", nargs=2, type=argtypes.image_side, required=True, metavar=("W", "H"))
    p.add_argument("--device", default="auto", help="decides the auto dtype: auto, cpu, cuda")
    p.add_argument("--dtype", default="auto", choices=DTYPES)
    p.add_argument("--device-map", default="auto", metavar="MAP", help="as for lav run (default: auto)")
    p.add_argument("--max-memory", metavar="DEV=SIZE,...", help="cap per device, e.g. 0=20GiB,cpu=64GiB")
    bits = p.add_mutually_exclusive_group()
    bits.add_argument("--load-in-4bit", action="store_true")
    bits.add_argument("--load-in-8bit", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..plan import plan

    check_model_source(args.model)
    found = plan(
        args.model,
        tuple(args.image_size),
        device_map=args.device_map,
        max_memory=args.max_memory,
        device=args.device,
        dtype=args.dtype,
        load_in_4bit=args.load_in_4bit,
        load_in_8bit=args.load_in_8bit,
        adapter=args.adapter,
    )
    print("\n".join(found.lines()))
    return 0
