"""Accuracy against compute of sampling and step-level search on the arith test split (issue 16's grid).

Every method runs at a ladder of sizes (``k`` samples, beams, particles, MCTS expansions), all with the
same policy (tiny-l, steps at temperature 0.8) and, in turn, with each verifier:

- ``prm``: the learned process reward model tiny-prm (its FLOPs charged);
- ``noisy-0.95``, ``noisy-0.85``, ``noisy-0.70``: the exact step checker turned into a synthetic
  instrument of that within-problem step AUC (:class:`~verifiers.noisy.NoisyStepChecker`; it costs
  nothing, so their FLOPs are the policy's alone).

Methods: greedy (one point), majority vote of ``k`` samples (no verifier), best-of-``k`` and the
verifier-weighted vote of ``k`` samples, beam search (``k`` beams, width 4), DVTS (``k`` steps a round
in ``k / 4`` subtrees), MCTS (``k`` expansions of 4 children), particle filtering (``k`` particles) and
particle Gibbs (2 passes of ``k / 2`` particles). Each run reports accuracy, FLOPs and the idealized
H100 latency per problem, measured by the ledger. The tables read each curve at budgets of 0.3, 1, 3,
10 and 30 GFLOP/problem (the most accurate configuration of a method whose mean cost fits), and the
three claims of the papers are checked on them.

``python benchmarks/search_scaling.py`` (or ``python benchmarks/search.py scaling``) writes
``benchmarks/results/search_scaling.json``, ``search_scaling.md`` (the tables of BENCHMARKS.md
"Search") and ``search_scaling.png``. Runs are appended to ``search_scaling.rows.jsonl`` as they end,
and a rerun with the same problems skips those already there (``--fresh`` starts over). ``--quick``:
4 problems, sizes 2 and 4, two methods.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before benchmarks/, whose search.py and verifiers.py would shadow the packages

LADDER = (2, 4, 8, 16, 32, 64)
BUDGETS_GF = (0.3, 1.0, 3.0, 10.0, 30.0)
VERIFIERS: dict[str, dict[str, Any]] = {
    "prm": {"kind": "reward_model", "model": "tiny-prm"},
    "noisy-0.95": {"kind": "noisy_arith_steps", "options": {"auc": 0.95}},
    "noisy-0.85": {"kind": "noisy_arith_steps", "options": {"auc": 0.85}},
    "noisy-0.70": {"kind": "noisy_arith_steps", "options": {"auc": 0.70}},
}
SEARCH = {"engine": "policy", "aggregation": "min", "temperature": 0.8, "max_steps": 10}
SAMPLE = {"engine": "policy", "temperature": 0.8, "max_tokens": 160}


def pipeline(method: str, k: int, verifier: str) -> dict[str, Any]:
    """The pipeline node of ``method`` at size ``k`` guided by ``verifier``."""
    width = min(4, k)
    nodes: dict[str, dict[str, Any]] = {
        "greedy": {"op": "sample", "params": {**SAMPLE, "n": 1, "temperature": 0}},
        "majority": {"op": "self_consistency", "params": {**SAMPLE, "n": k}},
        "best_of_n": {"op": "best_of_n", "params": {**SAMPLE, "n": k, "verifier": verifier}},
        "weighted_vote": {"op": "weighted_vote", "params": {**SAMPLE, "n": k, "verifier": verifier}},
        "beam_search": {"op": "beam_search", "params": {**SEARCH, "prm": verifier, "n": k, "width": width}},
        "dvts": {"op": "dvts", "params": {**SEARCH, "prm": verifier, "n": k, "width": width}},
        "mcts": {"op": "mcts", "params": {**SEARCH, "prm": verifier, "iterations": k, "children": 4,
                                            "returns": 4, "exploration": 1.0}},
        "particle_filter": {"op": "particle_filter", "params": {**SEARCH, "prm": verifier, "particles": k}},
        "particle_gibbs": {"op": "particle_gibbs",
                           "params": {**SEARCH, "prm": verifier, "particles": max(2, k // 2), "iterations": 2}},
    }  # fmt: skip
    params = dict(nodes[method]["params"])
    if method == "mcts":
        params.pop("max_steps")  # MCTS is bounded by its expansions
    return {"id": "answer", "op": nodes[method]["op"], "params": params}


METHODS = ("greedy", "majority", "best_of_n", "weighted_vote", "beam_search", "dvts", "mcts",
           "particle_filter", "particle_gibbs")  # fmt: skip
UNGUIDED = ("greedy", "majority")
"""Methods that use no verifier (run once, shown in every verifier's table)."""


def cases(
    methods: Iterable[str], verifiers: Iterable[str], ladder: Iterable[int], noisy_ladder: Iterable[int] | None = None
) -> list[tuple[str, str, int]]:
    """Every (method, verifier, k) to run; an unguided method runs once per k (greedy once).

    The noisy checkers' runs use ``noisy_ladder`` (default: ``ladder``).
    """
    out: list[tuple[str, str, int]] = []
    verifiers, ladder = list(verifiers), list(ladder)
    noisy = ladder if noisy_ladder is None else list(noisy_ladder)
    for m in methods:
        if m == "greedy":
            out.append((m, "-", 1))
        elif m in UNGUIDED:
            out += [(m, "-", k) for k in ladder]
        else:
            out += [(m, v, k) for v in verifiers for k in (noisy if v.startswith("noisy") else ladder)]
    return out


def key(method: str, verifier: str, k: int) -> str:
    """The row's key in the results."""
    return f"{method}|{verifier}|{k}"


class Grid:
    """The runs of the grid on shared engines and verifiers (each run charged as if alone)."""

    def __init__(self, problems: list, verifiers: dict[str, dict[str, Any]]) -> None:
        from archon.runtime import Resources, per_sample_seeds
        from archon.spec import parse_spec
        from samplers.engines import EnginePool

        self.problems = problems
        self.base = {
            "engines": {"policy": {"kind": "transformers", "model": "tiny-l"}},
            "verifiers": verifiers,
            "dataset": {"name": "arith", "split": "test"},
            "budget": {"hardware": "h100"},
        }
        spec = parse_spec({**self.base, "pipeline": [pipeline("greedy", 1, "-")]})
        self.resources = Resources(EnginePool(dict(spec.engines)), wrap=per_sample_seeds)

    def run(self, method: str, verifier: str, k: int) -> dict[str, Any]:
        """One run over the problems: accuracy, coverage and cost per problem."""
        from archon.runtime import Runner
        from archon.spec import parse_spec

        spec = parse_spec({**self.base, "pipeline": [pipeline(method, k, verifier)]})
        runner = Runner(spec, resources=self.resources)
        runner.prepare()
        start = time.perf_counter()
        summary = asyncio.run(runner.run(self.problems))
        per = summary["per_problem"]
        return {
            "method": method, "verifier": verifier, "k": k,
            "accuracy": summary["accuracy"], "coverage": summary["coverage"], "errors": summary["errors"],
            "gflops": per["flops"] / 1e9, "latency_ms": per["latency"] * 1e3,
            "tokens": per["prompt_tokens"] + per["generated_tokens"], "wall_seconds": time.perf_counter() - start,
            "unanswered": sum(not r["candidates"] for r in runner.records),
        }  # fmt: skip

    def close(self) -> None:
        """Release the models."""
        asyncio.run(self.resources.aclose())


def at_budget(rows: list[dict[str, Any]], budget_gf: float) -> dict[str, Any] | None:
    """The most accurate row whose mean cost fits ``budget_gf`` (ties: the cheaper)."""
    fits = [r for r in rows if r["gflops"] <= budget_gf]
    return max(fits, key=lambda r: (r["accuracy"], -r["gflops"])) if fits else None


def curves(rows: list[dict[str, Any]], verifier: str) -> dict[str, list[dict[str, Any]]]:
    """Each method's rows under ``verifier`` (the unguided methods' too), by increasing cost."""
    out: dict[str, list[dict[str, Any]]] = {}
    for m in METHODS:
        mine = [r for r in rows if r["method"] == m and r["verifier"] in (verifier, "-")]
        if mine:
            out[m] = sorted(mine, key=lambda r: r["gflops"])
    return out


def claims(rows: list[dict[str, Any]], verifiers: Iterable[str]) -> list[dict[str, Any]]:
    """The three findings of the papers, read off the curves under each verifier."""
    out = []
    for v in verifiers:
        c = curves(rows, v)

        def acc(m: str, b: float, c: dict[str, list[dict[str, Any]]] = c) -> float | None:
            r = at_budget(c.get(m, []), b)
            return None if r is None else r["accuracy"]

        small = [b for b in BUDGETS_GF if b <= 3.0]
        large = [b for b in BUDGETS_GF if b >= 10.0]
        snell = [(b, acc("beam_search", b), acc("best_of_n", b)) for b in small]
        sal = [(b, acc("dvts", b), acc("beam_search", b)) for b in large]
        top = max(BUDGETS_GF)
        both = [b for b in BUDGETS_GF if acc("particle_filter", b) is not None and acc("beam_search", b) is not None]
        low = both[0] if both else top
        pf = [(m, acc(m, low), acc(m, top)) for m in ("particle_filter", "beam_search")]
        gain = {m: (None if a is None or z is None else z - a) for m, a, z in pf}

        def held(pairs: list[tuple[float, float | None, float | None]], strict: bool = False) -> bool | None:
            known = [(a, b) for _, a, b in pairs if a is not None and b is not None]
            return None if not known else all(a > b if strict else a >= b for a, b in known)

        out.append({
            "verifier": v,
            "snell: beam search > best-of-N at budgets <= 3 GF": {
                "measured": [{"budget_gf": b, "beam_search": a, "best_of_n": z} for b, a, z in snell],
                "held": held(snell, strict=True),
            },
            "search-and-learn: DVTS >= beam search at budgets >= 10 GF": {
                "measured": [{"budget_gf": b, "dvts": a, "beam_search": z} for b, a, z in sal],
                "held": held(sal),
            },
            "puri: particle filtering scales at least as well as beam search": {
                "measured": {"from_gf": low, "to_gf": top,
                             **{m: {"from": a, "to": z, "gain": gain[m]} for m, a, z in pf}},
                "held": None if None in gain.values() else (
                    (acc("particle_filter", top) or 0) >= (acc("beam_search", top) or 0)
                    and gain["particle_filter"] >= gain["beam_search"]),  # type: ignore[operator]
            },
        })  # fmt: skip
    return out


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def tables(rows: list[dict[str, Any]], verifiers: Iterable[str], problems: int) -> str:
    """The markdown of the results: accuracy at each budget, and every run, per verifier."""
    lines = []
    for v in verifiers:
        c = curves(rows, v)
        lines += [f"#### Verifier `{v}` ({problems} test problems)", ""]
        lines += ["| method | " + " | ".join(f"≤ {b:g} GF" for b in BUDGETS_GF) + " |",
                  "|---|" + "---:|" * len(BUDGETS_GF)]  # fmt: skip
        for m, rs in c.items():
            cells = [_fmt((r := at_budget(rs, b)) and r["accuracy"]) for b in BUDGETS_GF]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines += ["", "| method | k | accuracy | GFLOP/problem | H100 latency ms/problem |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        for m, rs in c.items():
            for r in rs:
                lines.append(f"| {m} | {r['k']} | {r['accuracy']:.3f} | {r['gflops']:.2f} | {r['latency_ms']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], verifiers: list[str], path: Path) -> None:
    """Accuracy against GFLOP/problem (top) and against idealized H100 latency (bottom), one column per verifier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2, len(verifiers), figsize=(4.2 * len(verifiers), 7.5), squeeze=False, sharey=True, sharex="row"
    )
    for j, v in enumerate(verifiers):
        for m, rs in curves(rows, v).items():
            style = {"marker": "*", "markersize": 11} if m == "greedy" else {"marker": "o", "markersize": 3}
            axis_labels = (("gflops", "GFLOP / problem"), ("latency_ms", "H100 latency, ms / problem"))
            for i, (x, label) in enumerate(axis_labels):
                ax = axes[i][j]
                ax.plot([r[x] for r in rs], [r["accuracy"] for r in rs], label=m, **style)
                ax.set_xscale("log")
                ax.set_xlabel(label)
                ax.grid(alpha=0.3)
        axes[0][j].set_title(f"verifier: {v}")
    for i in range(2):
        axes[i][0].set_ylabel("accuracy (arith test)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Run what is missing of the grid, then write the JSON, the tables and the plot."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 problems, sizes 2 and 4, greedy, best-of-N and beam search")
    ap.add_argument("--problems", type=int, default=100, help="first N problems of the test split (default 100)")
    ap.add_argument("--ladder", default=",".join(map(str, LADDER)), help="sizes k, comma-separated")
    ap.add_argument("--noisy-ladder", default=None, help="sizes k of the noisy checkers' runs (default: --ladder)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--verifiers", default=",".join(VERIFIERS))
    ap.add_argument("--fresh", action="store_true", help="start over (forget the runs already written)")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)

    import torch

    from archon import data

    n = 4 if args.quick else args.problems
    ladder = [2, 4] if args.quick else [int(x) for x in args.ladder.split(",")]
    noisy_ladder = None if args.quick or not args.noisy_ladder else [int(x) for x in args.noisy_ladder.split(",")]
    methods = ["greedy", "best_of_n", "beam_search"] if args.quick else args.methods.split(",")
    verifiers = ["prm", "noisy-0.85"] if args.quick else args.verifiers.split(",")
    unknown = sorted(set(methods) - set(METHODS)) + sorted(set(verifiers) - set(VERIFIERS))
    if unknown:
        raise SystemExit(f"unknown method or verifier: {', '.join(unknown)}")
    name = "search_scaling_quick" if args.quick else "search_scaling"
    args.results.mkdir(parents=True, exist_ok=True)
    log = args.results / f"{name}.rows.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if log.exists() and not args.fresh:
        for line in log.read_text().splitlines():
            r = json.loads(line)
            if r.get("problems") == n:
                done[key(r["method"], r["verifier"], r["k"])] = r
    elif log.exists():
        log.unlink()

    problems = data.load("arith", "test")[:n]
    todo = [c for c in cases(methods, verifiers, ladder, noisy_ladder) if key(*c) not in done]
    grid = Grid(problems, {v: VERIFIERS[v] for v in verifiers}) if todo else None
    try:
        for method, verifier, k in todo:
            r = grid.run(method, verifier, k)  # type: ignore[union-attr]
            r["problems"] = n
            done[key(method, verifier, k)] = r
            with log.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(
                f"{method:<16} {verifier:<11} k={k:<3} accuracy {r['accuracy']:.3f}  {r['gflops']:7.2f} GF/problem  "
                f"{r['latency_ms']:7.2f} ms H100  {r['wall_seconds']:6.1f} s",
                flush=True,
            )
    finally:
        if grid is not None:
            grid.close()

    # every run written for these methods and verifiers (sizes beyond the ladders included)
    rows = [r for r in done.values() if r["method"] in methods and r["verifier"] in ("-", *verifiers)]
    report = {
        "machine": {"cpu": platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "date": time.strftime("%Y-%m-%d"),
        "problems": n,
        "ladder": ladder,
        "noisy_ladder": noisy_ladder or ladder,
        "budgets_gf": list(BUDGETS_GF),
        "rows": rows,
        "claims": claims(rows, verifiers),
    }
    (args.results / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.results / f"{name}.md").write_text(tables(rows, verifiers, n))
    plot(rows, verifiers, args.results / f"{name}.png")
    for c in report["claims"]:
        print(c["verifier"], {k_: v["held"] for k_, v in c.items() if k_ != "verifier"})
    print(f"wrote {args.results / name}.json, .md, .png")


if __name__ == "__main__":
    main()
