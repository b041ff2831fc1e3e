"""Beam search on the embedded world: exactly n finished solutions, the tree in the trace, budgets kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from archon import data
from archon.runtime import Runner
from archon.spec import SpecError, load_spec, parse_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "beam_search.yaml"


def run(spec, problems):
    runner = Runner(spec)
    try:
        summary = asyncio.run(runner.run(problems))
        engine = runner.pool.get("policy")
        reuse = {"computed": engine.stats.prefill_tokens, "reused": engine.prefix_cache.stats.reused_tokens}
        return summary, runner.records, runner.ledger, reuse
    finally:
        asyncio.run(runner.aclose())


def assert_finished_best_first(summary: dict, records: list, count: int, *, by: str = "prm") -> None:
    """No error; every problem has ``count`` finished solutions, best first by ``by``."""
    assert summary["errors"] == 0
    for r in records:
        cands = r["candidates"]
        assert len(cands) == count and all(c["answer"] is not None and "####" in c["text"] for c in cands)
        scores = [c["scores"][by] for c in cands]
        assert scores == sorted(scores, reverse=True)


@pytest.fixture(scope="module")
def searched():
    return run(load_spec(EXAMPLE), data.load("arith", "dev")[:4])


def test_it_returns_exactly_n_finished_solutions_best_first(searched) -> None:
    summary, records, _, _ = searched
    assert_finished_best_first(summary, records, 8)


def test_the_tree_is_in_the_trace(searched) -> None:
    _, records, _, _ = searched
    for r in records:
        event = next(e for e in r["trace"] if e["op"] == "beam_search")
        nodes = event["tree"]
        assert len(nodes) > 8 and event["rounds"] >= 1
        ids = {n["id"] for n in nodes}
        assert all(n["parent"] is None or n["parent"] in ids for n in nodes)
        parents = {n["parent"] for n in nodes if n["parent"] is not None}
        assert parents <= {n["id"] for n in nodes if n["kept"]} | {n["id"] for n in nodes if not n["finished"]}
        assert sum(n["parent"] is None for n in nodes) == 8  # the first step: n samples of the question
        assert sum(n["finished"] for n in nodes) >= 8


def test_partial_solutions_reuse_their_prefix(searched) -> None:
    _, records, _, reuse = searched
    # every step after the first continues a partial solution: most of its prompt is found in the cache
    assert reuse["reused"] > 2 * reuse["computed"]
    assert all(r["cost"]["cached_tokens"] > 0 for r in records)  # and the ledger credits it


def test_a_budget_is_never_exceeded_and_only_finished_solutions_come_back() -> None:
    spec = load_spec(EXAMPLE).model_copy(deep=True)
    limit = 1e9
    spec = parse_spec({**spec.model_dump(exclude_none=True), "budget": {"per_problem": {"flops": limit}}})
    summary, records, ledger, _ = run(spec, data.load("arith", "dev")[:3])
    assert ledger.overruns == 0
    for r in records:
        assert r["cost"]["flops"] <= limit
        assert all(c["answer"] is not None for c in r["candidates"])
        assert len(r["candidates"]) <= 8
    assert summary["budget"]["problems_refused"] >= 1


def test_width_must_divide_n_and_the_verifier_must_score_steps(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("n: 8, width: 4", "n: 6, width: 4"))
    with pytest.raises(SpecError, match="n \\(6\\) must be a multiple of width \\(4\\)"):
        Runner(load_spec(bad))
    orm = tmp_path / "orm.yaml"
    orm.write_text(EXAMPLE.read_text().replace("model: tiny-prm", "model: tiny-orm"))
    summary, records, _, _ = run(load_spec(orm), data.load("arith", "dev")[:1])
    assert summary["errors"] == 1 and "outcome verifier" in records[0]["error"]


def test_a_run_after_another_in_the_process_is_charged_as_if_alone() -> None:
    """Shared models (a study's trials) reuse each other's KV, but each run's PRM is charged what it costs alone."""
    from archon.runtime import Resources, per_sample_seeds
    from samplers.engines import EnginePool

    spec = load_spec(EXAMPLE).model_copy(deep=True)
    spec.verifiers["prm"].options["incremental"] = True
    resources = Resources(EnginePool(dict(spec.engines)), wrap=per_sample_seeds)
    problems = data.load("arith", "dev")[:3]
    try:
        runs, computed = [], []
        for _ in range(2):
            runner = Runner(spec, resources=resources)
            before = resources.verifiers.get("prm")
            start = before.computed_tokens if before is not None else 0
            asyncio.run(runner.run(problems))
            computed.append(resources.verifiers["prm"].computed_tokens - start)
            prm_calls = {}  # the PRM's calls are those that generate nothing
            for scope, cost in runner.ledger.calls:
                if cost.generated_tokens == 0:
                    prm_calls.setdefault(scope.problem, []).append((cost.flops, cost.prompt_tokens, cost.latency))
            runs.append((prm_calls, [r["candidates"] for r in runner.records]))
        assert runs[0] == runs[1]  # the same PRM charges, call by call, and the same answers
        assert all(latency > 0 for calls in runs[0][0].values() for _, _, latency in calls)
        assert computed[1] < computed[0] / 2  # the second run read most of it from the first's KV and memory
    finally:
        asyncio.run(resources.aclose())


def test_lookahead_judges_a_beam_by_its_greedy_continuation() -> None:
    spec = load_spec(EXAMPLE).model_copy(deep=True)
    problems = data.load("arith", "dev")[:3]
    plain = run(spec, problems)
    spec.pipeline[0].params["lookahead"] = 2
    ahead = run(spec, problems)
    summary, records, ledger, _ = ahead
    assert_finished_best_first(summary, records, 8)
    assert ledger.total().flops > plain[2].total().flops  # the lookahead steps are charged
    for r in records:
        event = next(e for e in r["trace"] if e["op"] == "beam_search")
        assert event["lookahead"] == 2
        judged = [n for n in event["tree"] if "lookahead" in n]
        assert judged and all(n["lookahead"].count("\n") <= 2 for n in judged)
        assert any(n["lookahead"] for n in judged)  # unfinished beams were rolled on before being scored


def test_look_ahead_is_greedy_and_stops_at_the_end() -> None:
    from samplers.transformers_engine import TransformersEngine
    from search.steps import extend, look_ahead, root

    engine = TransformersEngine("tiny-l")
    try:
        p = data.load("arith", "dev")[0]
        start = root(engine, p.messages())
        (one,) = asyncio.run(look_ahead(engine, [start], 1))
        (greedy,) = asyncio.run(extend(engine, [start], 1, temperature=0.0))[0:1]
        assert one.steps == greedy[0].steps
        (far,) = asyncio.run(look_ahead(engine, [start], 30))
        assert far.finished and far.steps[:1] == one.steps and len(far.steps) <= 30
    finally:
        engine.close()
