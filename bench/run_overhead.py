"""Full analysis (generate + both maps) against plain `model.generate`, same input, same backend.

A random model of the real `Qwen3VLForConditionalGeneration` class with Qwen3-VL-2B's vision tower
(depth 24, width 1024, 16 heads, patch 16) and a smaller language model, on a 640x512 screenshot
(40x32 = 1,280 patches). Both sides include the processor call and generate the same number of
tokens. Times: the two sides alternate in one process, the order swapped from pair to pair, the
ratio taken within each pair; min / median / max over the pairs are printed. Memory: each side in
its own fresh subprocess so its peak (ru_maxrss) is its own, two of each; the maps' extra memory is
compared with what generate alone adds over the loaded model.

    python bench/run_overhead.py
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

NEW_TOKENS = 12
SIZE = (640, 512)


def _build():
    import numpy as np
    import torch
    import transformers
    from PIL import Image

    from lav.testing import build_processor, tiny_config

    cfg = tiny_config(
        "qwen3_vl",
        vision={
            "depth": 24,
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_heads": 16,
            "out_hidden_size": 512,
            "num_position_embeddings": 2304,
            "deepstack_visual_indexes": [5, 11, 17],
        },
        text={
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
    processor = build_processor("qwen3_vl", max_pixels=SIZE[0] * SIZE[1])
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8))
    return model, processor, image


def _timed(repeat: int) -> dict:
    """Alternate plain generate and the full analysis in one process, so both see the same load."""
    import torch

    import lav
    from lav import stages

    model, processor, image = _build()
    viz = lav.Visualizer(model, processor, model_name="random-qwen3-vl-2b-vision")
    instruction = "Click the Save button"

    def plain():
        prepared = stages.prepare(viz, [stages.Request(image, instruction)], NEW_TOKENS)
        with torch.inference_mode():
            out = model.generate(**prepared.inputs, do_sample=False)
        return out.shape[1] - prepared.answer_starts[0]

    def analysis():
        return len(viz.analyze(image, instruction, max_new_tokens=NEW_TOKENS).answer_tokens)

    plain(), analysis()  # warm-up (and the fused-op checks) off the clock
    times: dict[str, list[float]] = {"generate": [], "analysis": []}
    tokens = {}
    for pair in range(repeat):
        order = (("generate", plain), ("analysis", analysis))
        for name, fn in order if pair % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            tokens[name] = fn()
            times[name].append(time.perf_counter() - t0)
    patches = int(stages.prepare(viz, [stages.Request(image, instruction)]).inputs["image_grid_thw"].prod())
    return {"times": times, "tokens": tokens, "patches": patches}


def _cold(which: str) -> dict:
    """Peak memory one call adds over the loaded model, in a fresh process (ru_maxrss)."""
    import torch

    import lav
    from lav import stages

    model, processor, image = _build()
    viz = lav.Visualizer(model, processor)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if which == "generate":
        # Both sides build the prompt (processor call) inside the measured window, as analyze does.
        prepared = stages.prepare(viz, [stages.Request(image, "Click the Save button")], NEW_TOKENS)
        with torch.inference_mode():
            model.generate(**prepared.inputs, do_sample=False)
    else:
        viz.analyze(image, "Click the Save button", max_new_tokens=NEW_TOKENS)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"added_mb": (after - before) / 1024}


def _sub(*args: str) -> dict:
    cmd = [sys.executable, __file__, *args]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cold")
    ap.add_argument("--timed", action="store_true")
    args = ap.parse_args()
    if args.cold:
        print(json.dumps(_cold(args.cold)))
        return
    if args.timed:
        print(json.dumps(_timed(args.repeat)))
        return
    timed = _sub("--timed", "--repeat", str(args.repeat))
    assert timed["tokens"]["generate"] == timed["tokens"]["analysis"] == NEW_TOKENS, timed["tokens"]
    gen, ana = timed["times"]["generate"], timed["times"]["analysis"]
    ratios = [a / g for g, a in zip(gen, ana, strict=True)]
    cold_gen = [_sub("--cold", "generate")["added_mb"] for _ in range(2)]
    cold_ana = [_sub("--cold", "analysis")["added_mb"] for _ in range(2)]
    extra = [a - g for g, a in zip(cold_gen, cold_ana, strict=True)]
    share = [100 * (a - g) / g for g, a in zip(cold_gen, cold_ana, strict=True)]
    print(
        f"{timed['patches']} patches, {NEW_TOKENS} new tokens, sdpa, float32, CPU "
        f"({platform.processor() or platform.machine()}); {args.repeat} alternated pairs, median (min-max)"
    )
    print("| | plain generate | lav analyze (generate + edge + focus) | ratio |")
    print("|---|---|---|---|")
    print(f"| time | {spread(gen)} s | {spread(ana)} s | **{spread(ratios, '{:.3f}')}x** |")
    print(
        f"| peak memory added by the call (fresh processes, 2 each) | {spread(cold_gen, '{:.0f}')} MB "
        f"| {spread(cold_ana, '{:.0f}')} MB | maps: {spread(extra, '{:+.0f}')} MB = "
        f"{spread(share, '{:.1f}')}% of generate's |"
    )


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """``median (min-max)`` of ``values``."""
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


if __name__ == "__main__":
    main()
