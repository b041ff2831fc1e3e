"""The example pipelines on the arith dev split: accuracy, FLOPs per problem, runtime overhead and speed-up.

    python benchmarks/pipelines.py            # the whole dev split (a few minutes on 2 cores)
    python benchmarks/pipelines.py --quick    # 24 problems
    python benchmarks/pipelines.py --device cuda   # engines and reward models on a GPU

1. Each spec in ``examples/`` on the dev split: accuracy, coverage, FLOPs, tokens and idealized
   latency per problem.
2. Orchestration overhead on ``best_of_n.yaml``: the run's wall time minus the time spent in model
   forward passes (engines and reward models), as a share of that model time.
3. ``best_of_n.yaml`` over the split with all problems concurrent vs one problem at a time.

Writes ``benchmarks/results/pipelines.json`` (``pipelines_quick.json`` with ``--quick``).
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
EXAMPLES = ["greedy", "best_of_n", "self_consistency", "ensemble"]


def load_example(name: str, device: str = "cpu") -> Any:
    """One example spec, with its transformers engines and reward models moved to ``device``."""
    from archon.spec import load_spec

    spec = load_spec(ROOT / "examples" / f"{name}.yaml")
    if device == "cpu":
        return spec
    engines = {k: e.model_copy(update={"device": device}) for k, e in spec.engines.items()}
    verifiers = {
        k: v.model_copy(update={"options": {**v.options, "device": device}}) if v.kind == "reward_model" else v
        for k, v in spec.verifiers.items()
    }
    return spec.model_copy(update={"engines": engines, "verifiers": verifiers})


def run_spec(name: str, problems: list[Any], *, concurrency: int = 64, device: str = "cpu") -> dict[str, Any]:
    """Run one example; return its summary with model time and wall time."""
    from archon.runtime import Runner

    runner = Runner(load_example(name, device), concurrency=concurrency)
    runner.prepare()  # load the models before timing
    start = time.perf_counter()
    summary = asyncio.run(runner.run(problems))
    wall = time.perf_counter() - start
    model = sum(getattr(getattr(e, "stats", None), "compute_seconds", 0.0) for e in runner.pool.built())
    model += sum(getattr(v, "compute_seconds", 0.0) for v in runner._verifiers.values())
    asyncio.run(runner.aclose())
    return {"summary": summary, "wall": wall, "model_seconds": model}


def main() -> None:
    """Run the examples, print a table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--results",
        type=Path,
        default=ROOT / "benchmarks" / "results",
        help="folder the JSON is written to (default: benchmarks/results)",
    )
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
    args = ap.parse_args()

    import torch

    from archon import data

    problems = data.load("arith", "dev")[: 24 if args.quick else None]
    rows: dict[str, Any] = {}
    for name in EXAMPLES:
        r = run_spec(name, problems, device=args.device)
        s = r["summary"]
        per = s["per_problem"]
        rows[name] = {
            "accuracy": s["accuracy"],
            "coverage": s["coverage"],
            "flops_per_problem": per["flops"],
            "tokens_per_problem": per["tokens"],
            "latency_per_problem": per["latency"],
            "wall_seconds": r["wall"],
            "model_seconds": r["model_seconds"],
            "overhead_share": (r["wall"] - r["model_seconds"]) / r["model_seconds"] if r["model_seconds"] else None,
        }
        print(
            f"{name:<18} accuracy {s['accuracy']:.3f}  coverage {s['coverage']:.3f}  "
            f"{per['flops'] / 1e9:7.3f} GFLOP/problem  {r['wall']:6.1f} s  overhead {rows[name]['overhead_share']:.1%}",
            flush=True,
        )
    one = run_spec("best_of_n", problems, concurrency=1, device=args.device)
    speedup = one["wall"] / rows["best_of_n"]["wall_seconds"]
    print(f"best_of_n one problem at a time: {one['wall']:.1f} s -> concurrent speed-up {speedup:.2f}x")
    report = {
        "machine": {
            "cpu": platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        },
        "date": time.strftime("%Y-%m-%d"),
        "problems": len(problems),
        "examples": rows,
        "best_of_n_one_at_a_time_seconds": one["wall"],
        "best_of_n_concurrent_speedup": speedup,
    }
    stem = "pipelines" + ("_quick" if args.quick else "") + ("" if args.device == "cpu" else "_cuda")
    out = args.results / f"{stem}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
