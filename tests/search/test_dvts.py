"""DVTS on the embedded world: one finished solution per subtree, subtrees independent, budgets kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from archon import data
from archon.spec import load_spec, parse_spec
from tests.search.test_beam import assert_finished_best_first, run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dvts.yaml"


@pytest.fixture(scope="module")
def searched():
    return run(load_spec(EXAMPLE), data.load("arith", "dev")[:4])


def test_one_finished_solution_per_subtree_best_first(searched) -> None:
    summary, records, _, reuse = searched
    assert_finished_best_first(summary, records, 4)
    assert reuse["reused"] > 2 * reuse["computed"]


def test_each_subtree_keeps_one_child_a_round(searched) -> None:
    _, records, _, _ = searched
    for r in records:
        event = next(e for e in r["trace"] if e["op"] == "dvts")
        nodes = event["tree"]
        assert event["subtrees"] == 4 and sum(n["parent"] is None for n in nodes) == 16  # 4 subtrees x 4 children
        children: dict[int | None, list[dict]] = {}
        for n in nodes:
            children.setdefault(n["parent"], []).append(n)
        for parent, kids in children.items():
            if parent is not None:
                assert sum(k["kept"] for k in kids) <= 1  # greedy: each subtree keeps one child a round
        # the roots of the 4 subtrees are 4 groups of 4 first steps; each group keeps exactly one
        first = [n for n in nodes if n["parent"] is None]
        assert sum(n["kept"] for n in first) == 4


def test_a_budget_is_never_exceeded_and_only_finished_solutions_come_back() -> None:
    spec = load_spec(EXAMPLE)
    limit = 3e9
    spec = parse_spec({**spec.model_dump(exclude_none=True), "budget": {"per_problem": {"flops": limit}}})
    summary, records, ledger, _ = run(spec, data.load("arith", "dev")[:3])
    assert ledger.overruns == 0 and summary["budget"]["problems_refused"] >= 1
    for r in records:
        assert r["cost"]["flops"] <= limit and len(r["candidates"]) <= 4
        assert all(c["answer"] is not None for c in r["candidates"])
