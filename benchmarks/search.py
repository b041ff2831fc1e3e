"""Search operators' speed figures on the arith test split: reuse of KV by the policy and the PRM, wall time.

``python benchmarks/search.py scaling [...]`` runs the accuracy-vs-FLOPs grid instead
(``benchmarks/search_scaling.py``, with the same arguments).

What it measures (issue 16's speed targets):

- prefill tokens the policy computed with prefix reuse, against what it would compute without (the
  computed tokens plus those the prefix cache served), for beam search and particle filtering;
- tokens the PRM computed with incremental scoring, against the same search with ``incremental:
  false`` (every partial solution rescored from scratch); the two searches must choose the same
  answers (the scores agree to 1e-6);
- the wall time of beam search (N = 16) over the problems against best-of-16 with the same PRM, all
  problems concurrently, and of beam search and particle filtering one problem at a time.

``python benchmarks/search.py`` writes ``benchmarks/results/search.json``; ``--quick`` runs 4 problems,
``--problems N`` the first N (default 64).
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
sys.path.insert(0, str(ROOT))  # before benchmarks/, whose search.py and verifiers.py would shadow the packages

POLICY = {"kind": "transformers", "model": "tiny-l"}
STEP = {"engine": "policy", "prm": "prm", "aggregation": "min", "temperature": 0.8}
PIPELINES: dict[str, dict[str, Any]] = {
    "best_of_16": {"op": "best_of_n", "params": {"engine": "policy", "n": 16, "temperature": 0.8,
                                                  "max_tokens": 160, "verifier": "prm"}},
    "beam_16": {"op": "beam_search", "params": {**STEP, "n": 16, "width": 4, "max_steps": 10}},
    "particles_16": {"op": "particle_filter", "params": {**STEP, "particles": 16, "max_steps": 10}},
}  # fmt: skip


def run_case(case: str, problems: list, *, incremental: bool = True, concurrency: int | None = None) -> dict:
    """Run one pipeline over ``problems``; its accuracy, answers, wall time and token counts."""
    from archon.runtime import Runner
    from archon.spec import parse_spec

    spec = parse_spec(
        {
            "engines": {"policy": POLICY},
            "verifiers": {
                "prm": {"kind": "reward_model", "model": "tiny-prm", "options": {"incremental": incremental}}
            },
            "dataset": {"name": "arith", "split": "test"},
            "budget": {"hardware": "h100"},
            "pipeline": [{"id": "search", **PIPELINES[case]}],
        }
    )
    runner = Runner(spec, concurrency=concurrency or 64)
    try:
        runner.prepare()  # models loaded before the clock starts
        start = time.perf_counter()
        summary = asyncio.run(runner.run(problems))
        wall = time.perf_counter() - start
        engine = runner.pool.get("policy")
        prm = runner.resources.verifiers.get("prm")
        return {
            "accuracy": summary["accuracy"],
            "errors": summary["errors"],
            "answers": [(r["candidates"][0]["answer"] if r["candidates"] else None) for r in runner.records],
            "wall_seconds": wall,
            "flops_per_problem": summary["per_problem"]["flops"],
            "policy_prefill_computed": engine.stats.prefill_tokens,
            "policy_prefill_reused": engine.prefix_cache.stats.reused_tokens,
            "prm_tokens_computed": getattr(prm, "computed_tokens", None),
        }
    finally:
        asyncio.run(runner.aclose())


def main() -> None:
    """Run the cases, print the figures, write the JSON (or, with ``scaling``, run the grid)."""
    if sys.argv[1:2] == ["scaling"]:
        import runpy

        sys.argv = [str(ROOT / "benchmarks" / "search_scaling.py"), *sys.argv[2:]]
        runpy.run_path(sys.argv[0], run_name="__main__")
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 problems")
    ap.add_argument("--problems", type=int, default=64, help="first N problems of the test split (default 64)")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()

    import torch

    from archon import data

    problems = data.load("arith", "test")[: 4 if args.quick else args.problems]
    rows: dict[str, Any] = {}
    for name, case, kwargs in [
        ("best_of_16", "best_of_16", {}),
        ("beam_16", "beam_16", {}),
        ("beam_16 (PRM from scratch)", "beam_16", {"incremental": False}),
        ("particles_16", "particles_16", {}),
        ("particles_16 (PRM from scratch)", "particles_16", {"incremental": False}),
        ("beam_16 one at a time", "beam_16", {"concurrency": 1}),
        ("particles_16 one at a time", "particles_16", {"concurrency": 1}),
    ]:
        r = rows[name] = run_case(case, problems, **kwargs)
        computed, reused = r["policy_prefill_computed"], r["policy_prefill_reused"]
        print(
            f"{name:<32} accuracy {r['accuracy']:.3f}  {r['flops_per_problem'] / 1e9:6.2f} GF/problem  "
            f"{r['wall_seconds']:6.1f} s  policy prefill {computed} computed + {reused} reused  "
            f"PRM {r['prm_tokens_computed']} tokens",
            flush=True,
        )
    figures: dict[str, Any] = {}
    for op in ("beam_16", "particles_16"):
        r, scratch = rows[op], rows[f"{op} (PRM from scratch)"]
        figures[op] = {
            "prefill_without_reuse_over_with": (r["policy_prefill_computed"] + r["policy_prefill_reused"])
            / r["policy_prefill_computed"],
            "prm_tokens_scratch_over_incremental": scratch["prm_tokens_computed"] / r["prm_tokens_computed"],
            "same_answers_as_scratch": r["answers"] == scratch["answers"],
            "concurrent_speedup": rows[f"{op} one at a time"]["wall_seconds"] / r["wall_seconds"],
        }
    figures["beam_16_wall_over_best_of_16"] = rows["beam_16"]["wall_seconds"] / rows["best_of_16"]["wall_seconds"]
    print(json.dumps(figures, indent=2))
    report = {
        "machine": {"cpu": platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "date": time.strftime("%Y-%m-%d"),
        "problems": len(problems),
        "rows": {k: {x: y for x, y in v.items() if x != "answers"} for k, v in rows.items()},
        "figures": figures,
    }
    out = args.results / ("search_quick.json" if args.quick else "search.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
