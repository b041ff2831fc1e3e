"""``archon serve`` under load: 500 requests, 64 concurrent, against the same requests one at a time.

    python benchmarks/serve.py             # 500 requests (64 concurrent), then the same 500 one at a time
    python benchmarks/serve.py --quick     # 64 requests

A real server process (``archon serve``, loopback) serves a pipeline on tiny-l (``self_consistency``, 4
samples at temperature 1.0, at most 160 tokens); each request is a distinct arith dev question. Reported
for both ways: throughput (requests/s), p50/p99 latency per request, status codes (5xx must be zero) and
the engine's batching (calls per batch, from ``/health``). Writes ``benchmarks/results/serve.json``
(``serve_quick.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

SPEC = """
engines:
  policy: {kind: transformers, model: tiny-l}
budget: {hardware: h100}
pipeline:
  - id: answer
    op: self_consistency
    params: {engine: policy, n: 4, temperature: 1.0, max_tokens: 160}
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(spec: Path, port: int, concurrency: int) -> subprocess.Popen:
    """An ``archon serve`` process, once ``/health`` answers."""
    import httpx2 as httpx

    exe = shutil.which("archon", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "archon"]
    proc = subprocess.Popen([*cmd, "serve", str(spec), "--port", str(port), "--max-concurrency", str(concurrency),
                             "--max-queue", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not come up")


async def fire(url: str, questions: list[str], concurrency: int) -> dict[str, Any]:
    """Send every question with at most ``concurrency`` in flight: latencies, codes, wall seconds."""
    import httpx2 as httpx

    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    codes: list[int] = []

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency + 4)) as client:

        async def one(q: str) -> None:
            async with gate:
                t = time.perf_counter()
                r = await client.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": q}]})
                latencies.append(time.perf_counter() - t)
                codes.append(r.status_code)

        before = (await client.get(f"{url}/health")).json()["engines"]["policy"]
        start_t = time.perf_counter()
        await asyncio.gather(*(one(q) for q in questions))
        wall = time.perf_counter() - start_t
        after = (await client.get(f"{url}/health")).json()["engines"]["policy"]
    lat = sorted(latencies)
    batches = after["batches"] - before["batches"]
    return {
        "requests": len(questions),
        "concurrency": concurrency,
        "wall_seconds": round(wall, 2),
        "requests_per_second": round(len(questions) / wall, 2),
        "p50_seconds": round(statistics.median(lat), 4),
        "p99_seconds": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 4),
        "codes": {str(c): codes.count(c) for c in sorted(set(codes))},
        "server_errors": sum(c >= 500 for c in codes),
        "engine_batches": batches,
        "calls_per_batch": round((after["items"] - before["items"]) / batches, 2) if batches else None,
    }


def main() -> None:
    """Serve, load, compare, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="64 requests")
    args = ap.parse_args()
    if args.quick:
        args.requests = 64
    import torch

    from archon import data

    questions = [p.question for p in data.load("arith", "test")[: args.requests]]
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "sc.yaml"
        spec.write_text(SPEC)
        port = _port()
        proc = start(spec, port, args.concurrency)
        url = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(fire(url, questions[:4], 4))  # warm-up (not reported)
            concurrent = asyncio.run(fire(url, questions, args.concurrency))
            print(f"concurrent: {concurrent}", flush=True)
            sequential = asyncio.run(fire(url, questions, 1))
            print(f"one at a time: {sequential}", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    report = {
        "what": "archon serve, self_consistency (4 samples) on tiny-l, distinct arith test questions, loopback",
        "concurrent": concurrent,
        "one_at_a_time": sequential,
        "throughput_ratio": round(concurrent["requests_per_second"] / sequential["requests_per_second"], 2),
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__},
    }  # fmt: skip
    path = RESULTS / ("serve_quick.json" if args.quick else "serve.json")
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"throughput {report['throughput_ratio']}x; wrote {path}")


if __name__ == "__main__":
    main()
