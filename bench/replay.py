"""`lav eval --responses` (answers replayed in one forced forward) against its floor and against
`lav eval` generating the same answers.

For each batch size and answer length (``--new-tokens``, default 8 and 512: reasoning models write
hundreds), on the same samples, model, backend and batches:

- **floor**: one plain teacher-forced forward of each batch, as a script would run it: open the
  images, chat template + the answer, the processor over the batch (left padding), ``model(**inputs)``;
- **replay**: ``lav.evaluate(..., responses=...)``: the same forward with capture on, both maps for
  every decoder layer, the click, the score, transformers' agreement with the answer and a durable
  line per sample (target: <= 1.10x the floor);
- **generate**: ``lav.evaluate(..., max_new_tokens=N)`` writing those answers (the saving grows with
  the answer's length).

The answers are the ones `lav eval` generated (every side forced to write exactly N tokens:
``min_new_tokens``, so an early end of turn does not shorten one side), read back from its
``samples.jsonl`` as a user's ``--responses`` file is. The three sides run in a rotating order per
repetition; each repetition gives the ratios replay / floor and replay / generate; we print min /
median / max per batch size and length. Under them, what the maps' own forward costs: the replay's
forwards (each `lav.stages.run`: capture on, the answer's log-probabilities scored), timed from the
outside, against the floor's forwards alone, and the ratio replay / floor would have if everything
else in it cost what the floor's processor call does (a lower bound for the target: where it is
above 1.10x, no saving outside the forward meets the target).

Models: the shipped demo model with its adapter (default), a checkpoint (``--model``), or
``--random qwen3-vl-2b`` (the random Qwen3-VL-2B-width model of ``bench/eval_throughput.py``, with
``--depth`` decoder layers and ``--vision-depth`` vision blocks; see that script for what it leaves
out). Figures are only meaningful on a quiet machine.

``--memory N`` runs the memory check instead of the timing: one ``lav.evaluate(..., responses=...)``
(what ``lav eval --responses FILE`` runs) over N samples (the demo benchmark repeated), the answers a
jsonl of ``id`` / ``response`` made from lav eval's own answers for the distinct screens (the
shortest ``--new-tokens``; at 8 the demo's answers are cut, so every sample is scored wrong and also
writes its gallery thumbnail: the most a sample writes), batch the first ``--batch-sizes``. A thread
reads the resident memory (``/proc/self/status``; on CUDA also ``torch.cuda.max_memory_allocated``)
each time a batch's records reach ``samples.jsonl``; we print it at 10%, 50% and 100% of the
samples, the growth and least-squares slope over the second half (MiB per 100 samples) and a
verdict: flat when the second half grows by at most `MEMORY_TOLERANCE_MIB_PER_100`.

    python bench/replay.py                                   # demo model, 16 samples, 3 repetitions
    python bench/replay.py --random qwen3-vl-2b --samples 8 --batch-sizes 1 8
    python bench/replay.py --samples 2 --new-tokens 8 16 --reps 1 --batch-sizes 2   # a quick check
    python bench/replay.py --memory 1000 --batch-sizes 8 --new-tokens 8      # memory over 1,000 samples
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_throughput import REAL, demo_dataset, load_viz, random_checkpoint, rss_mb, timed_evaluate  # noqa: E402


def _floor(viz, samples, answers: dict[str, str], batch_size: int) -> tuple[float, float]:
    """One plain teacher-forced forward per batch (no capture, no maps), as a script would write it:
    its seconds, and those of its forwards alone."""
    import torch
    from PIL import Image

    proc = viz.processor
    proc.tokenizer.padding_side = "left"
    t0, forward = time.perf_counter(), 0.0
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        images = [Image.open(s.image).convert("RGB") for s in batch]
        texts = [
            proc.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": s.instruction}]}],
                add_generation_prompt=True,
                tokenize=False,
            )
            + answers[s.id]
            for s in batch
        ]
        inputs = proc(text=texts, images=images, padding=True, return_tensors="pt").to(viz.device)
        t1 = time.perf_counter()
        with torch.inference_mode():
            viz.model(**inputs, use_cache=False)
        forward += time.perf_counter() - t1
    return time.perf_counter() - t0, forward


class _Forwards:
    """The seconds of the replay's own forwards (capture on): each `lav.stages.run` of the replay,
    as `lav.analysis` calls it, timed from the outside."""

    def __init__(self) -> None:
        import lav.analysis

        self.module, self.seconds = lav.analysis, 0.0

    def __enter__(self) -> _Forwards:
        run = self.original = self.module.run

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return run(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        self.module.run = timed
        return self

    def __exit__(self, *exc) -> None:
        self.module.run = self.original


def _spread(values: list[float]) -> str:
    return f"min {min(values):.3f} median {statistics.median(values):.3f} max {max(values):.3f}"


def run(args) -> None:
    from lav.eval.responses import read_responses
    from lav.models import unwrap

    viz = load_viz(args)
    dataset = demo_dataset(args.samples)
    samples = list(dataset.samples)
    print(f"{len(samples)} samples, {viz!r} on {viz.device}, {args.reps} repetitions")
    if args.describe:
        print(args.describe)
    config = unwrap(viz.model).generation_config
    with tempfile.TemporaryDirectory(prefix="lav-bench-replay-") as tmp:
        root = Path(tmp)
        for new_tokens in args.new_tokens:
            # Every answer exactly new_tokens long on the generating side.
            config.min_new_tokens = new_tokens
            source = root / f"answers-{new_tokens}"
            # The answers, and a warm-up.
            timed_evaluate(viz, dataset, source, batch_size=args.batch_sizes[0], max_new_tokens=new_tokens)
            responses = read_responses(source / "samples.jsonl", engine="lav")
            answers = responses.match(samples).answers
            lengths = [len(viz.processor.tokenizer(a)["input_ids"]) for a in answers.values()]
            print(
                f"answers of {new_tokens} new tokens: {min(lengths)}-{max(lengths)} tokens once re-tokenised"
            )
            for bs in args.batch_sizes:
                times: dict[str, list[float]] = {"floor": [], "replay": [], "generate": []}
                forwards: dict[str, list[float]] = {"floor": [], "replay": []}
                for rep in range(args.reps):
                    sides = ["floor", "replay", "generate"]
                    for side in sides[rep % 3 :] + sides[: rep % 3]:
                        out = root / f"{side}-{new_tokens}-{bs}-{rep}"
                        if side == "floor":
                            t, forward = _floor(viz, samples, answers, bs)
                            forwards["floor"].append(forward)
                        elif side == "replay":
                            with _Forwards() as timer:
                                t = timed_evaluate(
                                    viz,
                                    dataset,
                                    out,
                                    batch_size=bs,
                                    max_new_tokens=new_tokens,
                                    responses=responses,
                                )
                            forwards["replay"].append(timer.seconds)
                        else:
                            t = timed_evaluate(viz, dataset, out, batch_size=bs, max_new_tokens=new_tokens)
                        times[side].append(t)
                floor_r = [r / f for r, f in zip(times["replay"], times["floor"], strict=True)]
                gen_r = [r / g for r, g in zip(times["replay"], times["generate"], strict=True)]
                # The replay's forward with capture on against the floor's plain one, and the ratio
                # replay / floor would have if all its other work cost what the floor's does.
                capture_r = [r / f for r, f in zip(forwards["replay"], forwards["floor"], strict=True)]
                bound_r = [
                    (f - ff + rf) / f
                    for f, ff, rf in zip(times["floor"], forwards["floor"], forwards["replay"], strict=True)
                ]
                rate = {k: len(samples) / statistics.median(v) for k, v in times.items()}
                print(
                    f"{new_tokens} tokens, batch {bs}: floor {rate['floor']:.2f}, replay {rate['replay']:.2f}, "
                    f"generate {rate['generate']:.2f} samples/s; replay/floor {_spread(floor_r)}; "
                    f"replay/generate {_spread(gen_r)}"
                )
                print(
                    f"  forwards: lav's (capture on, answer scored) / plain {_spread(capture_r)}; replay / floor if the rest cost "
                    f"the floor's: {_spread(bound_r)}"
                )
        config.min_new_tokens = None


#: The memory verdict: resident memory may grow at most this much per 100 samples over the second
#: half of ``--memory``. lav keeps each sample's record for the summary and lists each thumbnail in
#: the folder's manifest: ~5 KiB of Python objects a sample on the demo (tracemalloc, 1,000 samples:
#: +0.5 MiB per 100), and the allocator adds about as much again; one retained `Result`, screenshot
#: or set of maps per sample (150 KiB and more on the demo's 256x192 screens) exceeds it many times.
MEMORY_TOLERANCE_MIB_PER_100 = 2.0


def _responses_file(viz, dataset, folder: Path, batch_size: int, new_tokens: int) -> Path:
    """A jsonl of ``id`` / ``response`` for every sample of ``dataset`` (`demo_dataset`'s repeats of
    its distinct screens): lav eval's own answers for the distinct screens, each given to every
    repeat of its screen."""
    import json
    from dataclasses import replace

    distinct = {s.id.split(":", 1)[1]: s for s in dataset.samples}
    first = replace(dataset, samples=tuple(list(distinct.values())))
    timed_evaluate(viz, first, folder / "answers", batch_size=batch_size, max_new_tokens=new_tokens)
    lines = (folder / "answers" / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    answer = {rec["id"].split(":", 1)[1]: rec["response"] for rec in map(json.loads, lines)}
    path = folder / "responses.jsonl"
    rows = [{"id": s.id, "response": answer[s.id.split(":", 1)[1]]} for s in dataset.samples]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of ``(samples done, MiB)``, in MiB per 100 samples."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 100 * sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def memory(args) -> None:
    """``--memory N``: one ``lav eval --responses`` of N samples, its resident memory (and the CUDA
    peak) read by a thread each time a batch's records reach ``samples.jsonl``."""
    import threading

    import torch

    from lav.eval.responses import read_responses
    from lav.models import unwrap

    n, bs, new_tokens = args.memory, args.batch_sizes[0], min(args.new_tokens)
    viz = load_viz(args)
    dataset = demo_dataset(n)
    cuda = viz.device.type == "cuda"
    print(
        f"memory: {n} samples replayed, batch {bs}, answers of {new_tokens} new tokens, {viz!r} on {viz.device}"
    )
    if args.describe:
        print(args.describe)
    config = unwrap(viz.model).generation_config
    with tempfile.TemporaryDirectory(prefix="lav-bench-replay-memory-") as tmp:
        root = Path(tmp)
        config.min_new_tokens = new_tokens
        path = _responses_file(viz, dataset, root, bs, new_tokens)
        config.min_new_tokens = None
        responses = read_responses(path)  # as `lav eval --responses FILE` reads it
        log = root / "replay" / "samples.jsonl"
        curve: list[tuple[int, float, float | None]] = []  # (samples done, RSS MiB, CUDA peak MiB)
        stop = threading.Event()

        def watch() -> None:
            size = -1
            while not stop.wait(0.02):
                try:
                    now = log.stat().st_size
                except FileNotFoundError:
                    continue
                if now != size:
                    size = now
                    done = log.read_bytes().count(b"\n")
                    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
                    curve.append((done, rss_mb(os.getpid()), peak))

        if cuda:
            torch.cuda.reset_peak_memory_stats()
        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            seconds = timed_evaluate(
                viz, dataset, root / "replay", batch_size=bs, max_new_tokens=new_tokens, responses=responses
            )
        finally:
            stop.set()
            thread.join()
        after = rss_mb(os.getpid())
    print(f"{n} samples in {seconds:.1f} s; resident memory after the summary and report: {after:.1f} MiB")
    for share in (0.1, 0.5, 1.0):
        done, rss, peak = next(c for c in curve if c[0] >= share * n)
        cuda_text = f", CUDA peak {peak:.1f} MiB" if peak is not None else ""
        print(f"  {share:4.0%} ({done} samples done): RSS {rss:.1f} MiB{cuda_text}")
    half = [(d, r) for d, r, _ in curve if d >= n / 2]
    growth = half[-1][1] - half[0][1]
    slope = _slope(half)
    per_100 = 100 * growth / max(1, half[-1][0] - half[0][0])
    flat = per_100 <= MEMORY_TOLERANCE_MIB_PER_100
    print(
        f"second half ({half[0][0]} -> {half[-1][0]} samples): RSS {growth:+.1f} MiB ({per_100:+.2f} MiB "
        f"per 100 samples), least-squares slope {slope:+.2f} MiB per 100 samples"
    )
    print(
        f"verdict: {'flat' if flat else 'GROWS'} (tolerance {MEMORY_TOLERANCE_MIB_PER_100} MiB per 100 "
        "samples over the second half)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="default: the shipped demo model with its adapter")
    p.add_argument("--adapter")
    p.add_argument("--random", choices=sorted(REAL), help="a random model of this checkpoint's widths")
    p.add_argument("--depth", type=int, default=4, help="decoder layers of --random")
    p.add_argument("--vision-depth", type=int, default=4, help="vision blocks of --random")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--reps", type=int, default=3, help="repetitions (each runs the three sides, rotating)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--new-tokens", type=int, nargs="+", default=[8, 512], help="answer lengths")
    p.add_argument(
        "--memory",
        type=int,
        default=0,
        metavar="N",
        help="instead of the timing: memory over one replay of N samples (batch: the first --batch-sizes, "
        "answers: the shortest --new-tokens)",
    )
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.random and args.model:
        p.error("--random builds its own model; leave out --model")
    if args.memory and args.memory < 10:
        p.error("--memory N needs N >= 10 samples (it reports memory at 10%, 50% and 100% of them)")
    # random_checkpoint sets the generation config's min_new_tokens from max_new_tokens; each
    # length here sets its own.
    args.max_new_tokens = min(args.new_tokens)
    with tempfile.TemporaryDirectory(prefix="lav-bench-model-") as tmp:
        args.describe = None
        if args.random:
            args.describe = random_checkpoint(args, Path(tmp))
            args.model = tmp
        if args.memory:
            memory(args)
        else:
            run(args)


if __name__ == "__main__":
    main()
