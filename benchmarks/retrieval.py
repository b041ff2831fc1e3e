"""Retrieval on the facts world: recall of each retriever, the reader's accuracy and FLOPs as k grows,
a tuned retrieval pipeline against the best fixed k, and retrieval's share of a run's wall time.

    python benchmarks/retrieval.py            # dev recall (500), reader curve on 200 test problems, studies
    python benchmarks/retrieval.py --quick    # 40 problems (16 read), no study

1. recall@k (k = 1, 3, 5, 10, 20) of ``bm25``, ``dense`` (MiniLM + FAISS) and ``hybrid`` (their RRF) on
   facts dev: over all questions, over those whose person has a near-duplicate twin, and how often the
   twin is ranked above the gold document.
2. tiny-l greedy with the top k BM25 passages (k = 0 .. 10) on the test problems: accuracy and FLOPs per
   problem (the passages are prefill the reader pays for).
3. ``archon tune examples/rag_tune.yaml`` under FLOP budgets (retriever, k, passage order, context
   cap), its best run on the same test problems, against the most accurate fixed k whose FLOPs fit.
4. Retrieval's share of wall time in the runs of 2 (the ``retrieve`` node's measured seconds over the
   run's).
5. DRAG: tiny-l with its top passage after m = 0, 1, 2, 4 solved dev examples (``demonstrations``), each
   with its own top passage.
6. Two-hop questions (``multihop_test``): how often one retrieval for the question finds the person's
   and the birthplace's documents; tiny-l with k = 2; retrieving again with the first answer as the query;
   ``iterdrag`` with tiny-l writing the follow-ups.
7. ``archon tune examples/rag_tune_multihop.yaml`` (retrieve first or not, retriever, k, answer at once or
   interleave with ``iterdrag``) under a FLOP budget on ``multihop_dev``, its best run on the two-hop test
   problems, against the most accurate fixed k of one BM25 retrieval (k = 1, 2, 3, 5) whose FLOPs fit.

Writes ``benchmarks/results/retrieval.json`` (``retrieval_quick.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))

KS = (1, 3, 5, 10, 20)
READER_KS = (0, 1, 2, 3, 5, 10)


def recall_table(problems: list[Any], results: dict[str, list[list[Any]]]) -> dict[str, Any]:
    """recall@k per retriever, over all questions and the near-duplicate ones, and twin-above-gold rates."""
    from archon.data.facts import near_duplicate

    docs = {d.id: d for d in _corpus()}
    out: dict[str, Any] = {}
    twins = [i for i, p in enumerate(problems) if p.metadata["has_near_duplicate"]]
    for name, found in results.items():
        row: dict[str, Any] = {}
        for k in KS:
            hit = [p.metadata["gold_doc_ids"][0] in {x.id for x in f[:k]} for p, f in zip(problems, found, strict=True)]
            row[f"recall@{k}"] = sum(hit) / len(hit)
            row[f"recall@{k} (twins)"] = sum(hit[i] for i in twins) / len(twins) if twins else None
        above = 0
        for i in twins:
            gold = problems[i].metadata["gold_doc_ids"][0]
            ids = [x.id for x in found[i]]
            twin = next((j for j, d in enumerate(ids) if near_duplicate(docs[d].title, docs[gold].title)), None)
            if twin is not None and (gold not in ids or twin < ids.index(gold)):
                above += 1
        row["twin ranked above gold"] = above / len(twins) if twins else None
        row["questions"], row["questions with a twin"] = len(problems), len(twins)
        out[name] = row
    return out


def _corpus() -> list[Any]:
    from archon import data

    return data.corpus("facts")


def build_retrievers() -> dict[str, Any]:
    """bm25, dense and hybrid over the facts corpus (indexes from the cache when there)."""
    from archon.retrieval.bm25 import BM25Retriever
    from archon.retrieval.dense import DenseRetriever
    from archon.retrieval.hybrid import HybridRetriever

    docs = _corpus()
    bm25 = BM25Retriever("bm25", docs)
    dense = DenseRetriever("dense", docs)
    return {"bm25": bm25, "dense": dense, "hybrid": HybridRetriever("hybrid", {"bm25": bm25, "dense": dense})}


def search_all(retriever: Any, problems: list[Any], k: int) -> tuple[list[list[Any]], float]:
    """Every problem's top ``k`` (concurrently: one batch), and the seconds it took."""

    async def main() -> list[list[Any]]:
        return list(await asyncio.gather(*(retriever.search(p.question, k) for p in problems)))

    start = time.perf_counter()
    found = asyncio.run(main())
    return found, time.perf_counter() - start


