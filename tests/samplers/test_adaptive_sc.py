"""``adaptive_sc``: rounds of samples until the answer is settled; pending requests cancelled and not charged."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from archon import data
from archon.runtime import Runner
from archon.spec import parse_spec
from archon.spec.load import SpecError
from samplers.adaptive_sc import AdaptiveSCParams, leader_probability, rounds, settled

PROBLEMS = data.load("arith", "dev")[:6]


def run(engine: dict[str, Any] | None = None, **params: Any) -> tuple[dict[str, Any], Runner, list[dict]]:
    spec = parse_spec({
        "engines": {"policy": {"model": "tiny-l", **(engine or {})}},
        "pipeline": [{"id": "sc", "op": "adaptive_sc",
                      "params": {"engine": "policy", "temperature": 1.0, "max_tokens": 160, **params}}],
    })  # fmt: skip
    runner = Runner(spec)
    try:
        summary = asyncio.run(runner.run(PROBLEMS))
        usage = sum(e.usage.generated_tokens for e in runner.pool.built())
    finally:
        asyncio.run(runner.aclose())
    events = [next(e for e in r["trace"] if e["op"] == "adaptive_sc") for r in runner.records]
    summary["engine_generated_tokens"] = usage
    return summary, runner, events


def test_the_rules_and_the_rounds() -> None:
    p = AdaptiveSCParams(engine="e", rule="share", threshold=0.75, min_samples=4)
    assert not settled(Counter({"5": 3}), 3, p)  # too few samples yet
    assert settled(Counter({"5": 3, "6": 1}), 4, p) and not settled(Counter({"5": 2, "6": 2}), 4, p)
    q = AdaptiveSCParams(engine="e", rule="posterior", threshold=0.95)
    assert leader_probability(Counter({"5": 5})) > 0.95 and settled(Counter({"5": 5}), 5, q)
    assert not settled(Counter({"5": 5, "6": 4}), 9, q)
    assert rounds(AdaptiveSCParams(engine="e", n_max=8, start=2)) == [2, 4, 2]
    assert rounds(AdaptiveSCParams(engine="e", n_max=6, start=3, growth=1)) == [3, 3]
    with pytest.raises(ValueError, match="start"):
        AdaptiveSCParams(engine="e", n_max=2, start=4)


def test_it_stops_when_settled_and_draws_everything_when_never() -> None:
    easy, _, events = run(n_max=16, start=2, rule="share", threshold=0.01, min_samples=2)
    assert all(e["drawn"] == 2 and e["stopped"] == "settled" for e in events)
    never, runner, events = run(n_max=8, start=2, rule="posterior", threshold=1.0)
    assert all(e["drawn"] == 8 and e["stopped"] == "n_max" for e in events)
    assert all(len(r["candidates"]) == 8 for r in runner.records)
    assert never["cost"]["total"]["flops"] > 3 * easy["cost"]["total"]["flops"]
    _, _, events = run(n_max=32, start=2, rule="posterior", threshold=0.9)
    drawn = [e["drawn"] for e in events]
    assert min(drawn) >= 2 and max(drawn) <= 32 and len(set(drawn)) > 1  # easy problems stop early, others later
    for e in events:
        if e["stopped"] == "settled":
            assert e["leader_probability"] >= 0.9


def test_pending_requests_are_cancelled_and_never_computed_or_charged() -> None:
    # one request per engine batch: when the first two samples settle it, the round's other six are still queued
    summary, _, events = run(engine={"max_batch": 1}, n_max=8, start=8, rule="share", threshold=0.01,
                                  min_samples=2)  # fmt: skip
    assert all(e["drawn"] >= 2 and e["cancelled"] >= 1 and e["drawn"] + e["cancelled"] == 8 for e in events)
    drawn_tokens = summary["cost"]["total"]["generated_tokens"]
    assert summary["engine_generated_tokens"] == drawn_tokens  # what was charged is what the engine computed
    assert summary["cost"]["total"]["calls"] == sum(e["drawn"] for e in events)


def test_bad_params_are_refused_when_the_spec_is_read() -> None:
    with pytest.raises(SpecError, match="start"):
        run(n_max=2, start=4)
