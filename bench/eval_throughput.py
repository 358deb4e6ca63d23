"""`lav eval` against a plain loop of `model.generate` over the same samples, and its memory over a
long run.

Time: the same model, samples, batch size, backend and number of new tokens on both sides. The
plain loop is what a benchmark script does: open each image, apply the chat template, run the
processor on the batch (left padding), `generate`, decode. `lav eval` does that plus both maps for
every decoder layer, the scoring, and a durable line per sample in ``samples.jsonl``. The two
sides alternate (plain, lav, lav, plain, ...) and each pair gives a ratio lav / plain; we print the
min / median / max ratio per batch size (targets: <= 1.15x).

Memory: one `lav eval` over ``--memory-samples`` samples (the benchmark repeated) in a fresh
process, its resident memory sampled every half second against the samples done; the growth after
the first 50 samples should stay under 50 MB.

Model: the shipped demo model with its adapter (2 vision blocks, 4 decoder layers, ~0.03 s a
sample on a CPU, so lav's fixed per-sample work weighs far more than on a real checkpoint), a
checkpoint (``--model``), or ``--random NAME``: a randomly initialised
`Qwen3VLForConditionalGeneration` with the widths of a real checkpoint (``qwen3-vl-2b``,
``qwen3-vl-8b``: hidden and MLP sizes, heads, KV heads, head_dim 128 with M-RoPE section
[24, 20, 20], vision width, patch 16) and ``--depth`` decoder layers / ``--vision-depth`` vision
blocks (2 or more: the edge map reads blocks -2 and -1), saved once into a temporary folder by
`lav.testing.save_checkpoint` and loaded by `lav.load` like a user's checkpoint (no adapter unless
``--adapter``). Its tokenizer is the character-level one of `lav.testing`, so its vocabulary has a
few hundred tokens, not 151,936: the embedding and LM head of a real vocabulary (for 2B about as
many multiply-adds per token as 6 decoder layers) are left out, which lowers the plain loop's time
and so overstates lav's ratio. The screens are the demo's (256x192) on every model.

    python bench/eval_throughput.py                       # the shipped demo model, CPU
    python bench/eval_throughput.py --random qwen3-vl-2b --depth 4 --vision-depth 4 --samples 8 \
        --max-new-tokens 12 --pairs 5 --batch-sizes 1 4 8 --memory-samples 0   # the README's run
    python bench/eval_throughput.py --model Qwen/Qwen3-VL-2B-Instruct --device cuda --samples 64
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

#: Widths of real Qwen3-VL checkpoints (their ``config.json``), and their depths for the header;
#: ``deepstack`` are the vision blocks whose features DeepStack feeds to the first decoder layers.
REAL: dict[str, dict] = {
    "qwen3-vl-2b": {
        "text": {
            "hidden_size": 2048,
            "intermediate_size": 6144,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 128,
        },
        "vision": {"hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16},
        "layers": 28,
        "blocks": 24,
        "deepstack": (5, 11, 17),
    },
    "qwen3-vl-8b": {
        "text": {
            "hidden_size": 4096,
            "intermediate_size": 12288,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 128,
        },
        "vision": {"hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16},
        "layers": 36,
        "blocks": 27,
        "deepstack": (8, 16, 24),
    },
}


def demo_dataset(n: int, seed: int = 0):
    from lav.eval import load_dataset, write_demo_benchmark

    folder = Path(tempfile.mkdtemp(prefix="lav-bench-data-"))
    write_demo_benchmark(folder, n=min(n, 200), seed=seed)
    ds = load_dataset(folder)
    samples = list(ds.samples)
    # Repeat the benchmark (new ids) to reach n samples.
    out = [replace(samples[i % len(samples)], id=f"{i}:{samples[i % len(samples)].id}") for i in range(n)]
    return replace(ds, samples=tuple(out))


def _plain(viz, samples, batch_size: int, max_new_tokens: int) -> float:
    import torch
    from PIL import Image

    proc = viz.processor
    proc.tokenizer.padding_side = "left"
    t0 = time.perf_counter()
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        images = [Image.open(s.image).convert("RGB") for s in batch]
        texts = [
            proc.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": s.instruction}]}],
                add_generation_prompt=True,
                tokenize=False,
            )
            for s in batch
        ]
        inputs = proc(text=texts, images=images, padding=True, return_tensors="pt").to(viz.device)
        with torch.inference_mode():
            ids = viz.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        proc.batch_decode(ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return time.perf_counter() - t0


def timed_evaluate(viz, dataset, out: Path, **kwargs) -> float:
    """Seconds of one ``lav.evaluate(viz, dataset, out, progress=False, **kwargs)``; stops the bench
    when a sample failed: a failed sample is recorded and skipped in milliseconds, so timing such a
    run would report lav faster than its baseline."""
    import lav

    t0 = time.perf_counter()
    run = lav.evaluate(viz, dataset, out, progress=False, **kwargs)
    seconds = time.perf_counter() - t0
    failed = [r for r in run.records if r.get("error")]
    if failed:
        raise SystemExit(
            f"lav eval failed on {len(failed)} of {len(run.records)} samples: {failed[0]['error']}"
        )
    return seconds


def _lav(viz, dataset, batch_size: int, max_new_tokens: int) -> float:
    with tempfile.TemporaryDirectory(prefix="lav-bench-out-") as out:
        return timed_evaluate(
            viz, dataset, Path(out) / "run", batch_size=batch_size, max_new_tokens=max_new_tokens
        )


def random_config(name: str, depth: int, vision_depth: int):
    """The config of a random ``name`` (a key of `REAL`) with ``depth`` decoder layers and
    ``vision_depth`` vision blocks."""
    from lav.testing import tiny_config

    real = REAL[name]
    # Real Qwen3-VL: interleaved M-RoPE over head_dim 128 = 64 rotary pairs split 24 (t) / 20 (h) /
    # 20 (w), theta 5e6.
    rope = {"rope_type": "default", "mrope_section": [24, 20, 20], "mrope_interleaved": True}
    # DeepStack blocks at the real model's relative depths (floored, so each is a block that exists).
    deepstack = sorted({i * vision_depth // real["blocks"] for i in real["deepstack"]})
    return tiny_config(
        "qwen3_vl",
        vision={
            **real["vision"],
            "depth": vision_depth,
            "patch_size": 16,
            "out_hidden_size": real["text"]["hidden_size"],
            "num_position_embeddings": 2304,
            "deepstack_visual_indexes": deepstack,
        },
        text={
            **real["text"],
            "num_hidden_layers": depth,
            "max_position_embeddings": 262144,
            "rope_parameters": {**rope, "rope_theta": 5000000.0},
            "rope_scaling": rope,
            "rope_theta": 5000000.0,
        },
    )


def random_checkpoint(args, folder: Path) -> str:
    """Save the random model of ``args.random`` into ``folder``; returns the header's description."""
    import torch
    import transformers

    from lav.testing import build_processor, save_checkpoint

    cfg = random_config(args.random, args.depth, args.vision_depth)
    torch.manual_seed(0)
    model = transformers.AutoModelForImageTextToText.from_config(cfg).eval()
    # Random weights may end the answer at once (lav records that as an error, the plain loop as an
    # empty answer): both sides generate exactly the requested number of tokens instead.
    model.generation_config.min_new_tokens = args.max_new_tokens
    save_checkpoint(model, build_processor("qwen3_vl"), folder)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    real, t, v = REAL[args.random], cfg.text_config, cfg.vision_config
    return (
        f"random {args.random} widths ({params:.0f}M parameters): decoder {t.num_hidden_layers} of "
        f"{real['layers']} layers, hidden {t.hidden_size}, MLP {t.intermediate_size}, "
        f"{t.num_attention_heads} heads / {t.num_key_value_heads} KV of {t.head_dim}; vision "
        f"{v.depth} of {real['blocks']} blocks, hidden {v.hidden_size}, MLP {v.intermediate_size}, "
        f"{v.num_heads} heads, patch {v.patch_size}, DeepStack {list(v.deepstack_visual_indexes)}"
    )


