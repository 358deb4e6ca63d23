"""Full analysis (generate + both maps) against plain `model.generate`, same input, same backend.

A random model of the real `Qwen3VLForConditionalGeneration` class with Qwen3-VL-2B's vision tower
(depth 24, width 1024, 16 heads, patch 16) and a smaller language model, on a 640x512 screenshot
(40x32 = 1,280 patches). Both sides include the processor call and generate the same number of
tokens. Each side runs in its own subprocess so its peak memory (ru_maxrss) is its own; the maps'
extra memory is compared with the forward's peak (what generate alone adds over the loaded model).

    python bench/run_overhead.py
"""

from __future__ import annotations

import argparse
import json
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

    from lav.checkpoint import build_processor
    from lav.testing import tiny_config

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


def _side(which: str, repeat: int) -> dict:
    import torch

    import lav

    model, processor, image = _build()
    viz = lav.Visualizer(model, processor, model_name="random-qwen3-vl-2b-vision")
    instruction = "Click the Save button"

    def plain():
        prompt = viz.prompt(image, instruction, None, None, None)
        with torch.inference_mode():
            out = model.generate(**viz._model_inputs(prompt), do_sample=False)
        return out.shape[1] - prompt.answer_start

    def analysis():
        res = viz.analyze(image, instruction, max_new_tokens=NEW_TOKENS)
        return len(res.answer_tokens)

    run = plain if which == "generate" else analysis
    run()  # warm-up (and the fused-op check) off the clock
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = run()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    patches = viz.prompt(image, instruction, None, None, None).inputs["image_grid_thw"].prod().item()
    return {"times": times, "tokens": n, "base_mb": base / 1024, "peak_mb": peak / 1024, "patches": patches}


def _fresh(which: str, repeat: int, stage: str) -> dict:
    """Peak memory of one call in a fresh process: `stage`=cold runs once, with no warm-up."""
    cmd = [sys.executable, __file__, "--side", which, "--repeat", str(repeat), "--stage", stage]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def _cold(which: str) -> dict:
    model, processor, image = _build()
    import torch

    import lav

    viz = lav.Visualizer(model, processor)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if which == "generate":
        prompt = viz.prompt(image, "Click the Save button", None, None, None)
        with torch.inference_mode():
            model.generate(**viz._model_inputs(prompt), do_sample=False)
    else:
        viz.analyze(image, "Click the Save button", max_new_tokens=NEW_TOKENS)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"added_mb": (after - before) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--side")
    ap.add_argument("--stage", default="warm")
    args = ap.parse_args()
    if args.side:
        print(json.dumps(_side(args.side, args.repeat) if args.stage == "warm" else _cold(args.side)))
        return
    gen = _fresh("generate", args.repeat, "warm")
    ana = _fresh("analysis", args.repeat, "warm")
    assert gen["tokens"] == ana["tokens"] == NEW_TOKENS, (gen["tokens"], ana["tokens"])
    g, a = statistics.median(gen["times"]), statistics.median(ana["times"])
    cold_gen = _fresh("generate", 1, "cold")["added_mb"]
    cold_ana = _fresh("analysis", 1, "cold")["added_mb"]
    extra = cold_ana - cold_gen
    print(f"{gen['patches']} patches, {NEW_TOKENS} new tokens, sdpa, float32, CPU, median of {args.repeat}")
    print("| | plain generate | lav analyze (generate + edge + focus) | ratio |")
    print("|---|---|---|---|")
    print(f"| time | {g:.2f} s | {a:.2f} s | {a / g:.3f}x |")
    print(
        f"| peak memory added by the call | {cold_gen:.0f} MB | {cold_ana:.0f} MB | maps: {extra:+.0f} MB = {100 * extra / cold_gen:.1f}% of the forward's peak |"
    )


if __name__ == "__main__":
    main()
