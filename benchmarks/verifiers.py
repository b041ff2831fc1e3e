"""Process-reward throughput and accuracy on arith samples of tiny-l.

    python benchmarks/verifiers.py            # 200 dev problems x 4 samples (about a minute on 2 cores)
    python benchmarks/verifiers.py --quick    # 20 problems x 2 samples

1. Throughput of ``tiny-prm``: steps scored per second when all candidates' calls run concurrently
   (batched by the micro-batcher) vs one candidate at a time; the two alternate run by run in this
   process (median of ``--repeats``).
2. Accuracy, as figures other PRMs can be compared with: the step-level ROC AUC of ``tiny-prm``
   against the exact step checker (a step is good while every step up to it is right), the
   solution-level AUC of its minimum step score and of ``tiny-orm``, on fresh ``tiny-l`` samples
   (temperature 1.0) of arith ``dev`` problems.

Writes ``benchmarks/results/verifiers.json`` (``verifiers_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    """Sample, score, time, print and write the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--results",
        type=Path,
        default=ROOT / "benchmarks" / "results",
        help="folder the JSON is written to (default: benchmarks/results)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    from archon import data
    from archon.core import Candidate, GenRequest
    from archon.core.metrics import roc_auc
    from samplers.transformers_engine import TransformersEngine
    from verifiers.reward import RewardModel
    from verifiers.steps import ArithStepChecker

    n_problems, n_samples = (20, 2) if args.quick else (200, 4)
    problems = data.load("arith", "dev")[:n_problems]
    engine = TransformersEngine("tiny-l")

    async def draw() -> list[Any]:
        reqs = [GenRequest(p.messages(), n=n_samples, max_tokens=160, seed=i) for i, p in enumerate(problems)]
        return await asyncio.gather(*(engine.generate(r) for r in reqs))

    t = time.perf_counter()
    results = asyncio.run(draw())
    sample_seconds = time.perf_counter() - t
    engine.close()
    cands = [[Candidate(c.text) for c in r.completions] for r in results]

    # incremental off: the timed repeats score the same candidates, which an incremental model remembers
    prm, orm, checker = RewardModel("tiny-prm", incremental=False), RewardModel("tiny-orm"), ArithStepChecker()

    async def batched() -> list[list[list[float]]]:
        # one call per candidate, all concurrent: what batching across calls gains (a call's own duplicate
        # candidates are scored once, which would flatter this figure)
        calls = [prm.score_steps(p, [c]) for p, cs in zip(problems, cands, strict=True) for c in cs]
        flat = iter(await asyncio.gather(*calls))
        return [[next(flat)[0] for _ in cs] for cs in cands]

    async def one_by_one() -> list[list[list[float]]]:
        out = []
        for p, cs in zip(problems, cands, strict=True):
            out.append([(await prm.score_steps(p, [c]))[0] for c in cs])
        return out

    steps = sum(len(c.steps()) for cs in cands for c in cs)
    timings: dict[str, list[float]] = {"batched": [], "one at a time": []}
    prm_steps = asyncio.run(batched())  # warm-up, and the scores
    for r in range(args.repeats):
        for name in ("batched", "one at a time") if r % 2 == 0 else ("one at a time", "batched"):
            t = time.perf_counter()
            asyncio.run(batched() if name == "batched" else one_by_one())
            timings[name].append(time.perf_counter() - t)
    throughput = {k: steps / statistics.median(v) for k, v in timings.items()}

    async def exact() -> list[list[list[float]]]:
        return await asyncio.gather(*(checker.score_steps(p, cs) for p, cs in zip(problems, cands, strict=True)))

    async def outcomes() -> list[list[float]]:
        return await asyncio.gather(*(orm.score(p, cs) for p, cs in zip(problems, cands, strict=True)))

    labels = asyncio.run(exact())
    orm_scores = asyncio.run(outcomes())
    step_scores = [s for pp in prm_steps for c in pp for s in c]
    step_labels = [bool(x) for pp in labels for c in pp for x in c]
    sol_labels = [all(c) for pp in labels for c in pp]
    sol_min = [min(c) if c else 0.0 for pp in prm_steps for c in pp]
    sol_orm = [s for pp in orm_scores for s in pp]
    figures = {
        "problems": n_problems,
        "samples per problem": n_samples,
        "steps": steps,
        "good steps share": sum(step_labels) / len(step_labels),
        "correct solutions share": sum(sol_labels) / len(sol_labels),
        "tiny-prm step AUC": roc_auc(step_scores, step_labels),
        "tiny-prm solution AUC (min)": roc_auc(sol_min, sol_labels),
        "tiny-orm solution AUC": roc_auc(sol_orm, sol_labels),
        "steps/s batched": throughput["batched"],
        "steps/s one at a time": throughput["one at a time"],
        "batched speed-up": throughput["batched"] / throughput["one at a time"],
        "sampling seconds": sample_seconds,
    }
    for k, v in figures.items():
        print(f"{k:<32}{v:12.3f}" if isinstance(v, float) else f"{k:<32}{v:12d}")
    report = {
        "machine": {"cpu": platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "date": time.strftime("%Y-%m-%d"),
        "figures": figures,
        "timings": timings,
    }
    out = args.results / ("verifiers_quick.json" if args.quick else "verifiers.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