def load_viz(args):
    import lav
    from lav.demo import assets

    model = args.model or str(assets.BASE)
    adapter = args.adapter if args.model else (args.adapter or str(assets.ADAPTER))
    return lav.load(model, adapter=adapter, device=args.device, dtype=args.dtype)


def time_sides(args) -> None:
    viz = load_viz(args)
    dataset = demo_dataset(args.samples)
    samples = list(dataset.samples)
    print(f"{len(samples)} samples, {args.max_new_tokens} new tokens, {viz!r} on {viz.device}")
    if args.describe:
        print(args.describe)
    _plain(viz, samples[: args.batch_sizes[0]], args.batch_sizes[0], args.max_new_tokens)  # warm-up
    for bs in args.batch_sizes:
        ratios, plain_t, lav_t = [], [], []
        for rep in range(args.pairs):
            first_plain = rep % 2 == 0
            a = _plain(viz, samples, bs, args.max_new_tokens) if first_plain else None
            b = _lav(viz, dataset, bs, args.max_new_tokens)
            if a is None:
                a = _plain(viz, samples, bs, args.max_new_tokens)
            plain_t.append(a)
            lav_t.append(b)
            ratios.append(b / a)
        print(
            f"batch {bs}: plain {len(samples) / statistics.median(plain_t):.2f} samples/s, "
            f"lav eval {len(samples) / statistics.median(lav_t):.2f} samples/s; ratio lav/plain "
            f"min {min(ratios):.3f} median {statistics.median(ratios):.3f} max {max(ratios):.3f}"
        )


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(args) -> None:
    import lav

    viz = load_viz(args)
    dataset = demo_dataset(args.memory_samples)
    lav.evaluate(
        viz,
        dataset,
        args.out,
        batch_size=args.batch_sizes[0],
        max_new_tokens=args.max_new_tokens,
        progress=False,
    )


