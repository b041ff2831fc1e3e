"""The voting family on arith with tiny-l: accuracy against samples and against FLOPs per problem.

    python benchmarks/voting.py            # 200 dev problems, a pool of 32 samples each
    python benchmarks/voting.py --quick    # 40 problems, 16 samples

1. One pool of ``N`` samples per problem (temperature 1.0, with log-probabilities and DeepConf token
   confidences, top 10). From random subsets of ``k`` of them (``k = 1, 2, 4 ... N``, 8 subsets per
   problem): majority@k, RPC@k (perplexity consistency with reasoning pruning; and without pruning),
   DeepConf offline@k (the 90% and the 10% most confident traces vote, confidence-weighted), and
   coverage (pass@k). FLOPs of a subset: the prompt's prefill once and each of its samples' decoding.
2. ``weighted_vote`` by ``tiny-prm`` at n = 4, 16, 32 (its own runs: samples and PRM charged).
3. ``adaptive_sc`` (posterior rule, thresholds 0.8 - 0.99, at most N samples) and ``deepconf`` online
   (warm-up 4, keep 90% / 10%): real runs, FLOPs from the ledger (only what ran is charged).

Reported against the claims: RPC reaches majority's accuracy with about half the samples; adaptive
self-consistency keeps majority@N's accuracy with far fewer samples. Writes
``benchmarks/results/voting.json`` (``voting_quick.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUBSETS = 8
MAX_TOKENS = 160


def pool(problems: list[Any], n: int) -> tuple[list[list[Any]], list[float], list[list[int]]]:
    """``n`` samples per problem with logprobs and confidences; each problem's prefill FLOPs and decode FLOPs."""
    from archon.core import GenRequest
    from budgets import CostModel
    from samplers.transformers_engine import TransformersEngine

    engine = TransformersEngine("tiny-l")
    cost = CostModel(engine.facts)

    async def main() -> list[Any]:
        reqs = [GenRequest([{"role": "user", "content": p.question}], n=n, temperature=1.0, max_tokens=MAX_TOKENS,
                           logprobs=True, confidences=10, seed=17 + i) for i, p in enumerate(problems)]  # fmt: skip
        return list(await asyncio.gather(*(engine.generate(r) for r in reqs)))

    results = asyncio.run(main())
    prefill, decode = [], []
    for p, r in zip(problems, results, strict=True):
        length = len(engine.encode([{"role": "user", "content": p.question}]))
        prefill.append(float(cost.prefill_flops(length)))
        decode.append([cost.decode_flops(max(0, c.num_tokens - 1), length) for c in r.completions])
    engine.close()
    return [list(r.completions) for r in results], prefill, decode


