"""``cascade``: the small model's answer stands when it is confident; below the threshold the large one answers."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from archon import data
from archon.runtime import Runner
from archon.spec import parse_spec
from archon.spec.load import SpecError

PROBLEMS = data.load("arith", "dev")[:6]


def run(**params: Any) -> tuple[dict[str, Any], list[dict[str, Any]], Runner]:
    spec = parse_spec({
        "engines": {"small": {"model": "tiny-s"}, "large": {"model": "tiny-l"}},
        "verifiers": {"orm": {"kind": "reward_model", "model": "tiny-orm"}},
        "pipeline": [{"id": "answer", "op": "cascade",
                      "params": {"small": "small", "large": "large", "n": 4, "max_tokens": 160, **params}}],
    })  # fmt: skip
    runner = Runner(spec)
    try:
        summary = asyncio.run(runner.run(PROBLEMS))
    finally:
        asyncio.run(runner.aclose())
    events = [next(e for e in r["trace"] if e.get("op") == "cascade") for r in runner.records]
    return summary, events, runner


def models(runner: Runner) -> set[str]:
    return {c["model"] for r in runner.records for c in r["candidates"]}


def test_the_threshold_decides_which_model_answers_and_both_are_charged() -> None:
    never, events, runner = run(threshold=0.0)
    assert not any(e["escalated"] for e in events) and models(runner) == {"small"}
    always, events, runner = run(threshold=1.01)
    assert all(e["escalated"] and e["answered_by"] == "large" for e in events) and models(runner) == {"large"}
    assert always["cost"]["total"]["flops"] > never["cost"]["total"]["flops"]  # the small samples, then the large
    _, events, runner = run(threshold=0.75)
    escalated = [e["escalated"] for e in events]
    assert escalated == [e["confidence"] < 0.75 for e in events]
    for rec, e in zip(runner.records, events, strict=True):
        assert rec["candidates"][0]["model"] == ("large" if e["escalated"] else "small")
        assert 0 <= e["confidence"] <= 1


def test_certainty_is_the_winning_samples_geometric_mean_token_probability() -> None:
    _, events, _ = run(signal="certainty", threshold=0.0)
    assert all(0 < e["confidence"] < 1 for e in events)
    # a greedy-ish small model is more certain than one sampling hot
    _, hot, _ = run(signal="certainty", threshold=0.0, temperature=1.5)
    assert sum(e["confidence"] for e in hot) < sum(e["confidence"] for e in events)
    assert not math.isnan(sum(e["confidence"] for e in hot))


def test_a_verifier_signal_scores_the_small_samples_and_needs_a_verifier() -> None:
    _, events, runner = run(signal="verifier", verifier="orm", threshold=0.5)
    for rec, e in zip(runner.records, events, strict=True):
        if not e["escalated"]:
            assert rec["candidates"][0]["scores"]["orm"] == pytest.approx(e["confidence"])
    with pytest.raises(SpecError, match="signal 'verifier' needs verifier"):
        run(signal="verifier")
