"""MCTS on the embedded world: UCT visits in the tree, exactly `returns` finished solutions, budgets kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from archon import data
from archon.spec import load_spec, parse_spec
from tests.search.test_beam import assert_finished_best_first, run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mcts.yaml"


@pytest.fixture(scope="module")
def searched():
    return run(load_spec(EXAMPLE), data.load("arith", "dev")[:3])


def test_it_returns_exactly_the_promised_finished_solutions(searched) -> None:
    summary, records, _, reuse = searched
    assert_finished_best_first(summary, records, 4)
    assert reuse["reused"] > 2 * reuse["computed"]


def test_the_tree_holds_visits_that_add_up(searched) -> None:
    _, records, _, _ = searched
    for r in records:
        event = next(e for e in r["trace"] if e["op"] == "mcts")
        nodes = {n["id"]: n for n in event["tree"]}
        assert event["iterations"] == 12
        for n in nodes.values():
            kids = [k for k in nodes.values() if k["parent"] == n["id"] and "visits" in k]
            if kids:  # every backup below a node passes through it: its own valuation, then its children's
                assert n["visits"] == 1 + sum(k["visits"] for k in kids)
        assert sum(n["parent"] is None for n in nodes.values()) == 3  # the question's 3 children


def test_rollout_values_and_a_budget_that_is_never_exceeded() -> None:
    spec = load_spec(EXAMPLE).model_dump(exclude_none=True)
    spec["pipeline"][0]["params"] |= {"value": "rollout", "iterations": 4}
    limit = 1.5e9
    summary, records, ledger, _ = run(
        parse_spec({**spec, "budget": {"per_problem": {"flops": limit}}}), data.load("arith", "dev")[:2]
    )
    assert ledger.overruns == 0 and summary["budget"]["problems_refused"] >= 1  # the limit binds
    for r in records:
        assert r["cost"]["flops"] <= limit and len(r["candidates"]) <= 4
        assert all(c["answer"] is not None for c in r["candidates"])
