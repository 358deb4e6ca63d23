"""What several `lav` commands share: the model and placement options, the analysis options, the
``--maps`` names and help, and the parser every sub-command is built with.

Imports no command (each command module imports from here), and nothing heavy at import: the
``--maps`` help is written from the method registry (`lav.methods`, which imports torch) only when a
help text is shown.
"""

from __future__ import annotations

import argparse
import sys

from .. import argtypes
from ..argtypes import positive_int  # noqa: F401  (kept for callers of lav.cli.positive_int)
from ..checks import split_names
from ..coords import CONVENTIONS

DTYPES = ("auto", "float32", "bfloat16", "float16")

MODEL_HELP = "Hugging Face model id or local checkpoint folder ('demo': the tiny model shipped with lav)"
ADAPTER_HELP = "PEFT LoRA adapter folder ('demo': the shipped demo adapter)"

#: Stands in a help text for the registered map methods; `HelpFormatter` writes them in when shown.
METHODS_MARK = "<registered map methods>"
MAPS_HELP = f"map methods to run ({METHODS_MARK})"


def methods_text() -> str:
    """The registered map methods as a help text shows them: the default ones, then the others."""
    from ..methods import chosen, registered  # imports torch: only when a help text is printed

    defaults = [m.name for m in chosen(None)]
    more = [name for name in registered() if name not in defaults]
    return f"default: {','.join(defaults)}, each where it applies to the model; more: {', '.join(more)}"


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, with `METHODS_MARK` replaced by the method registry's names."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text and METHODS_MARK in text:
            return text.replace(METHODS_MARK, methods_text())
        return text


class Parser(argparse.ArgumentParser):
    """The `lav` parser; its sub-parsers are of this class too (argparse's ``parser_class``), so every
    sub-command's help goes through `HelpFormatter`."""

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs) -> None:
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def say(msg: str) -> None:
    print(f"lav: {msg}", file=sys.stderr, flush=True)


def layers(values: list[str] | None, default):
    """The layer selection as given: the default, ``"all"`` or the indices as one string."""
    if values is None:
        return default
    return " ".join(values)


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPES,
        help="auto (the device's usual), float32, bfloat16, float16",
    )
    p.add_argument(
        "--attn-implementation", default="sdpa", help="backend the model runs: sdpa, eager, flash_attention_2"
    )
    p.add_argument(
        "--max-pixels",
        type=argtypes.max_pixels,
        default=None,
        help="refuse images with more pixels than this (default 64M)",
    )
    p.add_argument(
        "--preset",
        metavar="NAME",
        help="run the model as its authors do: prompt, image size, convention, answer length (lav presets "
        "lists them; default: picked when the model id names a known model; 'none': no preset)",
    )
    p.add_argument(
        "--pixels",
        type=pixel_range,
        metavar="MIN:MAX",
        help="resize screenshots into MIN..MAX pixels as the processor does (default: the preset's, else "
        "the processor's own)",
    )
    big = p.add_argument_group("big and quantized models")
    big.add_argument(
        "--device-map",
        metavar="MAP",
        help="spread the model over devices: auto, balanced, balanced_low_0, sequential, or a JSON file "
        '{"module": "cpu" | "disk" | 0 | "cuda:1", ...}; the model stays where the map puts it',
    )
    big.add_argument("--offload-folder", metavar="DIR", help="where modules mapped to 'disk' are kept")
    big.add_argument(
        "--max-memory", metavar="DEV=SIZE,...", help="cap per device, e.g. 0=20GiB,1=20GiB,cpu=64GiB"
    )
    bits = big.add_mutually_exclusive_group()
    bits.add_argument(
        "--load-in-4bit", action="store_true", help="quantize the base to 4 bits (bitsandbytes NF4)"
    )
    bits.add_argument(
        "--load-in-8bit", action="store_true", help="quantize the base to 8 bits (bitsandbytes)"
    )


def pixel_range(text: str) -> tuple[int, int]:
    """argparse type of ``--pixels MIN:MAX``: two whole numbers, 0 < MIN <= MAX."""
    low, sep, high = text.partition(":")
    try:
        pixels = (int(low), int(high))
    except ValueError:
        pixels = None
    if not sep or pixels is None or not 0 < pixels[0] <= pixels[1]:
        raise argparse.ArgumentTypeError(
            f"expected MIN:MAX pixels with 0 < MIN <= MAX, e.g. 3136:12845056, got {text!r}"
        )
    return pixels


def placement_options(args: argparse.Namespace) -> dict:
    """`lav.load` keywords of `_add_model_args`' loading options (placement, quantization, preset,
    resize bounds), as given (checked by `lav.load`)."""
    return {
        "preset": args.preset,
        "image_pixels": args.pixels,
        "device_map": args.device_map,
        "offload_folder": args.offload_folder,
        "max_memory": args.max_memory,
        "load_in_4bit": args.load_in_4bit,
        "load_in_8bit": args.load_in_8bit,
    }


def load_options(args: argparse.Namespace) -> dict:
    """Every `lav.load` keyword of `add_model_args`' options: device, dtype, backend, the image
    limit (``--max-pixels``, default `lav.inputs.DEFAULT_MAX_PIXELS`) and `placement_options`."""
    from ..inputs import DEFAULT_MAX_PIXELS

    return {
        "device": args.device,
        "dtype": args.dtype,
        "attn_implementation": args.attn_implementation,
        "max_image_pixels": DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels,
        **placement_options(args),
    }


def add_analysis_args(p: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "--max-new-tokens",
        type=argtypes.max_new_tokens,
        help="longest answer to generate, in tokens (default: the preset's, else 64)",
    )
    p.add_argument("--system", help="system prompt")
    p.add_argument(
        "--template",
        help="user text with {instruction} where the instruction goes (for fine-tunes trained on another format)",
    )


def add_dataset_args(p: argparse.ArgumentParser) -> None:
    """The options of a run over a set of samples (`lav eval`, `lav evolve`): how many, in what
    batches, the focus layers and how the model is asked and answers."""
    p.add_argument("--limit", type=argtypes.positive_int, help="the first N samples only")
    p.add_argument(
        "--batch-size", type=argtypes.batch_size, default=8, help="samples per generate call (default 8)"
    )
    p.add_argument(
        "--focus-layers", nargs="+", metavar="I", help="decoder layers for the focus (default: all of them)"
    )
    p.add_argument(
        "--max-new-tokens",
        type=argtypes.max_new_tokens,
        help="longest answer, in tokens (default: the preset's, else 64)",
    )
    p.add_argument("--coords", help="coordinate convention of the answers (default: by model family)")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--template", help="user text with {instruction} where the instruction goes")


def map_names(text: str | None) -> list[str] | None:
    """``--maps a,b``: the names, refused here (before any model loads) when one is unknown."""
    if text is None:
        return None
    names = split_names(text)
    from ..methods import chosen  # imports torch: only when --maps is given

    chosen(names)  # unknown or empty: one line naming what is available
    return names
