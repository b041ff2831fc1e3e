"""Budgets over whole runs: a per-run limit is shared fairly, and a budget that stopped work says so."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from archon import data
from archon.runtime import Runner
from archon.spec import load_spec
from tests.archon.test_cli import archon
from tests.archon.test_runtime import EXAMPLES


def test_a_per_run_budget_over_concurrent_problems_leaves_none_without_samples(tmp_path: Path) -> None:
    spec_file = tmp_path / "bon.yaml"
    limit = 1.2e10  # well under what 8 problems x 16 samples cost: every problem is cut
    spec_file.write_text(f"extends: {EXAMPLES / 'best_of_n.yaml'}\nbudget: {{per_run: {{flops: {limit}}}}}\n")
    problems = data.load("arith", "dev")[:8]
    runner = Runner(load_spec(spec_file), concurrency=8)  # all eight start at once
    try:
        summary = asyncio.run(runner.run(problems))
    finally:
        asyncio.run(runner.aclose())
    assert summary["cost"]["total"]["flops"] <= limit
    assert all(r["candidates"] for r in runner.records)  # first come, first served left 7 of 8 with nothing
    assert summary["budget"]["problems_refused"] >= 1 and summary["budget"]["problems_without_answer"] == 0
    assert "share of the run's budget" in summary["budget"]["first_refusal"]["refusal"]
    assert summary["cost"]["total"]["flops"] > 0.5 * limit  # the shares are used, not left idle


def test_a_budget_that_lets_nothing_run_fails_the_run_and_says_why(tmp_path: Path) -> None:
    spec_file = tmp_path / "starved.yaml"
    spec_file.write_text(f"extends: {EXAMPLES / 'greedy.yaml'}\nbudget: {{per_problem: {{tokens: 5}}}}\n")
    out = archon("run", str(spec_file), "--limit", "3", "--json")
    assert out.returncode == 1, out.stderr
    err = out.stderr.strip().splitlines()
    assert "Traceback" not in out.stderr and len(err) <= 3
    assert "the budget refused" in err[0] and "3 of 3 problems (3 got no answer)" in err[0]
    assert "tokens" in err[0] and "the budget let no problem get an answer" in err[-1]
    assert json.loads(out.stdout)["budget"]["problems_without_answer"] == 3