def reader_spec(k: int) -> Any:
    """tiny-l greedy after the top ``k`` BM25 passages (no retrieval at k = 0)."""
    from archon.spec import parse_spec

    answer: dict[str, Any] = {"id": "answer", "op": "sample",
                              "params": {"engine": "reader", "n": 1, "temperature": 0, "max_tokens": 96}}  # fmt: skip
    pipeline = [answer]
    if k:
        pipeline = [{"id": "docs", "op": "retrieve", "params": {"retriever": "bm25", "k": k}},
                    {**answer, "inputs": ["docs"]}]  # fmt: skip
    return parse_spec({
        "engines": {"reader": {"model": "tiny-l"}},
        "retrievers": {"bm25": {"kind": "bm25", "corpus": "facts"}},
        "budget": {"hardware": "h100"},
        "pipeline": pipeline,
    })  # fmt: skip


def reader_curve(problems: list[Any]) -> list[dict[str, Any]]:
    """Accuracy, FLOPs per problem and retrieval's wall-time share at each k."""
    from archon.runtime import Runner

    rows = []
    for k in READER_KS:
        runner = Runner(reader_spec(k))
        runner.prepare()
        start = time.perf_counter()
        s = asyncio.run(runner.run(problems))
        wall = time.perf_counter() - start
        asyncio.run(runner.aclose())
        nodes = s["cost"]["by_node"]
        docs_seconds = nodes.get("docs", {}).get("seconds", 0.0)
        rows.append({
            "k": k, "accuracy": s["accuracy"], "flops_per_problem": s["per_problem"]["flops"],
            "prompt_tokens_per_problem": s["per_problem"]["prompt_tokens"],
            "latency_ms_per_problem": 1e3 * s["per_problem"]["latency"], "errors": s["errors"],
            "wall_seconds": wall, "retrieval_seconds": docs_seconds,
            "retrieval_share_of_wall": docs_seconds / wall if wall else None,
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


DRAG_MS = (0, 1, 2, 4)


def _run(spec: dict[str, Any], problems: list[Any]) -> tuple[dict[str, Any], Any]:
    from archon.runtime import Runner
    from archon.spec import parse_spec

    runner = Runner(parse_spec(spec))
    summary = asyncio.run(runner.run(problems))
    asyncio.run(runner.aclose())
    return summary, runner


def _base(pipeline: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "engines": {"reader": {"model": "tiny-l"}},
        "retrievers": {"bm25": {"kind": "bm25", "corpus": "facts"}},
        "budget": {"hardware": "h100"},
        "pipeline": pipeline,
    }


ANSWER = {"id": "answer", "op": "sample", "params": {"engine": "reader", "n": 1, "temperature": 0, "max_tokens": 96}}


def drag_curve(problems: list[Any]) -> list[dict[str, Any]]:
    """DRAG: tiny-l with its top BM25 passage after m solved dev examples, each with its own top passage."""
    rows = []
    for m in DRAG_MS:
        pipeline = [{"id": "docs", "op": "retrieve", "params": {"retriever": "bm25", "k": 1}},
                    {"id": "shots", "op": "demonstrations", "inputs": ["docs"],
                     "params": {"m": m, "k": 1, "retriever": "bm25"}},
                    {**ANSWER, "inputs": ["shots"]}]  # fmt: skip
        s, _ = _run(_base(pipeline), problems)
        rows.append({"m": m, "k": 1, "accuracy": s["accuracy"], "flops_per_problem": s["per_problem"]["flops"],
                     "prompt_tokens_per_problem": s["per_problem"]["prompt_tokens"],
                     "errors": s["errors"]})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def multihop(problems: list[Any]) -> dict[str, Any]:
    """Two-hop questions: what one retrieval finds, retrieval again from the first answer, and iterdrag on tiny-l."""
    bm25 = build_retrievers()["bm25"]
    found, _ = search_all(bm25, problems, 10)
    recall = {}
    for k in (1, 3, 10):
        first = [p.metadata["gold_doc_ids"][0] in {x.id for x in f[:k]} for p, f in zip(problems, found, strict=True)]
        both = [set(p.metadata["gold_doc_ids"]) <= {x.id for x in f[:k]} for p, f in zip(problems, found, strict=True)]
        recall[f"person@{k}"], recall[f"both@{k}"] = sum(first) / len(first), sum(both) / len(both)
    out: dict[str, Any] = {"problems": len(problems), "one_retrieval_recall": recall, "runs": []}
    single = [{"id": "docs", "op": "retrieve", "params": {"retriever": "bm25", "k": 2}}, {**ANSWER, "inputs": ["docs"]}]
    interleaved = [
        {"id": "docs", "op": "retrieve", "params": {"retriever": "bm25", "k": 1}},
        {"id": "first", "op": "sample", "inputs": ["docs"],
         "params": {"engine": "reader", "n": 1, "temperature": 0, "max_tokens": 96}},
        {"id": "more", "op": "retrieve", "inputs": ["first"],
         "params": {"retriever": "bm25", "k": 1, "query": "{answer}", "mode": "append"}},
        {"id": "answer", "op": "sample", "inputs": ["more"],
         "params": {"engine": "reader", "n": 1, "temperature": 0, "max_tokens": 96}},
    ]  # fmt: skip
    iterdrag = [{"id": "answer", "op": "iterdrag", "params": {"engine": "reader", "retriever": "bm25", "k": 1}}]
    for name, pipeline in (("one retrieval, k = 2", single), ("retrieve again from the first answer", interleaved),
                           ("iterdrag (tiny-l writes the follow-ups)", iterdrag)):  # fmt: skip
        s, runner = _run(_base(pipeline), problems)
        row: dict[str, Any] = {"pipeline": name, "accuracy": s["accuracy"],
                               "flops_per_problem": s["per_problem"]["flops"], "errors": s["errors"]}  # fmt: skip
        if name.startswith("retrieve again"):
            hits = [set(p.metadata["gold_doc_ids"]) <= {x["id"] for e in r["trace"] if e["op"] == "retrieve"
                                                        for x in e["passages"]}
                    for p, r in zip(problems, runner.records, strict=True)]  # fmt: skip
            row["both_gold_in_context"] = sum(hits) / len(hits)
        if name.startswith("iterdrag"):
            events = [next(e for e in r["trace"] if e["op"] == "iterdrag") for r in runner.records]
            row["well_formed_follow_ups_per_problem"] = sum(len(e["hops"]) for e in events) / len(events)
            row["malformed_share"] = sum(bool(e["malformed"]) for e in events) / len(events)
        out["runs"].append(row)
        print(json.dumps(row), flush=True)
    return out


MULTIHOP_KS = (1, 2, 3, 5)


def multihop_curve(problems: list[Any]) -> list[dict[str, Any]]:
    """One BM25 retrieval of k passages for a two-hop question, then tiny-l greedy: the fixed-k baselines."""
    rows = []
    for k in MULTIHOP_KS:
        pipeline = [{"id": "docs", "op": "retrieve", "params": {"retriever": "bm25", "k": k}},
                    {**ANSWER, "inputs": ["docs"]}]  # fmt: skip
        s, _ = _run(_base(pipeline), problems)
        rows.append({"k": k, "accuracy": s["accuracy"], "flops_per_problem": s["per_problem"]["flops"],
                     "errors": s["errors"]})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def studies(
    problems: int,
    budgets: list[float],
    trials: int,
    minibatch: int,
    curve: list[dict],
    *,
    spec: str = "rag_tune.yaml",
    split: str = "test",
) -> list[dict]:
    """Tune ``examples/SPEC`` under each budget; its best on ``split`` against the best fixed k that fits."""
    from cli_runs import archon

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for budget in budgets:
            study = Path(tmp) / f"{budget:g}"
            start = time.perf_counter()
            tuned = archon(
                "tune", str(ROOT / "examples" / spec), "--budget-flops", f"{budget:g}", "--trials",
                str(trials), "--minibatch", str(minibatch), "--out", str(study), may_fail=True,
            )  # fmt: skip
            minutes = (time.perf_counter() - start) / 60
            fits = [r for r in curve if r["flops_per_problem"] <= budget]
            base = max(fits, key=lambda r: r["accuracy"]) if fits else None
            row: dict[str, Any] = {
                "budget": budget, "study minutes": round(minutes, 1), "best fixed k": base and base["k"],
                "best fixed k accuracy": base and base["accuracy"],
                "best fixed k FLOPs": base and base["flops_per_problem"],
            }  # fmt: skip
            if "error" in tuned:
                out.append({**row, "error": tuned["error"], "beats best fixed k": False})
                continue
            run = archon("run", str(study / "best.yaml"), "--split", split, "--limit", str(problems))
            import yaml

            chosen = {
                n["id"]: n.get("params", {}) for n in yaml.safe_load((study / "best.yaml").read_text())["pipeline"]
            }
            row.update({
                "chosen": chosen, "test accuracy": run["accuracy"],
                "test FLOPs per problem": run["per_problem"]["flops"],
                "beats best fixed k": base is None or run["accuracy"] > base["accuracy"],
            })  # fmt: skip
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="40 problems for recall, 16 for the reader, no study")
    ap.add_argument("--problems", type=int, default=200, help="test problems of the reader curve and the studies")
    ap.add_argument("--budgets", type=float, nargs="+", default=[4e8, 8e8])
    ap.add_argument("--multihop-budgets", type=float, nargs="+", default=[2e9])
    ap.add_argument("--multihop-trials", type=int, default=16)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--minibatch", type=int, default=100)
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    import torch

    from archon import data

    n_recall = 40 if args.quick else 500
    n_reader = 16 if args.quick else args.problems
    dev = data.load("facts", "dev")[:n_recall]
    test = data.load("facts", "test")[:n_reader]
    retrievers = build_retrievers()
    found, seconds = {}, {}
    for name, r in retrievers.items():
        found[name], seconds[name] = search_all(r, dev, max(KS))
    report: dict[str, Any] = {
        "machine": {"cpu": platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "date": time.strftime("%Y-%m-%d"),
        "recall": recall_table(dev, found),
        "search_seconds_per_query": {k: v / len(dev) for k, v in seconds.items()},
        "indexes": {k: r.index_info for k, r in retrievers.items()},
    }
    for name, row in report["recall"].items():
        print(name, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}, flush=True)
    report["reader"] = reader_curve(test)
    report["drag"] = drag_curve(test)
    two_hop = data.load("facts", "multihop_test")[:n_reader]
    report["multihop"] = multihop(two_hop)
    report["multihop"]["fixed_k"] = multihop_curve(two_hop)
    if not args.quick:
        report["studies"] = studies(n_reader, args.budgets, args.trials, args.minibatch, report["reader"])
        report["multihop_studies"] = studies(
            n_reader,
            args.multihop_budgets,
            args.multihop_trials,
            args.minibatch,
            report["multihop"]["fixed_k"],
            spec="rag_tune_multihop.yaml",
            split="multihop_test",
        )
    name = "retrieval_quick.json" if args.quick else "retrieval.json"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / name).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.results / name}")


if __name__ == "__main__":
    main()