def offline_curves(problems: list[Any], samples: list[list[Any]], prefill: list[float], decode: list[list[int]],
                   n: int) -> list[dict[str, Any]]:  # fmt: skip
    """Majority, RPC (with and without pruning), DeepConf offline and coverage at each k, from subsets of the pool."""
    from archon.core import Candidate
    from samplers.deepconf import trace_confidence
    from verifiers.answers import answers_equal, extract_answer
    from verifiers.ops import majority
    from verifiers.rpc import rpc

    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= n]
    rows = []
    for k in ks:
        acc = {"majority": 0.0, "rpc": 0.0, "rpc_no_pruning": 0.0, "deepconf_90": 0.0, "deepconf_10": 0.0,
               "coverage": 0.0}  # fmt: skip
        flops = 0.0
        for pi, (p, comps) in enumerate(zip(problems, samples, strict=True)):
            rng = random.Random(f"{k}:{p.id}")
            draws = 1 if k == n else SUBSETS
            for _ in range(draws):
                idx = rng.sample(range(n), k)
                cands = [Candidate(comps[i].text, answer=extract_answer(comps[i].text), logprobs=comps[i].logprobs)
                         for i in idx]  # fmt: skip
                flops += prefill[pi] + sum(decode[pi][i] for i in idx)

                def right(ranked: list[Any], p: Any = p) -> bool:
                    return bool(ranked and ranked[0].answer is not None and answers_equal(ranked[0].answer, p.answer))

                acc["majority"] += right(majority(cands)) / draws
                acc["rpc"] += right(rpc(cands)[0]) / draws
                acc["rpc_no_pruning"] += right(rpc(cands, prune=False)[0]) / draws
                acc["coverage"] += (
                    any(c.answer is not None and answers_equal(c.answer, p.answer) for c in cands) / draws
                )
                confs = [trace_confidence(comps[i].confidences or (), "lowest_group", 16) for i in idx]
                for name, keep in (("deepconf_90", 0.9), ("deepconf_10", 0.1)):
                    finite = sorted((x for x in confs if not math.isnan(x)), reverse=True)
                    cut = finite[max(0, math.ceil(keep * len(finite)) - 1)] if finite else math.inf
                    scored = [c.with_score("confidence", x if x >= cut else math.nan)
                              for c, x in zip(cands, confs, strict=True)]  # fmt: skip
                    acc[name] += right(majority(scored, weight="confidence")) / draws
        row = {"k": k, **{m: v / len(problems) for m, v in acc.items()},
               "flops_per_problem": flops / len(problems) / (1 if k == n else SUBSETS)}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def run(problems: list[Any], node: dict[str, Any], verifiers: dict[str, Any] | None = None) -> dict[str, Any]:
    """One real run of a one-node pipeline on tiny-l: accuracy, FLOPs per problem and the node's trace events."""
    from archon.runtime import Runner
    from archon.spec import parse_spec

    spec = {"engines": {"policy": {"model": "tiny-l"}}, "budget": {"hardware": "h100"},
            "pipeline": [{"id": "answer", **node}]}  # fmt: skip
    if verifiers:
        spec["verifiers"] = verifiers
    runner = Runner(parse_spec(spec))
    s = asyncio.run(runner.run(problems))
    asyncio.run(runner.aclose())
    events = [next((e for e in r["trace"] if e.get("op") == node["op"]), {}) for r in runner.records]
    return {"accuracy": s["accuracy"], "flops_per_problem": s["per_problem"]["flops"],
            "generated_tokens_per_problem": s["per_problem"]["generated_tokens"], "errors": s["errors"],
            "events": events}  # fmt: skip


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="40 problems, 16 samples")
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    import torch

    from archon import data

    problems = data.load("arith", "dev")[: 40 if args.quick else args.problems]
    n = 16 if args.quick else args.samples
    start = time.perf_counter()
    samples, prefill, decode = pool(problems, n)
    report: dict[str, Any] = {
        "machine": {"cpu": platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "date": time.strftime("%Y-%m-%d"), "problems": len(problems), "pool": n,
        "pool_seconds": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    report["offline"] = offline_curves(problems, samples, prefill, decode, n)
    greedy = run(problems, {"op": "sample", "params": {"engine": "policy", "temperature": 0, "max_tokens": MAX_TOKENS}})
    report["greedy"] = {k: v for k, v in greedy.items() if k != "events"}
    prm = {"prm": {"kind": "reward_model", "model": "tiny-prm"}}
    report["weighted_vote_prm"] = []
    for k in [k for k in (4, 16, 32) if k <= n]:
        node = {"op": "weighted_vote", "params": {"engine": "policy", "n": k, "temperature": 1.0,
                                                  "max_tokens": MAX_TOKENS, "verifier": "prm"}}  # fmt: skip
        r = run(problems, node, prm)
        report["weighted_vote_prm"].append({"n": k, **{x: v for x, v in r.items() if x != "events"}})
        print(json.dumps(report["weighted_vote_prm"][-1]), flush=True)
    report["adaptive_sc"] = []
    for th in (0.8, 0.9, 0.95, 0.99):
        params = {"engine": "policy", "n_max": n, "start": 2, "rule": "posterior", "threshold": th,
                  "temperature": 1.0, "max_tokens": MAX_TOKENS}  # fmt: skip
        node = {"op": "adaptive_sc", "params": params}
        r = run(problems, node)
        drawn = [e["drawn"] for e in r.pop("events")]
        report["adaptive_sc"].append({"threshold": th, **r, "samples_per_problem": sum(drawn) / len(drawn)})
        print(json.dumps(report["adaptive_sc"][-1]), flush=True)
    report["deepconf_online"] = []
    for keep in (0.9, 0.1):
        params = {"engine": "policy", "n": n, "mode": "online", "warmup": 4, "keep": keep, "window": 16, "k": 10,
                  "temperature": 1.0, "max_tokens": MAX_TOKENS}  # fmt: skip
        node = {"op": "deepconf", "params": params}
        r = run(problems, node)
        events = r.pop("events")
        row = {"keep": keep, **r, "abandoned_per_problem": sum(e["abandoned"] for e in events) / len(events),
               "voted_per_problem": sum(e["voted"] for e in events) / len(events)}  # fmt: skip
        report["deepconf_online"].append(row)
        print(json.dumps(row), flush=True)
    report["seconds"] = round(time.perf_counter() - start, 1)
    name = "voting_quick.json" if args.quick else "voting.json"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / name).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.results / name}")


if __name__ == "__main__":
    main()
