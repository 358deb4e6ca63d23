"""`lav eval`: a thin shell over `lav.eval` (load the dataset, `lav.load`, `evaluate`, and under
torchrun `merge` on rank 0)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import layers, say

NAME = "eval"
DEFAULT_OUT = "lav-eval"


def add_parser(subparsers) -> None:
    """Register ``eval`` on the ``lav`` command's sub-parsers, with the model options of ``lav run``
    (device, dtype, backend, max pixels)."""
    from .. import argtypes
    from ..eval.datasets import FORMATS
    from ..eval.entries import BBOX_CONVENTIONS
    from ..eval.stats import REFUSAL_CONVENTIONS
    from ..faithful.options import add_check_args
    from .options import ADAPTER_HELP, MODEL_HELP, add_dataset_args, add_model_args

    p = subparsers.add_parser(
        NAME,
        help="run a GUI-grounding benchmark: accuracy, groups, base vs adapter, where the model looks",
        description=(
            "Runs every sample of a benchmark, writes samples.jsonl (one line per sample as it completes; "
            "run the same command again to resume), summary.json and report.html. Under torchrun each "
            "rank runs one shard on its own device and rank 0 merges."
        ),
    )
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--adapter", help=ADAPTER_HELP)
    p.add_argument("--data", required=True, help="annotation file or benchmark folder")
    p.add_argument("--images", help="images folder (default: found beside the annotations)")
    p.add_argument("--format", choices=FORMATS, help="dataset format (default: detected)")
    p.add_argument(
        "--bbox",
        choices=BBOX_CONVENTIONS,
        help="how the data's four box numbers are written, where the data cannot tell: xywh "
        "([x, y, width, height]) or xyxy ([x1, y1, x2, y2]); asked for when needed",
    )
    p.add_argument(
        "--refusals",
        choices=REFUSAL_CONVENTIONS,
        default="official",
        help="refusal samples (OSWorld-G): scored as the official script does (official, default) or "
        "left out as ClawGUI does (excluded); summary.json gives both",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="run even when some images are missing: they are scored wrong and counted as errors",
    )
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument(
        "--compare-base", action="store_true", help="also run every sample with the adapter disabled"
    )
    p.add_argument(
        "--edge-layers", nargs="+", metavar="I", help="vision blocks for the edge map (default: -2 -1; 'all')"
    )
    add_dataset_args(p)
    p.add_argument(
        "--save-maps", action="store_true", help="keep every sample's result folder under samples/"
    )
    p.add_argument(
        "--maps",
        metavar="NAME,...",
        help="more map methods to score beside edge and focus (focus_sink_masked, focus_relative, focus_grad, ...)",
    )
    p.add_argument(
        "--responses",
        metavar="FILE",
        help="answers generated elsewhere, matched to the samples by id (jsonl id/response, lav eval's "
        "samples.jsonl, ScreenSpot-Pro's results JSON, ClawGUI predictions, lmms-eval samples): no "
        "generation, one forward per batch, and where transformers' greedy choice differs",
    )
    p.add_argument(
        "--engine",
        metavar="NAME",
        help="who generated the --responses answers (e.g. vllm), for the summary (default: the file's format)",
    )
    p.add_argument(
        "--shard",
        type=argtypes.shard,
        metavar="I/N",
        help="run part I of N (0-based); the last part to finish merges",
    )
    add_model_args(p)
    add_check_args(p)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..eval import distributed
    from ..eval.datasets import FORMATS, check_images, load_dataset
    from ..eval.engine import claim_shard, evaluate, merge, parse_shard
    from ..options import AnalysisOptions
    from .options import map_names

    # Checked here, once, before the data and the model load (an unknown map name too); evaluate
    # takes it as it is.
    options = AnalysisOptions(
        maps=map_names(args.maps),
        edge_layers=layers(args.edge_layers, (-2, -1)),
        focus_layers=layers(args.focus_layers, "all"),
        compare_base=args.compare_base,
        max_new_tokens=args.max_new_tokens,
        system=args.system,
        template=args.template,
        coords=args.coords,
    )
    shard = parse_shard(args.shard)
    from ..faithful.options import check_options

    checks = check_options(args)
    from ..checks import check_out

    check_out(args.out)  # too long, a file, unwritable, files lav did not write, in use: before any work
    launch = distributed.launch_env()
    if launch is not None and shard is not None:
        raise InputError("--shard and torchrun (or accelerate launch) both split the run; use one of them")
    if launch is not None and args.device_map is not None:
        # Every rank would spread its copy over all the GPUs it sees, on top of the others.
        raise InputError(
            "--device-map under torchrun: run one model per rank without it, or split with --shard I/N "
            "jobs, each seeing its own GPUs (CUDA_VISIBLE_DEVICES) with --device-map auto"
        )
    # A --device that is not the rank's is refused, not replaced.
    device = args.device if launch is None else distributed.device_for(launch, args.device)
    dataset = load_dataset(
        args.data, images=args.images, format=args.format, limit=args.limit, bbox=args.bbox
    )
    dataset = check_images(dataset, args.images, allow_missing=args.allow_missing)
    if not dataset.samples:
        raise InputError(f"{args.data} holds no samples; supported formats: {', '.join(FORMATS)}")
    for note in dataset.notes:
        say(f"data: {note}")
    responses = _responses(args, dataset, quiet=launch is not None and launch.rank != 0)

    from transformers.utils import logging as hf_logging

    from ..loading import load
    from .options import load_options

    hf_logging.disable_progress_bar()
    if launch is not None:
        claim_shard(args.out, launch.rank)
        distributed.barrier()  # every rank is up and has listed its part before hours of work
        distributed.check_shared(args.out, launch)  # ... in the one --out all of them see
        shard = (launch.rank, launch.world)
    say(f"{dataset.name}: {len(dataset.samples)} samples ({dataset.format}); loading {args.model}")
    viz = load(args.model, adapter=args.adapter, **{**load_options(args), "device": device})
    out = Path(args.out)
    ev = evaluate(
        viz,
        dataset,
        out if shard is None else claim_shard(out, shard[0]),
        batch_size=args.batch_size,
        options=options,
        save_maps=args.save_maps,
        shard=shard,
        refusals=args.refusals,
        responses=responses,
        checks=checks,
    )
    if launch is not None:
        distributed.barrier()
        if launch.rank == 0:
            distributed.wait_for_parts(out, launch.world)
        merged = merge(out, dataset, launch.world, refusals=args.refusals) if launch.rank == 0 else None
        distributed.finish()
        if merged is None:
            return 0
        ev = merged
    elif shard is not None:
        merged = merge(out, dataset, shard[1], require_all=False, refusals=args.refusals)
        if merged is None:
            say(f"part {shard[0]}/{shard[1]} done in {ev.out}; the last part to finish merges into {out}")
            _print(ev.summary, ev.out, ev.resumed)
            return 0
        ev = merged
    _print(ev.summary, out, ev.resumed)
    return _all_failed(ev.summary, out)


def _responses(args: argparse.Namespace, dataset, quiet: bool):
    """The ``--responses`` file read and matched to the dataset before the model loads (None without
    it); one line on what does not match, and a refusal when nothing does."""
    from ..errors import InputError

    if args.responses is None:
        if args.engine is not None:
            raise InputError("--engine names who wrote the --responses answers; pass --responses FILE too")
        return None
    from ..eval.engine import COMPARE_BASE_REPLAY
    from ..eval.responses import read_responses

    if args.compare_base:
        raise InputError(COMPARE_BASE_REPLAY)
    responses = read_responses(args.responses, engine=args.engine)
    matched = responses.match(dataset.samples)
    if not matched.answers and responses.answers:
        what = "document" if responses.keyed_by == "position" else "id"
        raise InputError(
            f"none of the {len(responses.answers)} answers in {args.responses} ({responses.format}) matches a "
            f"sample of {args.data} (first answer {what} {responses.answers[0].key!r}, first sample id "
            f"{dataset.samples[0].id!r}); pass the answers of this benchmark"
        )
    if not quiet:
        say(
            f"responses: {len(matched.answers)} of {len(dataset.samples)} samples answered in "
            f"{args.responses} ({responses.format}, engine {responses.engine}); the others are errors"
            if matched.missing
            else f"responses: every sample answered in {args.responses} ({responses.format}, engine {responses.engine})"
        )
        if matched.unmatched:
            say(
                f"responses: {len(matched.unmatched)} answers match no sample (first {matched.unmatched[0]!r}); "
                "they are not scored"
            )
    return responses


def _all_failed(summary, out) -> int:
    """Exit 2 with one line when every sample failed: a setting wrong for all, not bad samples."""
    errors = summary["errors"]
    if errors and len(errors) == summary["n_samples"]:
        from ..errors import LavError

        raise LavError(
            f"all {len(errors)} samples failed, the first with: {errors[0]['reason']}; fix that and "
            f"rerun with a new --out (the records are in {out}/samples.jsonl)"
        )
    return 0


def _print(summary, out, resumed: int = 0) -> None:
    def line(name, s) -> str:
        if s["accuracy"] is None:
            return f"{name}: no scored samples"
        lo, hi = s["ci95"]
        return (
            f"{name}: {s['correct']}/{s['n']} = {s['accuracy']:.1%} (95% CI {lo:.1%}-{hi:.1%}), "
            f"wrong format {s['wrong_format']}"
        )

    if resumed:
        print(f"resumed: {resumed} of {summary['n_samples']} samples were already done in {out}")
    print(line("adapter" if summary.get("adapter") else "model", summary))
    if summary.get("base"):
        print(line("base", summary["base"]))
        f = summary["flips"]
        print(f"flips: fixed {f['fixed']}, broken {f['broken']}; McNemar p = {summary['mcnemar_p']:.3g}")
    note = (summary.get("conventions") or {}).get("note")
    if note:
        say(
            f"warning: {note} (lav conventions --model ... --data ... reads a few samples in every convention "
            "and image size the family allows)"
        )
    official = summary.get("official") or {}
    macro = official.get("macro")
    if macro and macro.get("accuracy") is not None:
        print(
            f"{official['benchmark']} {macro['name']}: {macro['accuracy']:.1%} (mean of {macro['cells']} {macro['over']} cells)"
        )
    conventions = summary.get("refusal_conventions")
    if conventions:
        print(
            f"refusal samples scored: {conventions['official']['accuracy']:.1%}; "
            f"left out: {conventions['excluded']['accuracy'] or 0:.1%} (--refusals {conventions['used']})"
        )
    agreement = summary.get("agreement")
    if agreement and agreement["n"]:
        coords = agreement["coords"]
        print(
            f"agreement with {summary['responses']['engine']}: greedy writes every coordinate token of "
            f"{'–' if coords is None else f'{coords:.1%}'} of answers, every token of {agreement['answer']:.1%}; "
            f"mean log p(answer) {agreement['mean_logprob']:.3f}"
        )
    if summary["errors"]:
        print(
            f"errors: {len(summary['errors'])} samples could not run: scored wrong, inside n (listed in "
            "summary.json)"
        )
    from ..faithful.summary import summary_lines

    for text in summary_lines(summary):
        print(text)
    print(f"outputs: {out}/report.html  {out}/summary.json  {out}/samples.jsonl")
