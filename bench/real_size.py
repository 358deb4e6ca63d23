"""The edge map at the size users ground on: `Visualizer.analyze` against plain `model.generate`.

A random model of the real `Qwen3VLForConditionalGeneration` class with Qwen3-VL-8B's vision width
and heads (1152, 16 heads of 72, patch 16; depth configurable, 27 in the real model) and a small
language model, on a 2784x1568 screenshot: 174x98 = 17,052 patches (4,263 image tokens).

Every run is its own fresh process (model built from the same seed, one call timed, its peak
memory above the loaded model from ru_maxrss), so no run inherits another's caches or heap. Runs
come in pairs (generate, analyze), the order alternating from pair to pair, so slow drift of the
machine's load hits both sides alike; the ratio is taken within each pair and min / median / max
over the pairs are printed. Both sides include the processor call and generate the same tokens.

    python bench/real_size.py                      # depth 4, 5 pairs
    python bench/real_size.py --depth 27 --pairs 7
    python bench/real_size.py --size 448x448 --depth 2 --pairs 2   # a smoke check of the script
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

NEW_TOKENS = 8
INSTRUCTION = "Click the Save button"


def _build(depth: int, size: tuple[int, int]):
    import numpy as np
    import torch
    import transformers
    from PIL import Image

    from lav.testing import build_processor, tiny_config

    cfg = tiny_config(
        "qwen3_vl",
        vision={
            "depth": depth,
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_heads": 16,
            "patch_size": 16,
            "out_hidden_size": 512,
            "num_position_embeddings": 2304,
            "deepstack_visual_indexes": sorted({depth // 4, depth // 2, 3 * depth // 4}),
        },
        text={
            # 17,052 patches are 4,263 image tokens: the context of a real Qwen3-VL (262,144), not
            # the tiny config's 4,096, which lav's length check would refuse.
            "max_position_embeddings": 32768,
            "hidden_size": 512,
            "intermediate_size": 1024,
            "num_hidden_layers": 4,
            "num_attention_heads": 8,
            "num_key_value_heads": 4,
            "head_dim": 64,
            "rope_parameters": {
                "rope_type": "default",
                "mrope_section": [8, 12, 12],
                "mrope_interleaved": True,
                "rope_theta": 10000.0,
            },
            "rope_scaling": {"rope_type": "default", "mrope_section": [8, 12, 12], "mrope_interleaved": True},
        },
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForImageTextToText.from_config(cfg, attn_implementation="sdpa").eval()
    model.generation_config.min_new_tokens = NEW_TOKENS
    model.generation_config.max_new_tokens = NEW_TOKENS
    processor = build_processor("qwen3_vl", max_pixels=size[0] * size[1])
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    return model, processor, image


def _one(which: str, depth: int, size: tuple[int, int]) -> dict:
    """One timed call in this (fresh) process: seconds, and peak memory added over the loaded model."""
    import torch

    import lav
    from lav import stages

    model, processor, image = _build(depth, size)
    viz = lav.Visualizer(model, processor, model_name=f"random-qwen3-vl-8b-vision-depth{depth}")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if which == "generate":
        # The same preparation (processor call, padding) as analyze, inside the timed window.
        prepared = stages.prepare(viz, [stages.Request(image, INSTRUCTION)], NEW_TOKENS)
        with torch.inference_mode():
            out = model.generate(**prepared.inputs, do_sample=False)
        tokens = out.shape[1] - prepared.answer_starts[0]
    else:
        tokens = len(viz.analyze(image, INSTRUCTION, max_new_tokens=NEW_TOKENS).answer_tokens)
    seconds = time.perf_counter() - t0
    added = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    patches = int(stages.prepare(viz, [stages.Request(image, INSTRUCTION)]).inputs["image_grid_thw"].prod())
    return {"seconds": seconds, "added_mb": added, "tokens": tokens, "patches": patches}


def _sub(*args: str) -> dict:
    cmd = [sys.executable, __file__, *args]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def spread(values: list[float], fmt: str = "{:.3f}") -> str:
    """``median (min-max, n)`` of ``values``."""
    lo, mid, hi = min(values), statistics.median(values), max(values)
    return f"{fmt.format(mid)} ({fmt.format(lo)}-{fmt.format(hi)}, n={len(values)})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, default=4, help="vision blocks (Qwen3-VL-8B has 27)")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--size", default="2784x1568", help="screenshot WxH in pixels")
    ap.add_argument("--one", choices=("generate", "analyze"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.lower().split("x"))
    if args.one:
        print(json.dumps(_one(args.one, args.depth, size)))
        return
    if args.pairs < 5:
        print(f"note: {args.pairs} pairs; quote results from 5 or more", file=sys.stderr)
    common = ("--depth", str(args.depth), "--size", args.size)
    runs: dict[str, list[dict]] = {"generate": [], "analyze": []}
    for pair in range(args.pairs):
        order = ("generate", "analyze") if pair % 2 == 0 else ("analyze", "generate")
        for which in order:
            runs[which].append(_sub("--one", which, *common))
        print(
            f"pair {pair + 1}: generate {runs['generate'][-1]['seconds']:.1f} s, "
            f"analyze {runs['analyze'][-1]['seconds']:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    gen, ana = runs["generate"], runs["analyze"]
    assert all(r["tokens"] == NEW_TOKENS for r in gen + ana), [r["tokens"] for r in gen + ana]
    ratios = [a["seconds"] / g["seconds"] for g, a in zip(gen, ana, strict=True)]
    extra = [a["added_mb"] - g["added_mb"] for g, a in zip(gen, ana, strict=True)]
    share = [100 * (a["added_mb"] - g["added_mb"]) / g["added_mb"] for g, a in zip(gen, ana, strict=True)]

    import torch

    print(
        f"{gen[0]['patches']:,} patches ({args.size}), vision depth {args.depth}, width 1152, 16 heads of 72; "
        f"{NEW_TOKENS} new tokens; sdpa, float32, CPU ({platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads); {args.pairs} alternated pairs "
        "of fresh processes; median (min-max) over pairs"
    )
    print(
        "| | plain generate | lav analyze (generate + edge map of 2 blocks + decision focus) | analyze / generate |"
    )
    print("|---|---|---|---|")
    print(
        f"| time | {spread([g['seconds'] for g in gen], '{:.1f}')} s "
        f"| {spread([a['seconds'] for a in ana], '{:.1f}')} s | **{spread(ratios)}x** |"
    )
    print(
        f"| peak memory added by the call | {spread([g['added_mb'] for g in gen], '{:.0f}')} MB "
        f"| {spread([a['added_mb'] for a in ana], '{:.0f}')} MB "
        f"| maps: {spread(extra, '{:+.0f}')} MB = {spread(share, '{:.1f}')}% of generate's |"
    )


if __name__ == "__main__":
    main()
