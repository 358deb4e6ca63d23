"""Received attention (edge map of one vision block) against one sdpa call and the naive method.

Shape of Qwen3-VL-8B's vision tower: 16 heads, head dim 72, float32 on this machine's CPU.
Methods, each as a ratio to one sdpa call of the same block:
- forward+lse: the recorded block's forward by the fused op that also returns the log-sum-exp
  (what `capture` runs instead of sdpa where it is bit-identical);
- given lse: received attention given that log-sum-exp (the pass `received` picks: the weighted one
  unless the rows' log-sum-exp spread too far);
- folded: the folded pass given that log-sum-exp, forced (the method before the weighted pass;
  still the fallback for wide spreads);
- extra per recorded block: (forward+lse - sdpa) + given lse, what recording a block adds;
- own lse: received attention computing its own log-sum-exp (where the forward's is not reused);
- exact chunks (fallback) and the naive full softmax (as output_attentions does; only where it fits).
Times: in each round every method runs right after its own sdpa call, the order alternating from
round to round, and the ratio is taken within the pair; min / median / max over the rounds are
printed. Memory: each method once in a fresh subprocess, its peak (ru_maxrss) above the inputs.

    python bench/received.py                        # N = 1,024, 4,096, 17,052
    python bench/received.py --sizes 4096 --head-group-mb 1 4 16   # the HEAD_GROUP_BYTES trade-off
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

HEADS, DIM = 16, 72
NAIVE_MAX_N = 4096
SCALE = DIM**-0.5


def _inputs(n: int, group_mb: float | None):
    import torch

    from lav.capture import colsums, received

    if group_mb is not None:
        colsums.HEAD_GROUP_BYTES = int(group_mb * 2**20)
    torch.manual_seed(0)
    # (S, H, D) transposed, as the model's qkv projection hands them to the attention function.
    q, k, v = (torch.randn(n, HEADS, DIM).transpose(0, 1)[None] for _ in range(3))
    received(q[0, :, :64], k[0, :, :64], SCALE)  # feature detection off the clock
    _, lse = colsums._flash_cpu(q, k, v, SCALE)
    return q, k, v, lse


def _method(name: str, q, k, v, lse):
    import torch
    import torch.nn.functional as F

    from lav.capture import colsums, received

    if name == "sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v, scale=SCALE).transpose(1, 2).contiguous()
    if name == "forward+lse":
        return lambda: colsums._flash_cpu(q, k, v, SCALE)[0].transpose(1, 2).contiguous()
    if name == "given lse":
        return lambda: received(q[0], k[0], SCALE, lse=lse[0])[0]
    if name == "folded":
        _, kernel, widths = colsums._fused("cpu", DIM)
        only = {"folded": widths["folded"]}
        return lambda: colsums._received_fused(kernel, only, q[0], k[0], SCALE, lse[0])
    if name == "naive":
        return lambda: torch.softmax(q[0] @ k[0].transpose(-1, -2) * SCALE, dim=-1).sum(dim=-2)
    return lambda: received(q[0], k[0], SCALE, method=name)[0]


def _times(n: int, rounds: int, group_mb: float | None) -> dict[str, list[float]]:
    """Per method, its time over the sdpa call paired with it, one ratio per round."""

    q, k, v, lse = _inputs(n, group_mb)
    names = ["forward+lse", "given lse", "folded", "auto", "chunked"] + (
        ["naive"] if n <= NAIVE_MAX_N else []
    )
    sdpa = _method("sdpa", q, k, v, lse)
    fns = {name: _method(name, q, k, v, lse) for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    ratios["sdpa_s"] = []
    ratios["extra"] = []
    for r in range(rounds):
        seconds = {}
        for name, fn in fns.items():
            pair = [("sdpa", sdpa), (name, fn)]
            took = {}
            for which, f in pair if r % 2 == 0 else pair[::-1]:
                t0 = time.perf_counter()
                f()
                took[which] = time.perf_counter() - t0
            ratios[name].append(took[name] / took["sdpa"])
            ratios["sdpa_s"].append(took["sdpa"])
            seconds[name] = ratios[name][-1]
        ratios["extra"].append(seconds["forward+lse"] - 1 + seconds["given lse"])
    return ratios


def _memory(name: str, n: int, group_mb: float | None) -> float:
    q, k, v, lse = _inputs(n, group_mb)
    fn = _method(name, q, k, v, lse)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024


def _sub(*args: str):
    cmd = [sys.executable, __file__, *args]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """``median (min-max)`` of ``values``."""
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1024, 4096, 17052])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--head-group-mb", type=float, nargs="*", default=[None], help="HEAD_GROUP_BYTES in MB")
    ap.add_argument("--memory", nargs=2, metavar=("METHOD", "N"))
    ap.add_argument("--times", type=int, metavar="N")
    ap.add_argument("--group", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory:
        print(json.dumps(_memory(args.memory[0], int(args.memory[1]), args.group)))
        return
    if args.times:
        print(json.dumps(_times(args.times, args.rounds, args.group)))
        return

    import torch

    from lav.capture import colsums

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
        f"H={HEADS}, head dim {DIM}, float32, CPU; ratios to one sdpa call, median (min-max) over "
        f"{args.rounds} alternated pairs (5 at 17,052)"
    )
    print(
        "| N patches | HEAD_GROUP_BYTES | one sdpa call | forward+lse | given lse | folded (before) "
        "| **extra per recorded block** | own lse | exact chunks | naive "
        "| extra memory: given lse / folded / own lse / chunks / naive |"
    )
    print("|" + "---|" * 11)
    for n in args.sizes:
        for group_mb in args.head_group_mb:
            group = () if group_mb is None else ("--group", str(group_mb))
            rounds = args.rounds if n <= NAIVE_MAX_N else 5
            t = _sub("--times", str(n), "--rounds", str(rounds), *group)
            mem = {
                name: _sub("--memory", name, str(n), *group)
                for name in ("given lse", "folded", "auto", "chunked")
            }
            if n <= NAIVE_MAX_N:
                naive = f"{spread(t['naive'])}x"
                naive_mem = f"{_sub('--memory', 'naive', str(n)):.0f} MB"
            else:
                naive = "not run"
                naive_mem = f"needs {HEADS * n * n * 4 / 1e9:.1f} GB (16·N²·4 B)"
            mb = colsums.HEAD_GROUP_BYTES / 2**20 if group_mb is None else group_mb
            print(
                f"| {n:,} | {mb:g} MB | {spread(t['sdpa_s'], '{:.3f}')} s | {spread(t['forward+lse'])}x "
                f"| {spread(t['given lse'])}x | {spread(t['folded'])}x | **{spread(t['extra'])}x** "
                f"| {spread(t['auto'])}x "
                f"| {spread(t['chunked'])}x | {naive} "
                f"| {mem['given lse']:.0f} / {mem['folded']:.0f} / {mem['auto']:.0f} / {mem['chunked']:.0f} MB "
                f"/ {naive_mem} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
