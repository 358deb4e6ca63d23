"""Received attention (edge map of one vision block) against one sdpa call and the naive method.

Shape of Qwen3-VL-8B's vision tower: 16 heads, head dim 72, float32 on this machine's CPU.
Times: the methods alternate round by round in one process (so each sees the same load), best of
the rounds. Memory: each method once in a fresh subprocess, its peak (ru_maxrss) above the inputs.
The naive method (the full (H, N, N) softmax, as output_attentions does) only runs where it fits;
beyond that its size is given by arithmetic.

    python bench/received.py            # N = 1,024, 4,096, 17,052
    python bench/received.py --sizes 1024
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

HEADS, DIM = 16, 72
NAIVE_MAX_N = 4096


def _inputs(n: int):
    import torch

    torch.manual_seed(0)
    return (torch.randn(1, HEADS, n, DIM) for _ in range(3))


def _method(name: str, q, k, v):
    import torch
    import torch.nn.functional as F

    from lav.capture import received

    scale = DIM**-0.5
    if name == "sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v, scale=scale)
    if name == "naive":
        return lambda: torch.softmax(q[0] @ k[0].transpose(-1, -2) * scale, dim=-1).sum(dim=-2)
    return lambda: received(q[0], k[0], scale, method=name)[0]


def _times(n: int, rounds: int) -> dict[str, float]:
    from lav.capture import received

    q, k, v = _inputs(n)
    received(q[0, :, :64], k[0, :, :64], DIM**-0.5)  # feature detection off the clock
    names = ["sdpa", "auto", "chunked"] + (["naive"] if n <= NAIVE_MAX_N else [])
    fns = {name: _method(name, q, k, v) for name in names}
    best = dict.fromkeys(names, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _memory(name: str, n: int) -> float:
    from lav.capture import received

    q, k, v = _inputs(n)
    received(q[0, :, :64], k[0, :, :64], DIM**-0.5)
    fn = _method(name, q, k, v)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024


def _sub(*args: str):
    cmd = [sys.executable, __file__, *args]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1024, 4096, 17052])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--memory", nargs=2, metavar=("METHOD", "N"))
    ap.add_argument("--times", type=int, metavar="N")
    args = ap.parse_args()
    if args.memory:
        print(json.dumps(_memory(args.memory[0], int(args.memory[1]))))
        return
    if args.times:
        print(json.dumps(_times(args.times, args.rounds)))
        return

    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; H={HEADS}, head dim {DIM}, float32, CPU"
    )
    print(
        "| N patches | one sdpa call | received (fused) | received (exact chunks) | naive full softmax "
        "| extra memory: fused / chunks / naive |"
    )
    print("|" + "---|" * 6)
    for n in args.sizes:
        rounds = args.rounds if n <= NAIVE_MAX_N else 2
        t = _sub("--times", str(n), "--rounds", str(rounds))
        mem = {name: _sub("--memory", name, str(n)) for name in ("auto", "chunked")}
        if n <= NAIVE_MAX_N:
            naive = f"{t['naive'] / t['sdpa']:.2f}x"
            naive_mem = f"{_sub('--memory', 'naive', str(n)):.0f} MB"
        else:
            naive = "not run"
            naive_mem = f"needs {HEADS * n * n * 4 / 1e9:.1f} GB (16·N²·4 B)"
        print(
            f"| {n:,} | {t['sdpa']:.3f} s | {t['auto'] / t['sdpa']:.2f}x | {t['chunked'] / t['sdpa']:.2f}x "
            f"| {naive} | {mem['auto']:.0f} MB / {mem['chunked']:.0f} MB / {naive_mem} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
