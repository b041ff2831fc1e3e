"""``rpc_vote``: distinct paths' probabilities summed per answer, after pruning the low Weibull component."""

from __future__ import annotations

import asyncio
import math

from archon import data
from archon.core import Candidate
from archon.runtime import Runner
from archon.spec import parse_spec
from verifiers.rpc import path_probability, rpc, weibull_mixture


def cand(text: str, answer: str | None, p: float | None, tokens: int = 4) -> Candidate:
    lp = None if p is None else (math.log(p),) * tokens
    return Candidate(text, answer=answer, logprobs=lp)


def test_a_distinct_path_counts_once_and_probability_outweighs_votes() -> None:
    cs = [cand("a1", "1", 0.8), cand("a2", "1", 0.7), *(cand("b", "2", 0.5) for _ in range(3))]
    ranked, info = rpc(cs, prune=False)
    assert ranked[0].answer == "1" and math.isclose(ranked[0].scores["rpc"], 1.5 / 2.0)
    assert info["pruned"] == 0 and info["voters"] == 5
    # by votes "2" would win (3 against 2); three copies of one text are one path of 0.5


def test_pruning_removes_the_low_component_below_the_mean() -> None:
    low = [cand(f"w{i}", "9", 0.06 + 0.002 * i) for i in range(10)]  # many distinct unlikely paths
    high = [cand(f"r{i}", "4", 0.25 + 0.01 * i) for i in range(2)]
    unpruned, _ = rpc([*low, *high], prune=False)
    assert unpruned[0].answer == "9"  # ten paths of ~0.07 outweigh two of ~0.25
    pruned, info = rpc([*low, *high], prune=True)
    assert info["pruned"] == 10 and pruned[0].answer == "4" and pruned[0].scores["rpc"] == 1.0
    assert info["fit"]["components"][0]["mean"] < info["fit"]["components"][1]["mean"]


def test_candidates_without_logprobs_or_answers_do_not_vote_and_mixtures_need_data() -> None:
    cs = [cand("x", "1", None), cand("y", None, 0.9), cand("z", "3", 0.2)]
    ranked, info = rpc(cs)
    assert ranked[0].answer == "3" and info["voters"] == 1 and info["fit"] is None
    assert rpc([cand("x", "1", None)])[0][0].scores == {}
    assert weibull_mixture([0.5, 0.5, 0.5, 0.5]) is None and weibull_mixture([0.1, 0.2]) is None
    assert path_probability(cand("t", "1", 0.5)) == 0.5


def test_rpc_vote_in_a_pipeline_uses_the_samples_own_logprobs() -> None:
    problems = data.load("arith", "dev")[:5]
    spec = parse_spec({
        "engines": {"policy": {"model": "tiny-l"}},
        "pipeline": [
            {"id": "draw", "op": "sample", "params": {"engine": "policy", "n": 12, "temperature": 1.0,
                                                      "max_tokens": 160, "logprobs": True}},
            {"id": "pick", "op": "rpc_vote", "inputs": ["draw"]},
        ],
    })  # fmt: skip
    runner = Runner(spec)
    try:
        summary = asyncio.run(runner.run(problems))
    finally:
        asyncio.run(runner.aclose())
    assert summary["errors"] == 0
    for rec in runner.records:
        event = next(e for e in rec["trace"] if e["op"] == "rpc_vote")
        assert event["voters"] >= 6 and 0 <= event["pruned"] < event["voters"]
        assert 0 < rec["candidates"][0]["scores"]["rpc"] <= 1
        assert rec["answer"] == rec["candidates"][0]["answer"]
