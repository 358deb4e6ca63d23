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
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

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


def multipart(image: bytes, instruction: str) -> tuple[bytes, str]:
    """The analyze form as one body (built once: the client's own encoding stays off the clock)."""
    boundary = "lav-bench-boundary"
    fields = [("instruction", instruction), ("compare_base", "false")]
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="screen.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + image
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Client:
    """One keep-alive connection (stdlib http.client: httpx added ~45 ms to every upload here, its
    own latency, not the server's)."""

    def __init__(self, url: str) -> None:
        host, port = url.split("//", 1)[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()

    def close(self) -> None:
        self.conn.close()


def one_request(http: Client, form: tuple[bytes, str], stats: dict) -> float:
    """Submit -> wait on the job's events (no polling) -> the result record; seconds."""
    body, ctype = form
    http.close()  # a connection left idle may have been closed by the server (keep-alive timeout)
    t0 = time.perf_counter()
    while True:
        status, headers, data = http.call("POST", "/api/analyze", body, {"Content-Type": ctype})
        headers = {k.lower(): v for k, v in headers.items()}
        if status == 503 and "retry-after" in headers and "error" in json.loads(data):
            stats["busy"] += 1
            time.sleep(min(float(headers["retry-after"]), 2.0))
            continue
        if status != 202:
            stats["errors"].append(f"{status} {data[:200]!r}")
            return float("nan")
        break
    job = json.loads(data)["id"]
    http.conn.request("GET", f"/api/jobs/{job}/events")
    events = http.conn.getresponse()
    end = None
    while end is None:
        line = events.readline()
        if not line:
            break
        if line.startswith(b"data:") and b'"state"' in line:
            snap = json.loads(line[5:])
            if snap.get("state") in ("done", "failed", "cancelled"):
                end = snap
    events.close()
    http.close()  # the events stream ends the connection's use; http.client reconnects on the next call
    if end is None or end["state"] != "done":
        stats["errors"].append(json.dumps(end))
        return float("nan")
    status, _, _ = http.call("GET", f"/api/results/{job}")
    if status != 200:
        stats["errors"].append(f"result {status}")
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
    form = multipart(image, instruction)
    proc, url = start_server(args.max_queue)
    stats: dict = {"busy": 0, "errors": []}
    latencies: list[float] = []
    memory: list[float] = []
    http = Client(url)
    try:
        one_request(http, form, stats)  # warm-up: first-call costs out of the numbers
        memory.append(rss_mb(proc.pid))
        lock = threading.Lock()

        def client() -> None:
            own = Client(url)
            try:
                for _ in range(args.requests):
                    t = one_request(own, form, stats)
                    with lock:
                        latencies.append(t)
            finally:
                own.close()

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

        def local() -> float:
            t1 = time.perf_counter()
            viz.analyze(assets.SCREEN, instruction, **same)
            return time.perf_counter() - t1

        for rep in range(args.pairs):  # the order alternates from pair to pair
            if rep % 2 == 0:
                served = one_request(http, form, stats)
                here = local()
            else:
                here = local()
                served = one_request(http, form, stats)
            ratios.append(served / here)
    finally:
        http.close()
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
