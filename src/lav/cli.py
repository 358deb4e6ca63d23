"""`lav` command line: a thin shell over the library (`lav.load`, `Visualizer.analyze`, `Result.save`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from . import argtypes
from .argtypes import positive_int  # noqa: F401  (kept for callers of lav.cli.positive_int)
from .checks import check_out, split_names, validate_request
from .coords import CONVENTIONS
from .errors import LavError, LavWarning
from .files import check_adapter_folder, check_model_source

EXIT_BAD_INPUT = 2
DTYPES = ("auto", "float32", "bfloat16", "float16")


def _say(msg: str) -> None:
    print(f"lav: {msg}", file=sys.stderr, flush=True)


def _layers(values: list[str] | None, default):
    """The layer selection as given: the default, ``"all"`` or the indices as one string."""
    if values is None:
        return default
    return " ".join(values)


def _add_model_args(p: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lav", description="Where a Qwen-VL model looks when it clicks, with and without its LoRA."
    )
    sub = parser.add_subparsers(dest="command", required=True)

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
    _add_model_args(run)
    _add_analysis_args(run)

    from .demo.cli import add_parser as add_demo_parser

    add_demo_parser(sub)
    _add_serve_parser(sub)
    from .eval.cli import add_parsers as add_eval_parsers

    add_eval_parsers(sub, _add_model_args)
    from .integrations.cli import add_parser as add_evolve_parser

    add_evolve_parser(sub, _add_model_args)
    _add_plan_parser(sub)
    from .presets.cli import add_parsers as add_preset_parsers

    add_preset_parsers(sub, _add_model_args)
    return parser


def _add_plan_parser(sub) -> None:
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


def cmd_plan(args: argparse.Namespace) -> int:
    from .plan import plan

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
    elif res.refused:
        print(f"click: none, the model refused ({res.click_error})")
    else:
        print(f"click: none ({res.click_error})")
    if res.base is not None:
        b = res.base
        base_txt = f"({b.click.x:.1f}, {b.click.y:.1f})" if b.click is not None else f"none ({b.click_error})"
        print(f"base model click: {base_txt}")
    print(f"answer: {res.response!r}")
    print(f"outputs: {out}/report.html  {out}/overlay.png  {out}/result.json  {out}/maps.npz")


def cmd_run(args: argparse.Namespace) -> int:
    # Everything that needs no model is checked before the model loads (seconds to minutes).
    edge_layers = _layers(args.edge_layers, (-2, -1))
    focus_layers = _layers(args.focus_layers, -1)
    validate_request(
        args.instruction,
        args.response,
        system=args.system,
        template=args.template,
        max_new_tokens=args.max_new_tokens,
        edge_layers=edge_layers,
        focus_layers=focus_layers,
        coords=args.coords,
    )
    check_out(args.out)  # user files, a dangling link, an unwritable disk: before the model loads
    maps = map_names(args.maps)
    focus_heads = None
    if args.focus_heads is not None:
        from .methods.heads import parse_heads

        focus_heads = parse_heads(args.focus_heads, args.head_ranking)
    from .inputs import DEFAULT_MAX_PIXELS, load_image

    max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels
    image = load_image(args.image, max_pixels=max_pixels)
    check_model_source(args.model)  # a damaged folder is named before torch even imports
    if args.adapter is not None:
        check_adapter_folder(args.adapter)
    from transformers.utils import logging as hf_logging

    from .loading import load, resolve_device

    # stderr carries lav's own progress lines; transformers' per-file bars would bury them.
    hf_logging.disable_progress_bar()
    resolve_device(args.device)
    t0 = time.perf_counter()
    _say(f"loading {args.model}" + (f" with adapter {args.adapter}" if args.adapter else ""))
    viz = load(
        args.model,
        adapter=args.adapter,
        device=args.device,
        dtype=args.dtype,
        attn_implementation=args.attn_implementation,
        max_image_pixels=max_pixels,
        **placement_options(args),
    )
    _say(f"loaded {viz.parts.family} on {viz.device} in {time.perf_counter() - t0:.1f}s")
    _say("running the forced response" if args.response else "generating")
    res = viz.analyze(
        image,
        args.instruction,
        response=args.response,
        edge_layers=edge_layers,
        focus_layers=focus_layers,
        compare_base=args.compare_base,
        max_new_tokens=args.max_new_tokens,
        system=args.system,
        template=args.template,
        coords=args.coords,
        maps=maps,
        focus_heads=focus_heads,
    )
    _say(f"writing {args.out}")
    out = res.save(args.out)
    _print_result(res, out)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.cli import run

    return run(args)


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval.cli import run_eval

    return run_eval(args)


def cmd_demo_data(args: argparse.Namespace) -> int:
    from .eval.cli import run_demo_data

    return run_demo_data(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve.command import run

    return run(args)


def cmd_evolve(args: argparse.Namespace) -> int:
    from .integrations.cli import run

    return run(args)


COMMANDS = {
    "run": cmd_run,
    "demo": cmd_demo,
    "serve": cmd_serve,
    "eval": cmd_eval,
    "demo-data": cmd_demo_data,
    "evolve": cmd_evolve,
    "plan": cmd_plan,
    "presets": lambda args: _presets_cli().run_presets(args),
    "conventions": lambda args: _presets_cli().run_conventions(args),
}


def _presets_cli():
    from .presets import cli

    return cli


MODEL_HELP = "Hugging Face model id or local checkpoint folder ('demo': the tiny model shipped with lav)"
ADAPTER_HELP = "PEFT LoRA adapter folder ('demo': the shipped demo adapter)"

MAPS_HELP = (
    "map methods to run (default: edge,focus); more: focus_sink_masked, focus_relative, "
    "focus_selected, focus_grad, edge_rollout"
)


def map_names(text: str | None) -> list[str] | None:
    """``--maps a,b``: the names, refused here (before any model loads) when one is unknown."""
    if text is None:
        return None
    names = split_names(text)
    from .methods import chosen  # imports torch: only when --maps is given

    chosen(names)  # unknown or empty: one line naming what is available
    return names


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that cleanup (``finally``, temporary folders) runs."""


