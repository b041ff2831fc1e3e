"""Model switching on arith with tiny-s and tiny-l: entropy-adaptive decoding and the problem-level cascade.

    python benchmarks/switching.py            # 300 dev problems
    python benchmarks/switching.py --quick    # 40 problems, fewer points

1. End points: each model alone, greedy (``sample``).
2. ``entropy_switch`` (EAD) as ``tau`` varies (window 3, dwell 4), then a few windows and dwells at
   two ``tau``: accuracy, the large model's share of the generated tokens, FLOPs per problem.
3. ``cascade`` as its threshold varies, with two confidence signals: ``agreement`` of 4 tiny-s samples
   (temperature 0.7) and ``certainty`` of one greedy tiny-s sample (its geometric-mean token
   probability); the escalated problems are answered by tiny-l greedily.
4. For each operator: the point with the least large-model share keeping >= 96.7% of tiny-l's accuracy
   (what EAD reports: 43%), and the largest FLOP saving against tiny-l alone keeping >= 90% of it (and
   the largest saving of idealized latency on the H100 profile, where decoding is memory-bound).

Tokens per model are the engines' own counts (each point runs on fresh engines); FLOPs are the
ledger's (the large model's catch-up prefill and the small model's samples before an escalation
included). Writes ``benchmarks/results/switching.json`` (``switching_quick.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TAUS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0)
VARIANTS = ((1, 4), (5, 4), (3, 1), (3, 8))  # (window, dwell) at two tau
AGREEMENT = (0.0, 0.5, 0.75, 1.0, 1.01)
CERTAINTY = (0.0, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 1.01)
MAX_TOKENS = 160


def spec(node: dict[str, Any]) -> Any:
    """A one-node arith pipeline on tiny-s (``small``) and tiny-l (``large``)."""
    from archon.spec import parse_spec

    return parse_spec({
        "engines": {"small": {"model": "tiny-s"}, "large": {"model": "tiny-l"}},
        "budget": {"hardware": "h100"},
        "pipeline": [{"id": "answer", **node}],
    })  # fmt: skip


def point(problems: list[Any], node: dict[str, Any], **label: Any) -> dict[str, Any]:
    """Run one configuration on fresh engines: accuracy, FLOPs per problem, each model's generated tokens."""
    from archon.runtime import Runner

    runner = Runner(spec(node))
    start = time.perf_counter()
    s = asyncio.run(runner.run(problems))
    wall = time.perf_counter() - start
    built = {e.name: e.usage.generated_tokens for e in runner.pool.built()}  # the engines this run used
    tokens = {"small": built.get("tiny-s", 0), "large": built.get("tiny-l", 0)}
    asyncio.run(runner.aclose())
    total = sum(tokens.values())
    row = {**label, "accuracy": s["accuracy"], "flops_per_problem": s["per_problem"]["flops"],
           "latency_ms_per_problem": 1e3 * s["per_problem"]["latency"],
           "large_share": tokens["large"] / total if total else 0.0, "small_tokens": tokens["small"],
           "large_tokens": tokens["large"], "errors": s["errors"], "wall_seconds": round(wall, 2)}  # fmt: skip
    if node["op"] == "cascade":
        events = [next(e for e in r["trace"] if e.get("op") == "cascade") for r in runner.records]
        row["escalated"] = sum(e["escalated"] for e in events) / len(events)
    if node["op"] == "entropy_switch":
        events = [next(e for e in r["trace"] if e.get("op") == "entropy_switch") for r in runner.records]
        row["switches_per_problem"] = sum(e["switches"] for e in events) / len(events)
    print(json.dumps(row), flush=True)
    return row


def ead(tau: float, window: int = 3, dwell: int = 4) -> dict[str, Any]:
    """An ``entropy_switch`` node, greedy."""
    params = {"small": "small", "large": "large", "tau": tau, "window": window, "dwell": dwell,
              "temperature": 0, "max_tokens": MAX_TOKENS}  # fmt: skip
    return {"op": "entropy_switch", "params": params}


def cascade(signal: str, threshold: float) -> dict[str, Any]:
    """A ``cascade`` node: 4 tiny-s samples (agreement) or 1 greedy (certainty); tiny-l greedy when escalated."""
    n, temperature = (4, 0.7) if signal == "agreement" else (1, 0.0)
    params = {"small": "small", "large": "large", "n": n, "n_large": 1, "signal": signal, "threshold": threshold,
              "temperature": temperature, "max_tokens": MAX_TOKENS}  # fmt: skip
    return {"op": "cascade", "params": params}


def best_points(rows: list[dict[str, Any]], large: dict[str, Any]) -> dict[str, Any]:
    """The least large share keeping 96.7% of tiny-l's accuracy; the largest FLOP saving keeping 90%."""
    keep967 = [r for r in rows if r["accuracy"] >= 0.967 * large["accuracy"]]
    keep90 = [r for r in rows if r["accuracy"] >= 0.90 * large["accuracy"]]
    least = min(keep967, key=lambda r: (r["large_share"], r["flops_per_problem"]), default=None)
    cheap = min(keep90, key=lambda r: r["flops_per_problem"], default=None)
    fast = min(keep90, key=lambda r: r["latency_ms_per_problem"], default=None)
    return {
        "least_large_share_keeping_96.7pct": least,
        "largest_flop_saving_keeping_90pct": None if cheap is None else {
            **cheap, "flop_saving": 1 - cheap["flops_per_problem"] / large["flops_per_problem"],
            "accuracy_kept": cheap["accuracy"] / large["accuracy"]},
        "largest_latency_saving_keeping_90pct": None if fast is None else {
            **fast, "latency_saving": 1 - fast["latency_ms_per_problem"] / large["latency_ms_per_problem"]},
    }  # fmt: skip


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="40 problems, fewer points")
    ap.add_argument("--problems", type=int, default=300, help="arith dev problems")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    import torch

    from archon import data

    problems = data.load("arith", "dev")[: 40 if args.quick else args.problems]
    taus = (0.0, 0.1, 0.3, 1.2) if args.quick else TAUS
    alone = {}
    for name in ("small", "large"):
        node = {"op": "sample", "params": {"engine": name, "n": 1, "temperature": 0, "max_tokens": MAX_TOKENS}}
        alone[name] = point(problems, node, model=name)
    curve = [point(problems, ead(t), tau=t, window=3, dwell=4) for t in taus]
    variants = []
    if not args.quick:
        for t in (0.1, 0.3):
            variants += [point(problems, ead(t, w, d), tau=t, window=w, dwell=d) for w, d in VARIANTS]
    casc = []
    for signal, thresholds in (("agreement", AGREEMENT), ("certainty", CERTAINTY)):
        for th in thresholds if not args.quick else thresholds[::3]:
            casc.append(point(problems, cascade(signal, th), signal=signal, threshold=th))
    report = {
        "machine": {"cpu": platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "date": time.strftime("%Y-%m-%d"),
        "problems": len(problems),
        "alone": alone,
        "entropy_switch": curve,
        "entropy_switch_variants": variants,
        "cascade": casc,
        "best": {
            "entropy_switch": best_points(curve + variants, alone["large"]),
            "cascade": best_points(casc, alone["large"]),
        },
    }
    print(json.dumps(report["best"], indent=1))
    name = "switching_quick.json" if args.quick else "switching.json"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / name).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.results / name}")


if __name__ == "__main__":
    main()
