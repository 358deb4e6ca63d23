"""`lav serve` under load on loopback: C concurrent clients x R requests against the demo model.

Every request must complete or get a clean 503 with Retry-After (then the client waits and tries
again, counted); any other status is a server error and fails the run. Reported: p50 / p95 latency
of completed requests (submit -> result record), the server's resident memory over the run (flat),
and the overhead of an analysis through the server against the same analysis in process, as pair
ratios (min / median / max) from alternating runs on one quiet queue.

    python bench/serve_load.py                    # 16 clients x 10 requests (the README numbers)
    python bench/serve_load.py --clients 2 --requests 2 --pairs 2   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from lav.demo import assets


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(max_queue: int) -> tuple[subprocess.Popen, str]:
    cmd = [
        sys.executable,
        "-m",
        "lav.cli",
        "serve",
        "--port",
        "0",
        "--device",
        "cpu",
        "--max-queue",
        str(max_queue),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:
        if "serving on" in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
            return proc, line.split("serving on ", 1)[1].split()[0].rstrip("/")
    raise SystemExit("lav serve did not start")


def one_request(http: httpx.Client, image: bytes, instruction: str, stats: dict) -> float:
    t0 = time.perf_counter()
    while True:
        r = http.post(
            "/api/analyze",
            files={"image": ("screen.png", image, "image/png")},
            data={"instruction": instruction, "compare_base": "false"},
        )
        if r.status_code == 503 and "retry-after" in r.headers and "error" in r.json():
            stats["busy"] += 1
            time.sleep(min(float(r.headers["retry-after"]), 2.0))
            continue
        if r.status_code != 202:
            stats["errors"].append(f"{r.status_code} {r.text[:200]}")
            return float("nan")
        break
    job = r.json()["id"]
    while True:
        snap = http.get(f"/api/jobs/{job}").json()
        if snap["state"] == "done":
            break
        if snap["state"] in ("failed", "cancelled"):
            stats["errors"].append(json.dumps(snap))
            return float("nan")
        time.sleep(0.02)
    rec = http.get(f"/api/results/{job}")
    if rec.status_code != 200:
        stats["errors"].append(f"result {rec.status_code}")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument(
        "--pairs", type=int, default=5, help="alternating server / in-process pairs for the overhead"
    )
    ap.add_argument("--max-queue", type=int, default=8)
    args = ap.parse_args()

    image = assets.SCREEN.read_bytes()
    instruction = assets.instruction()
    proc, url = start_server(args.max_queue)
    stats: dict = {"busy": 0, "errors": []}
    latencies: list[float] = []
    memory: list[float] = []
    try:
        with httpx.Client(base_url=url, timeout=600) as http:
            one_request(http, image, instruction, stats)  # warm-up: first-call costs out of the numbers
            memory.append(rss_mb(proc.pid))
            lock = threading.Lock()

            def client() -> None:
                with httpx.Client(base_url=url, timeout=600) as own:
                    for _ in range(args.requests):
                        t = one_request(own, image, instruction, stats)
                        with lock:
                            latencies.append(t)

            stop = threading.Event()

            def sample_memory() -> None:
                while not stop.wait(0.5):
                    memory.append(rss_mb(proc.pid))

            sampler = threading.Thread(target=sample_memory, daemon=True)
            sampler.start()
            t0 = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            stop.set()
            sampler.join()
            memory.append(rss_mb(proc.pid))

            # Overhead: the same analysis through the server (quiet queue) vs in this process.
            import lav

            viz = lav.load(assets.BASE, adapter=assets.ADAPTER, device="cpu")
            # The same layers as `lav serve` records for the demo model (every block and layer).
            same = {"edge_layers": "all", "focus_layers": "all"}
            viz.analyze(assets.SCREEN, instruction, **same)  # warm-up
            ratios = []
            for _ in range(args.pairs):
                served = one_request(http, image, instruction, stats)
                t1 = time.perf_counter()
                viz.analyze(assets.SCREEN, instruction, **same)
                local = time.perf_counter() - t1
                ratios.append(served / local)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)

    done = sorted(t for t in latencies if t == t)
    q = statistics.quantiles(done, n=20) if len(done) >= 2 else done * 19
    report = {
        "clients": args.clients,
        "requests_each": args.requests,
        "completed": len(done),
        "server_errors": len(stats["errors"]),
        "busy_503_retried": stats["busy"],
        "wall_s": round(wall, 2),
        "latency_p50_s": round(statistics.median(done), 3) if done else None,
        "latency_p95_s": round(q[18], 3) if done else None,
        "rss_mb_first_last_max": [round(memory[0], 1), round(memory[-1], 1), round(max(memory), 1)],
        "overhead_ratio_min_median_max": [
            round(min(ratios), 3),
            round(statistics.median(ratios), 3),
            round(max(ratios), 3),
        ],
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))
    for e in stats["errors"][:5]:
        print("error:", e, file=sys.stderr)
    return 1 if stats["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
