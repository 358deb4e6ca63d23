"""The faithfulness pass (`lav.faithful.faithfulness`) against its floor: the same number of plain
forced forwards.

One sample, both maps (edge, focus), ``--steps`` deletion and insertion steps per order, the map's
order, its inverse and three random orders: ``2 maps x 2 + 3`` orders x 2 curves x (steps - 1) inner
points + 3 shared ends = 129 forwards at 10 steps. The floor: a plain loop that runs the processor
and one forced forward (``use_cache=False``) on batches of the same size over the same number of
copies of the same screenshot with the same forced answer (every step's input has the same shape, so
the same cost). lav adds the cell orders, the masking, the log-probabilities, the key/value cache,
and for the steps whose greedy answer differs from the forced one (the click check) a greedy decode
continued on that forward's cache. The two sides
alternate (plain, lav, lav, plain, ...); each pair gives a ratio lav / plain; we print min / median /
max (target: <= 1.2x). On CUDA the peak memory of each side is printed too (bounded by one batch).

Models: the shipped demo model with its adapter (its own answer; the greedy answer stays the forced
one until the evidence goes, so few steps generate), or ``--random qwen3-vl-2b``: a random
`Qwen3VLForConditionalGeneration` of the real 2B widths (as in ``bench/eval_throughput.py``) with a
forced answer "(500, 500)" that the random model would never say: every step runs the click check's
generate, the worst case. The screens are the demo's (256x192).

    python bench/faithfulness_cost.py                          # demo model, CPU
    python bench/faithfulness_cost.py --random qwen3-vl-2b --depth 4 --vision-depth 4 --pairs 3
    python bench/faithfulness_cost.py --random qwen3-vl-2b --depth 28 --vision-depth 24 --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_throughput import REAL, random_config  # noqa: E402  (the real checkpoints' widths, one table for the benches)

RESPONSE = "(500, 500)"


def random_checkpoint(name: str, depth: int, vision_depth: int, folder: Path) -> str:
    """A random Qwen3-VL of ``name``'s widths (`REAL`) with ``depth`` / ``vision_depth`` layers, saved."""
    import torch
    import transformers

    from lav.testing import build_processor, save_checkpoint

    cfg = random_config(name, depth, vision_depth)
    torch.manual_seed(0)
    model = transformers.AutoModelForImageTextToText.from_config(cfg).eval()
    save_checkpoint(model, build_processor("qwen3_vl"), folder)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return f"random {name} widths ({params:.0f}M parameters, {depth} decoder layers, {vision_depth} vision blocks)"


def plain(viz, image, instruction: str, response: str, count: int, batch: int) -> float:
    """``count`` forced forwards of ``image`` with ``response``, ``batch`` at a time, as a script does."""
    import torch

    proc, model = viz.processor, viz.model
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + response
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, count, batch):
            n = min(batch, count - start)
            inputs = proc(text=[text] * n, images=[image] * n, return_tensors="pt", padding=True)
            inputs = viz.to_device({k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)})
            model(**inputs, use_cache=False).logits[:, -1].float().sum().item()
    _sync(viz)
    return time.perf_counter() - t0


def _sync(viz) -> None:
    import torch

    if viz.device.type == "cuda":
        torch.cuda.synchronize()


def _peak(viz, fn):
    import torch

    if viz.device.type != "cuda":
        return fn(), None
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn()
    return out, (torch.cuda.max_memory_allocated() - base) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--random", choices=sorted(REAL), help="a random model of this checkpoint's widths")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--vision-depth", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--pairs", type=int, default=3, help="alternated (plain, lav) pairs")
    args = p.parse_args()

    import lav
    from lav.demo import assets
    from lav.faithful import CheckOptions, faithfulness
    from lav.metrics import point_in_box

    with tempfile.TemporaryDirectory() as tmp:
        if args.random:
            header = random_checkpoint(args.random, args.depth, args.vision_depth, Path(tmp) / "model")
            viz = lav.load(str(Path(tmp) / "model"), device=args.device, dtype=args.dtype)
            response = RESPONSE
        else:
            header = "the shipped demo model with its adapter"
            viz = lav.load("demo", adapter="demo", device=args.device, dtype=args.dtype)
            response = None
        from lav.inputs import load_image

        image = load_image(assets.SCREEN)
        res = viz.analyze(image, assets.instruction(), response=response, maps=["edge", "focus"])
        checks = CheckOptions(faithfulness=True, steps=args.steps)
        box = assets.box()

        def hit(x: float, y: float) -> bool:
            return point_in_box(x, y, box)

        probe = faithfulness(viz, res, checks, hit=hit)
        count, batch = probe["forwards"], 2 * args.steps
        print(f"{header}; device {args.device} {args.dtype}; answer {res.response!r}")
        print(f"faithfulness pass: {count} forced forwards in batches of {batch} ({args.steps} steps)")

        def run_lav() -> float:
            t0 = time.perf_counter()
            faithfulness(viz, res, checks, hit=hit)
            _sync(viz)
            return time.perf_counter() - t0

        def run_plain() -> float:
            return plain(viz, res.image, res.instruction, res.response, count, batch)

        ratios, mem = [], {}
        for i in range(args.pairs):
            order = [("plain", run_plain), ("lav", run_lav)]
            if i % 2:
                order.reverse()
            got = {}
            for name, fn in order:
                got[name], peak = _peak(viz, fn)
                if peak is not None:
                    mem[name] = max(mem.get(name, 0.0), peak)
            ratios.append(got["lav"] / got["plain"])
            print(f"pair {i}: plain {got['plain']:.2f}s, lav {got['lav']:.2f}s, ratio {ratios[-1]:.2f}x")
        print(
            f"ratio lav / plain over {len(ratios)} pairs: min {min(ratios):.2f}x, median "
            f"{statistics.median(ratios):.2f}x, max {max(ratios):.2f}x (target <= 1.2x)"
        )
        if mem:
            print(f"peak memory: plain {mem['plain']:.0f} MiB, lav {mem['lav']:.0f} MiB")


if __name__ == "__main__":
    main()
