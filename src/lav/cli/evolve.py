"""`lav evolve`: a thin shell over `lav.integrations.evolve.evolve`."""

from __future__ import annotations

import argparse

from .options import say

NAME = "evolve"
DEFAULT_OUT = "lav-evolve"


def add_parser(subparsers) -> None:
    """Register ``evolve`` on the ``lav`` command's sub-parsers (with the model options of ``lav run``)."""
    from .options import add_dataset_args, add_model_args

    p = subparsers.add_parser(
        "evolve",
        help="the probe-set metrics and maps of every saved checkpoint of a LoRA run",
        description=(
            "Runs the probe set with the base model and with each checkpoint's adapter (sorted by step), "
            "each into a lav eval folder of its own, then writes evolution.json, evolution.csv and "
            "report.html (curves per layer, a filmstrip per sample). Rerun the same command to resume."
        ),
    )
    p.add_argument(
        "--model",
        required=True,
        help="the base model: Hugging Face id or local folder ('demo': the shipped one)",
    )
    p.add_argument(
        "--adapters",
        "--checkpoints",
        dest="adapters",
        nargs="+",
        required=True,
        metavar="DIR",
        help="adapter folders (e.g. out/checkpoint-*), or a run folder holding checkpoint-* folders",
    )
    p.add_argument(
        "--data", "--probe", dest="data", required=True, help="probe set: any format lav eval reads"
    )
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument(
        "--no-compare-base", action="store_true", help="skip the base model's run (the reference line)"
    )
    add_dataset_args(p)
    add_model_args(p)


def run(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from ..checks import check_out
    from ..integrations.evolve import EVOLUTION_FILE, TABLE_FILE, evolve, find_checkpoints
    from ..options import AnalysisOptions
    from .options import placement_options

    # Checked here, once, before the model loads; every run of the evolution takes it as it is.
    options = AnalysisOptions(
        focus_layers="all" if args.focus_layers is None else " ".join(args.focus_layers),
        max_new_tokens=args.max_new_tokens,
        coords=args.coords,
        system=args.system,
        template=args.template,
    )
    check_out(args.out)  # the --out rules of every command, before the model loads
    find_checkpoints(args.adapters)  # a wrong folder is named before the model loads
    hf_logging.disable_progress_bar()
    evolution = evolve(
        args.model,
        args.adapters,
        args.data,
        args.out,
        compare_base=not args.no_compare_base,
        batch_size=args.batch_size,
        options=options,
        device=args.device,
        dtype=args.dtype,
        attn_implementation=args.attn_implementation,
        max_image_pixels=args.max_pixels,
        placement=placement_options(args),
        limit=args.limit,
        progress=None,
        say=say,
    )
    rows = ([evolution["base"]] if evolution["base"] else []) + evolution["checkpoints"]
    for r in rows:
        acc = "–" if r["accuracy"] is None else f"{r['accuracy']:.1%}"
        step = "" if r["step"] is None else f" (step {r['step']})"
        print(f"{r['checkpoint']}{step}: {r['correct']}/{r['n']} = {acc}")
    out = args.out
    print(f"outputs: {out}/report.html  {out}/{EVOLUTION_FILE}  {out}/{TABLE_FILE}")
    return 0
