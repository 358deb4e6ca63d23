"""`lav conventions`: which coordinate convention (and resize setting) fits a model's answers."""

from __future__ import annotations

import argparse

from .options import say

NAME = "conventions"
#: Samples `lav conventions` scores unless told (a few are enough to tell 0-1000 from pixels).
DEFAULT_LIMIT = 20


def add_parser(subparsers) -> None:
    """Register ``conventions`` on the ``lav`` command's sub-parsers, with the model options of ``lav run``."""
    from ..argtypes import positive_int
    from .options import add_model_args

    c = subparsers.add_parser(
        NAME,
        help="which coordinate convention (and image size) fits a model's answers, on a few labelled samples",
        description=(
            "Runs a few samples of a benchmark once per resize setting the model's family allows (the "
            "processor's own and its presets'), reads every answer in every coordinate convention and "
            "prints the accuracy of each, and which fits."
        ),
    )
    c.add_argument("--model", required=True, help="Hugging Face model id or local checkpoint folder")
    c.add_argument("--adapter", help="PEFT LoRA adapter folder")
    c.add_argument("--data", required=True, help="annotation file or benchmark folder (as for lav eval)")
    c.add_argument("--images", help="images folder (default: found beside the annotations)")
    c.add_argument(
        "--limit", type=positive_int, default=DEFAULT_LIMIT, help=f"samples (default {DEFAULT_LIMIT})"
    )
    c.add_argument("--batch-size", type=positive_int, default=8, help="samples per generate call (default 8)")
    c.add_argument(
        "--max-new-tokens",
        type=positive_int,
        help="longest answer, in tokens (default: the preset's, else 64)",
    )
    c.add_argument("--system", help="system prompt (default: the preset's)")
    c.add_argument("--template", help="user text with {instruction} (default: the preset's)")
    add_model_args(c)


def run(args: argparse.Namespace) -> int:
    from ..checks import validate_request
    from ..eval.conventions import Setting, fit_conventions, table
    from ..eval.datasets import load_dataset
    from ..files import check_adapter_folder, check_model_source

    validate_request("x", system=args.system, template=args.template, max_new_tokens=args.max_new_tokens)
    dataset = load_dataset(args.data, images=args.images, limit=args.limit)
    for note in dataset.notes:
        say(f"data: {note}")
    check_model_source(args.model)
    if args.adapter is not None:
        check_adapter_folder(args.adapter)
    from transformers.utils import logging as hf_logging

    from ..loading import load
    from .options import load_options

    hf_logging.disable_progress_bar()
    say(f"{dataset.name}: {len(dataset.samples)} samples; loading {args.model}")
    viz = load(args.model, adapter=args.adapter, **load_options(args))
    settings = None if args.pixels is None else [Setting(args.pixels, "given")]
    fits = fit_conventions(
        viz,
        dataset,
        settings,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        system=args.system,
        template=args.template,
        say=say,
    )
    default = viz.preset.coords if viz.preset is not None else viz.parts.spec.coords
    print(
        f"{viz.model_name}" + (f" + {viz.adapter_name}" if viz.adapter_name else "") + f" on {dataset.name}:"
    )
    print("\n".join(table(fits, default)))
    return 0