def memory_curve(args) -> None:
    with tempfile.TemporaryDirectory(prefix="lav-bench-mem-") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, __file__, "--memory-child", "--out", str(out)] + _forward(args)
        proc = subprocess.Popen(cmd)
        curve: list[tuple[int, float]] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set() and proc.poll() is None:
                lines = (
                    (out / "samples.jsonl").read_bytes().count(b"\n")
                    if (out / "samples.jsonl").exists()
                    else 0
                )
                try:
                    curve.append((lines, rss_mb(proc.pid)))
                except OSError:
                    break
                time.sleep(0.5)

        t = threading.Thread(target=watch)
        t.start()
        proc.wait()
        stop.set()
        t.join()
    curve = [(n, m) for n, m in curve if m == m]  # the last look may find the process gone (NaN)
    after = [m for n, m in curve if n >= 50]
    if after:
        print(
            f"resident memory after 50 samples: {after[0]:.0f} MB -> {after[-1]:.0f} MB (+{after[-1] - after[0]:.1f} MB)"
        )
    step = max(1, len(curve) // 20)
    print(json.dumps({"samples_done_vs_rss_mb": curve[::step] + curve[-1:]}))


def _forward(args) -> list[str]:
    out = ["--device", args.device, "--dtype", args.dtype, "--max-new-tokens", str(args.max_new_tokens)]
    out += ["--memory-samples", str(args.memory_samples), "--batch-sizes", str(args.batch_sizes[0])]
    if args.model:
        out += ["--model", args.model]
    if args.adapter:
        out += ["--adapter", args.adapter]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="default: the shipped demo model with its adapter")
    p.add_argument("--adapter")
    p.add_argument("--random", choices=sorted(REAL), help="a random model of this checkpoint's widths")
    p.add_argument("--depth", type=int, default=4, help="decoder layers of --random")
    p.add_argument("--vision-depth", type=int, default=4, help="vision blocks of --random")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--pairs", type=int, default=3, help="alternated (plain, lav) pairs per batch size")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--memory-samples", type=int, default=1000, help="0 skips the memory curve")
    p.add_argument("--skip-time", action="store_true")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.memory_child:
        memory_child(args)
        return
    if args.random and args.model:
        p.error("--random builds its own model; leave out --model")
    if args.random and (args.depth < 1 or args.vision_depth < 2):
        # lav eval's edge map reads vision blocks -2 and -1.
        p.error("--random needs --depth 1 or more and --vision-depth 2 or more")
    with tempfile.TemporaryDirectory(prefix="lav-bench-model-") as tmp:
        args.describe = None
        if args.random:
            args.describe = random_checkpoint(args, Path(tmp))
            # From here on the folder is the model, as a user's checkpoint is (the memory child too).
            args.model = tmp
        if not args.skip_time:
            time_sides(args)
        if args.memory_samples:
            memory_curve(args)


if __name__ == "__main__":
    main()