class _Signals:
    """While `main` runs: SIGINT and SIGTERM raise once, and later ones are ignored until it returns."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.received is not None:
            return  # already stopping: a second Ctrl-C must not interrupt the cleanup
        self.received = signum
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line: lav's own as ``lav: warning: ...``, others with their category."""
    text = str(message).strip().splitlines()
    first = text[0] if text else ""
    kind = "" if issubclass(category, LavWarning) else f"{category.__name__}: "
    print(f"lav: warning: {kind}{first}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``lav ...``: the exit status. 0 done, 2 bad input (one line on stderr), 130 Ctrl-C, 143 SIGTERM.

    Only light modules are imported before this runs, so the signal handlers are in place before
    torch and transformers load: Ctrl-C at any moment ends with one line, never a traceback.
    """
    with _Signals() as signals:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                args = build_parser().parse_args(argv)
                _demo_names(args)
                return COMMANDS[args.command](args)
        except KeyboardInterrupt as exc:
            return _stopped(exc)
        except LavError as exc:
            print(f"lav: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except MemoryError:
            print(
                "lav: error: out of memory; try a smaller image (--max-pixels) or a machine with more memory",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
            return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
        except BaseException as exc:
            if signals.received is None:
                raise
            # An import or a library call that wrapped our KeyboardInterrupt in its own error.
            return _stopped(exc, signals.received)


def _demo_names(args: argparse.Namespace) -> None:
    """``--model demo`` / ``--adapter demo`` (``--adapters demo``) of every command -> the shipped folders."""
    from .demo import assets

    if getattr(args, "model", None) is not None:
        args.model = assets.model_path(args.model)
    if getattr(args, "adapter", None) is not None:
        args.adapter = assets.adapter_path(args.adapter)
    if isinstance(getattr(args, "adapters", None), list):
        args.adapters = [assets.adapter_path(a) for a in args.adapters]


def _stopped(exc: BaseException, signum: int | None = None) -> int:
    if isinstance(exc, Terminated) or signum == signal.SIGTERM:
        print("lav: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    print("lav: interrupted", file=sys.stderr)
    return 130


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split("\n")).strip()


def entry() -> None:
    """The ``lav`` program: `main`, then an exit that a late Ctrl-C or SIGTERM cannot turn into a traceback.

    A signal that lands after `main` returned (while the interpreter joins threads and runs its exit
    handlers) ends the process at once with the status `main` chose, or 128 + the signal when `main`
    itself finished normally.
    """
    code = main()

    def _exit_now(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code if code in (130, 128 + signal.SIGTERM) else 128 + signum)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _exit_now)
    sys.exit(code)


if __name__ == "__main__":
    entry()
