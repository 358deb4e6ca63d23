"""Received attention (edge map of one vision block) against one sdpa call and the naive method.

Shape of Qwen3-VL-8B's vision tower: 16 heads, head dim 72, float32 on this machine's CPU.
Each measurement runs in a fresh subprocess so its peak memory (ru_maxrss above the inputs) is its
own. The naive method (the full (H, N, N) softmax, as output_attentions does) only runs where it
fits; beyond that its size is given by arithmetic.

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


def _one(method: str, n: int, repeat: int) -> dict:
    import torch
    import torch.nn.functional as F

    from lav.capture import received

    torch.manual_seed(0)
    q = torch.randn(1, HEADS, n, DIM)
    k = torch.randn(1, HEADS, n, DIM)
    v = torch.randn(1, HEADS, n, DIM)
    scale = DIM**-0.5

    def run():
        if method == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, scale=scale)
        if method == "naive":
            return torch.softmax(q[0] @ k[0].transpose(-1, -2) * scale, dim=-1).sum(dim=-2)
        return received(q[0], k[0], scale, method=method)[0]

    if method != "sdpa":
        received(q[0, :, :64], k[0, :, :64], scale)  # feature detection off the clock
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": min(times), "extra_mb": (peak - base) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1024, 4096, 17052])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "N"))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(args.one[0], int(args.one[1]), args.repeat)))
        return

    def measure(method: str, n: int) -> dict:
        repeat = args.repeat if n <= 4096 else 1
        cmd = [sys.executable, __file__, "--one", method, str(n), "--repeat", str(repeat)]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; H={HEADS}, head dim {DIM}, float32, CPU"
    )
    header = "| N patches | sdpa (s) | received fused | received chunked | naive full softmax | extra memory: fused / chunked / naive |"
    print(header)
    print("|" + "---|" * 6)
    for n in args.sizes:
        sdpa = measure("sdpa", n)
        fused = measure("auto", n)
        chunked = measure("chunked", n)
        naive_bytes = HEADS * n * n * 4
        if n <= NAIVE_MAX_N:
            naive = measure("naive", n)
            naive_txt = f"{naive['seconds'] / sdpa['seconds']:.2f}x"
            naive_mem = f"{naive['extra_mb']:.0f} MB"
        else:
            naive_txt = "not run"
            naive_mem = f"needs {naive_bytes / 1e9:.1f} GB (16·N²·4 B)"
        print(
            f"| {n:,} | {sdpa['seconds']:.3f} | {fused['seconds'] / sdpa['seconds']:.2f}x "
            f"| {chunked['seconds'] / sdpa['seconds']:.2f}x | {naive_txt} "
            f"| {fused['extra_mb']:.0f} MB / {chunked['extra_mb']:.0f} MB / {naive_mem} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
