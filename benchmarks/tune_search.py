"""Does tuning among sampling and search beat the best hand-written pipeline that fits the budget?

    python benchmarks/tune_search.py                       # budgets 1e9 and 3e9, seeds 0 1 2
    python benchmarks/tune_search.py --budgets 1e9 --seeds 0 --trials 8 --problems 50

For each FLOP budget and seed it runs::

    archon tune examples/tune_search.yaml --budget-flops B --trials T --minibatch M --seed S --out DIR
    archon run DIR/best.yaml --split test --limit P

and, once, every hand-written example that uses no tuned value and no exact checker (greedy,
self-consistency, best-of-N, the weighted ensemble, beam search, DVTS, MCTS, particle filtering,
particle Gibbs: ``examples/*.yaml``) on the same test problems. The baseline of a budget is the most
accurate example whose mean FLOPs per problem on test fit it (chosen on test: generous to the
baseline). Every study is reported. Rows are appended to ``tune_search.rows.jsonl`` as they end, and a
rerun skips those already there; the report goes to ``benchmarks/results/tune_search.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from cli_runs import archon, chosen  # noqa: E402  (a sibling script's helpers)

RESULTS = ROOT / "benchmarks" / "results"
HAND_WRITTEN = ("greedy", "self_consistency", "best_of_n", "ensemble", "beam_search", "dvts", "mcts",
                "particle_filter", "particle_gibbs")  # fmt: skip


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", type=float, nargs="+", default=[1e9, 3e9])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--minibatch", type=int, default=60)
    ap.add_argument("--problems", type=int, default=200, help="first N test problems scored (default 200)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--report-only", action="store_true", help="run nothing: report the rows already written")
    args = ap.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    log = args.results / "tune_search.rows.jsonl"
    done: dict[str, dict] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            r = json.loads(line)
            if r.get("problems") == args.problems:
                done[r["key"]] = r

    def record(row: dict) -> dict:
        row["problems"] = args.problems
        done[row["key"]] = row
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        return row

    test = ["--split", "test", "--limit", str(args.problems)]
    for name in HAND_WRITTEN:
        key = f"example {name}"
        if key not in done and not args.report_only:
            out = archon("run", str(ROOT / "examples" / f"{name}.yaml"), *test)
            record({"key": key, "example": name, "test accuracy": out["accuracy"],
                    "test FLOPs per problem": out["per_problem"]["flops"]})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for budget in args.budgets:
            for seed in args.seeds:
                key = f"study {budget:g} {seed} {args.trials} {args.minibatch}"
                if key in done or args.report_only:
                    continue
                study = Path(tmp) / f"{budget:g}-{seed}"
                start = time.perf_counter()
                tuned = archon(
                    "tune", str(ROOT / "examples" / "tune_search.yaml"), "--budget-flops", f"{budget:g}",
                    "--trials", str(args.trials), "--minibatch", str(args.minibatch), "--seed", str(seed),
                    "--out", str(study), may_fail=True,
                )  # fmt: skip
                minutes = (time.perf_counter() - start) / 60
                if "error" in tuned:  # no configuration met the limits: it beats nothing
                    failed = {
                        "key": key,
                        "budget": budget,
                        "seed": seed,
                        "chosen": None,
                        "error": tuned["error"],
                        "test accuracy": None,
                        "test FLOPs per problem": None,
                    }
                    record({**failed, "study minutes": round(minutes, 1)})  # fmt: skip
                    continue
                out = archon("run", str(study / "best.yaml"), *test)
                row = {
                    "key": key,
                    "budget": budget,
                    "seed": seed,
                    "chosen": chosen(study / "best.yaml"),
                    "dev": tuned["best"].get("full"),
                    "test accuracy": out["accuracy"],
                    "test FLOPs per problem": out["per_problem"]["flops"],
                    "study minutes": round(minutes, 1),
                }
                record(row)  # fmt: skip

    examples = [r for r in done.values() if "example" in r]
    studies = []
    for budget in args.budgets:
        fits = [r for r in examples if r["test FLOPs per problem"] <= budget]
        base = max(fits, key=lambda r: r["test accuracy"]) if fits else None
        for seed in args.seeds:
            r = done.get(f"study {budget:g} {seed} {args.trials} {args.minibatch}")
            if r is None:  # not run (yet)
                continue
            beats = r["test accuracy"] is not None and (base is None or r["test accuracy"] > base["test accuracy"])
            studies.append({
                **r, "baseline": base and base["example"], "baseline accuracy": base and base["test accuracy"],
                "beats baseline": beats,
            })  # fmt: skip
    report = {
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "command": f"archon tune examples/tune_search.yaml --budget-flops B --trials {args.trials} "
        f"--minibatch {args.minibatch} --seed S; archon run best.yaml --split test --limit {args.problems}",
        "examples": examples,
        "studies": studies,
        "studies beating the baseline": f"{sum(s['beats baseline'] for s in studies)} of {len(studies)}",
    }
    (args.results / "tune_search.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("examples", "studies")}, indent=1))


if __name__ == "__main__":
    main()
