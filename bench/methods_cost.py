"""Each opt-in map method's extra time against `analyze` with raw focus only (issue #11's targets:
relative <= 2.1x, gradient-weighted <= 3x, sink-aware and per-head ~1.0x).

The model of bench/run_overhead.py (random weights of the real Qwen3-VL class, Qwen3-VL-2B's vision
tower, a small language model) on a 640x512 screenshot. For each method, analyses with
``maps=["focus"]`` and with ``maps=["focus", method]`` alternate in one process (``--repeat`` pairs);
each pair gives one ratio, reported as min / median / max. ``edge_rollout`` is timed against
``["edge", "focus"]`` (the cost of the rollout over the edge map it is an option of). The answer is
forced (``--response``; one forward, the cheapest baseline, so the ratios are upper bounds) unless
``--generate``.

    python bench/methods_cost.py [--repeat 5] [--generate] [--methods focus_relative,focus_grad]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from run_overhead import NEW_TOKENS, _build

PAIRS = {
    "focus_sink_masked": (["focus"], ["focus", "focus_sink_masked"]),
    "focus_selected": (["focus"], ["focus", "focus_selected"]),
    "focus_relative": (["focus"], ["focus", "focus_relative"]),
    "focus_grad": (["focus"], ["focus", "focus_grad"]),
    "edge_rollout": (["edge", "focus"], ["edge", "focus", "edge_rollout"]),
}
RESPONSE = "(512, 301)"


def _tiny():
    """A tiny Qwen3-VL (lav.testing) for a smoke run of this script: no timing worth reading."""
    import numpy as np
    from PIL import Image

    from lav.testing import build_processor, tiny_model

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8))
    return tiny_model("qwen3_vl").eval(), build_processor("qwen3_vl"), image


def measure(names: list[str], repeat: int, generate: bool, smoke: bool = False) -> dict:
    import lav

    model, processor, image = _tiny() if smoke else _build()
    viz = lav.Visualizer(model, processor, model_name="random-qwen3-vl-2b-vision")
    options = {"max_new_tokens": NEW_TOKENS} if generate else {"response": RESPONSE}
    heads = [(-1, 0), (-1, 3)]

    def run(maps: list[str]) -> float:
        t0 = time.perf_counter()
        extra = {"focus_heads": heads} if "focus_selected" in maps else {}
        viz.analyze(image, "Click the Save button", maps=maps, **options, **extra)
        return time.perf_counter() - t0

    out = {}
    for name in names:
        base, with_method = PAIRS[name]
        run(base), run(with_method)  # warm-up off the clock
        ratios, times = [], {"base": [], "method": []}
        for _ in range(repeat):
            a, b = run(base), run(with_method)
            times["base"].append(a)
            times["method"].append(b)
            ratios.append(b / a)
        out[name] = {
            "ratio_min": min(ratios),
            "ratio_median": statistics.median(ratios),
            "ratio_max": max(ratios),
            "base_s_median": statistics.median(times["base"]),
            "method_s_median": statistics.median(times["method"]),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--generate", action="store_true", help="generate the answer instead of forcing it")
    ap.add_argument("--methods", default=",".join(PAIRS), help="comma-separated, from: " + ", ".join(PAIRS))
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument(
        "--smoke", action="store_true", help="a tiny model: checks the script runs, times mean nothing"
    )
    args = ap.parse_args()
    names = [n for n in args.methods.split(",") if n]
    stats = measure(names, args.repeat, args.generate, args.smoke)
    if args.json:
        print(json.dumps(stats, indent=1))
        return
    mode = "generate" if args.generate else "forced answer"
    print(f"{mode}, {args.repeat} alternated pairs; ratio = analyze with the method / without")
    print("| method | ratio min / median / max | without (s) | with (s) |")
    print("|---|---|---|---|")
    for name, s in stats.items():
        print(
            f"| `{name}` | {s['ratio_min']:.2f} / {s['ratio_median']:.2f} / {s['ratio_max']:.2f} "
            f"| {s['base_s_median']:.2f} | {s['method_s_median']:.2f} |"
        )


if __name__ == "__main__":
    main()
