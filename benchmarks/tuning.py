"""Tuning on the embedded arith world: what the generation cache saves, and tuned vs hand-written pipelines.

    python benchmarks/tuning.py            # both parts (about half an hour on 2 cores)
    python benchmarks/tuning.py --quick    # a few trials on a few problems (the test suite runs this)
    python benchmarks/tuning.py --part proof --seeds 3   # three studies per budget: how reliably it wins

1. Cache: a 30-trial study of ``examples/tune_arith.yaml`` (a 100-problem dev minibatch, no re-evaluation)
   with the generation cache and without it, same seed: tokens the engines generated, and whether every
   trial's parameters, accuracy and FLOPs are identical. Then the same with the temperature fixed at 0.75
   (op, model, n and verifier tuned).
2. Proof: for each per-problem FLOP budget, tune ``examples/tune_arith.yaml`` on dev (its 100-problem
   minibatch, the best 3 trials re-scored on the whole split), then score the best feasible configuration
   and the hand-written baselines (greedy ``tiny-l``; best-of-16 by ``tiny-orm``; self-consistency over 16
   samples) on the test split. A baseline competes under a budget
   when its measured FLOPs per problem on test fit it. ``--seeds N`` runs N studies per budget (sampler and
   run seeds 0 to N-1); ``--no-repair`` turns the studies' budget repair off (and writes
   ``tuning_no_repair.json``).

Writes ``benchmarks/results/tuning.json`` (``tuning_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SPEC = ROOT / "examples" / "tune_arith.yaml"
BASELINES = {"greedy": "greedy.yaml", "best_of_16": "best_of_n.yaml", "self_consistency_16": "self_consistency.yaml"}


def study(spec: Any, problems: list[Any], directory: Path, **options: Any) -> tuple[Any, dict[str, Any], float]:
    """Run one study to the end; return it (closed), its result and its wall time."""
    from archon.spec.models import TuneSpec
    from archon.tune.study import Study

    cache_path = options.pop("cache_path", None)
    s = Study(spec, problems, directory, TuneSpec.of(spec, **options), cache_path=cache_path)
    start = time.perf_counter()
    try:
        s.optimize()
        result = s.result()
    finally:
        s.close()
    return s, result, time.perf_counter() - start


def cache_part(
    problems: list[Any], trials: int, minibatch: int, tmp: Path, *, temperature: float | None = None
) -> dict[str, Any]:
    """The same study with and without the cache (``temperature``: fixed instead of tuned)."""
    from archon.spec import load_spec

    spec = load_spec(SPEC)
    if temperature is not None:
        node = spec.pipeline[0]
        node.params = {**node.params, "temperature": temperature}
    tmp = tmp / f"cache-{temperature}"
    runs = {}
    for name, cache in (("cache", True), ("no_cache", False)):
        s, _, wall = study(
            spec, problems, tmp / name, trials=trials, minibatch=minibatch, cache=cache, budget={}, reevaluate=0
        )
        trials_ = [(t.params, t.values, t.user_attrs.get("flops")) for t in s.complete_trials()]
        pruned = [t.number for t in s.study.trials if t.state.name == "PRUNED"]
        runs[name] = {"tokens": s.evaluator.tokens_generated(), "seconds": wall, "trials": trials_, "pruned": pruned}
        print(f"{name:<9} {runs[name]['tokens']:>9} tokens generated  {wall:6.1f} s", flush=True)
    on, off = runs["cache"], runs["no_cache"]
    same = on["trials"] == off["trials"] and on["pruned"] == off["pruned"]
    mismatch = next(((a, b) for a, b in zip(on["trials"], off["trials"], strict=False) if a != b), None)
    if mismatch:
        print(f"first differing trial: {mismatch}", flush=True)
    ratio = runs["no_cache"]["tokens"] / max(1, runs["cache"]["tokens"])
    print(f"cache: {ratio:.2f}x fewer tokens; identical trial results: {same}", flush=True)
    return {
        "trials": trials,
        "minibatch": minibatch,
        "tokens_with_cache": runs["cache"]["tokens"],
        "tokens_without_cache": runs["no_cache"]["tokens"],
        "seconds_with_cache": runs["cache"]["seconds"],
        "seconds_without_cache": runs["no_cache"]["seconds"],
        "token_ratio": ratio,
        "identical_results": same,
        "first_mismatch": mismatch,
    }


def score(evaluator: Any, concrete: Any, problems: list[Any]) -> dict[str, Any]:
    """Accuracy and mean cost of a concrete spec."""
    ev = evaluator.run(concrete, problems)
    return {"accuracy": ev.accuracy, "gflops": ev.cost["flops"] / 1e9, "latency": ev.cost["latency"]}


def proof_part(
    dev: list[Any],
    test: list[Any],
    budgets: list[float],
    trials: int,
    minibatch: int | None,
    tmp: Path,
    seeds: int = 1,
    repair: bool = True,
) -> list[dict[str, Any]]:
    """Tune under each budget on dev (one study per seed); compare each best with the fitting baselines on test."""
    from archon.spec import load_spec
    from archon.tune.evaluate import Evaluator
    from archon.tune.space import concretize

    spec = load_spec(SPEC)
    evaluator = Evaluator(spec, cache_path=tmp / "test-cache.sqlite")
    baselines = {}
    for name, file in BASELINES.items():
        baseline_spec = load_spec(ROOT / "examples" / file)
        ev = Evaluator(baseline_spec, cache_path=tmp / "test-cache.sqlite")
        baselines[name] = score(ev, baseline_spec, test)
        ev.close()
        print(
            f"baseline {name:<20} test accuracy {baselines[name]['accuracy']:.3f}  "
            f"{baselines[name]['gflops']:.3f} GFLOP/problem",
            flush=True,
        )
    rows = []
    for budget in budgets:
        for seed in range(seeds):
            _, result, wall = study(
                spec,
                dev,
                tmp / f"budget-{budget:g}-seed-{seed}",
                trials=trials,
                minibatch=minibatch,
                budget={"flops": budget * 1e9},
                cache_path=tmp / "dev-cache.sqlite",
                seed=seed,
                repair=repair,
            )
            best = result["best"]
            row: dict[str, Any] = {"budget_gflops": budget, "seed": seed, "study_seconds": wall}
            row["trials"] = result["trials"]
            if best is None:
                row["tuned"] = None
                print(f"budget {budget:g} GFLOP, seed {seed}: no feasible configuration", flush=True)
            else:
                tuned = score(evaluator, concretize(spec, best["params"]), test)
                fitting = {k: v for k, v in baselines.items() if v["gflops"] <= budget}
                row.update(
                    tuned={**tuned, "params": best["params"], "dev": best["full"] or best["search"]},
                    fitting_baselines=sorted(fitting),
                    beats_every_fitting_baseline=all(tuned["accuracy"] > v["accuracy"] for v in fitting.values()),
                    tuned_fits=tuned["gflops"] <= budget,
                )
                print(
                    f"budget {budget:g} GFLOP, seed {seed}: tuned test accuracy {tuned['accuracy']:.3f} "
                    f"at {tuned['gflops']:.3f} GFLOP ({best['params']}); "
                    f"beats {sorted(fitting)}: {row['beats_every_fitting_baseline']}",
                    flush=True,
                )
            rows.append(row)
    evaluator.close()
    return [{"baselines": baselines}, *rows]


def main() -> None:
    """Run both parts, print, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=["cache", "proof", "both"], default="both")
    ap.add_argument("--budgets", default="1,2,5", help="per-problem GFLOP budgets, comma separated")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=1, help="studies per budget in the proof part (seeds 0, 1 ...)")
    ap.add_argument("--no-repair", action="store_true", help="proof studies without budget repair")
    args = ap.parse_args()

    import optuna
    import torch

    from archon import data

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dev, test = data.load("arith", "dev"), data.load("arith", "test")
    trials, minibatch = (4, 8) if args.quick else (args.trials, 100)
    if args.quick:
        dev, test = dev[:16], test[:16]
    tmp = Path(tempfile.mkdtemp(prefix="archon-tuning-"))
    report: dict[str, Any] = {
        "machine": {"cpu": platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "date": time.strftime("%Y-%m-%d"),
    }
    try:
        if args.part in ("cache", "both"):
            report["cache"] = cache_part(dev, trials, minibatch, tmp)
            report["cache_fixed_temperature"] = cache_part(dev, trials, minibatch, tmp, temperature=0.75)
        if args.part in ("proof", "both"):
            budgets = [float(b) for b in args.budgets.split(",")]
            report["proof"] = proof_part(
                dev, test, budgets, trials, 8 if args.quick else None, tmp, args.seeds, not args.no_repair
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stem = "tuning" + ("_quick" if args.quick else "") + ("_no_repair" if args.no_repair else "")
    out = ROOT / "benchmarks" / "results" / f"{stem}.json"
    out.parent.mkdir(exist_ok=True)
    if args.part != "both" and out.is_file():  # one part: keep the other part's last figures
        report = {**json.loads(out.read_text()), **report}
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
