"""Large Language Monkeys' curves on arith: coverage and majority@k of tiny-l and tiny-s up to 256 samples.

    python benchmarks/scaling.py              # 100 dev problems, 256 samples each, both models
    python benchmarks/scaling.py --quick      # 10 problems, 32 samples

Each model runs ``sample`` (temperature 1.0, at most 160 tokens) through ``archon run``'s runtime into a
run directory (``benchmarks/results/tmp/scaling/<model>``: results.jsonl and summary.json, not
committed); then ``archon report``'s code draws both on one figure and fits coverage by the
exponentiated power law ``c(k) = exp(a k^b)``. Writes ``benchmarks/results/scaling.json`` (curves,
fits, FLOPs, wall seconds, machine) and ``scaling.png`` next to it (``scaling_quick.*`` for
``--quick``); the interactive ``scaling.html`` (5 MB: plotly inlined) stays in the run directory's
``figure/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("tiny-l", "tiny-s")


def run_model(model: str, problems: list[Any], n: int, out: Path) -> float:
    """One run of ``n`` samples per problem into ``out``; its wall seconds."""
    from archon.runtime import Runner
    from archon.spec import parse_spec

    spec = {
        "engines": {"policy": {"model": model}},
        "budget": {"hardware": "h100"},
        "pipeline": [{"id": "draw", "op": "sample",
                      "params": {"engine": "policy", "n": n, "temperature": 1.0, "max_tokens": 160}}],
    }  # fmt: skip
    if out.exists():
        shutil.rmtree(out)
    runner = Runner(parse_spec(spec), seed=0)
    start = time.perf_counter()
    try:
        asyncio.run(runner.run(problems, out=out))
    finally:
        asyncio.run(runner.aclose())
    return time.perf_counter() - start


def main() -> None:
    """Run both models, draw the figure, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="10 problems, 32 samples")
    args = parser.parse_args()
    if args.quick:
        args.problems, args.samples = 10, 32

    import torch

    from archon import data
    from archon.scaling_report import load_run, write_scaling_report

    problems = data.load("arith", "dev")[: args.problems]
    suffix = "_quick" if args.quick else ""
    runs_dir = RESULTS / "tmp" / f"scaling{suffix}"
    seconds = {}
    for model in MODELS:
        seconds[model] = run_model(model, problems, args.samples, runs_dir / model)
        print(f"{model}: {seconds[model]:.0f} s", flush=True)
    curves = [load_run(runs_dir / m, m) for m in MODELS]
    figure_dir = runs_dir / "figure"
    written = write_scaling_report(curves, figure_dir)
    shutil.copy(figure_dir / "scaling.png", RESULTS / f"scaling{suffix}.png")  # the HTML (5 MB) stays in tmp
    report = {
        "what": "coverage (unbiased pass@k) and majority@k of samples at temperature 1.0 on arith dev",
        "problems": args.problems,
        "samples": args.samples,
        "fit_form": "coverage(k) = exp(a * k**b), least squares on log coverage",
        "models": {
            c.name: {"k": c.k, "pass@k": c.coverage, "majority@k": c.majority, "flops_per_problem": c.flops,
                     "fit": written["fits"][c.name], "wall_seconds": round(seconds[c.name], 1)}
            for c in curves
        },
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__},
    }  # fmt: skip
    path = RESULTS / f"scaling{suffix}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    for c in curves:
        fit = written["fits"][c.name]
        print(f"{c.name}: pass@1 {c.coverage[0]:.3f} pass@{c.k[-1]} {c.coverage[-1]:.3f} "
              f"majority@{c.k[-1]} {c.majority[-1] if c.majority else float('nan'):.3f} fit {fit}")  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
