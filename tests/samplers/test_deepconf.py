"""DeepConf: token confidences from the engine, the low-confidence exit, and confidence-filtered voting."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
import torch

from archon import data
from archon.core import GenRequest, RequestError, UnsupportedFeatureError
from archon.runtime import Runner
from archon.spec import parse_spec
from archon.spec.load import SpecError
from samplers.deepconf import trace_confidence
from samplers.transformers_engine import TransformersEngine
from samplers.vllm_engine import sampling_kwargs

PROBLEMS = data.load("arith", "dev")[:6]


@pytest.fixture(scope="module")
def engine() -> Any:
    e = TransformersEngine("tiny-l")
    yield e
    e.close()


def prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": PROBLEMS[i].question}]


def test_token_confidence_is_minus_the_mean_top_k_logprob_of_the_models_distribution(engine) -> None:
    req = GenRequest(prompt(0), max_tokens=40, temperature=0, confidences=5)
    c = asyncio.run(engine.generate(req)).completions[0]
    assert c.confidences is not None and len(c.confidences) == len(c.token_ids)
    ids = torch.tensor([[*engine.encode(prompt(0)), *c.token_ids]])
    with torch.inference_mode():
        logits = engine.model(input_ids=ids).logits[0].float()
    start = len(engine.encode(prompt(0))) - 1
    logp = torch.log_softmax(logits[start : start + len(c.token_ids)], dim=-1)
    expected = (-logp.topk(5, dim=-1).values.mean(-1)).tolist()
    assert max(abs(a - b) for a, b in zip(c.confidences, expected, strict=True)) < 1e-3
    other = asyncio.run(engine.generate(req.replace(confidences=1))).completions[0]
    # the likeliest token's log-probability is the largest: minus it is the smallest of the means
    assert all(a <= b + 1e-6 for a, b in zip(other.confidences, c.confidences, strict=True))


def test_the_low_confidence_exit_abandons_a_trace_once_its_window_mean_drops(engine) -> None:
    checked = 0
    for i in range(len(PROBLEMS)):
        full = asyncio.run(engine.generate(GenRequest(prompt(i), max_tokens=160, temperature=0, confidences=5)))
        conf = full.completions[0].confidences
        w = 4
        means = [sum(conf[j - w + 1 : j + 1]) / w for j in range(w - 1, len(conf))]
        ordered = sorted(set(means))
        q = len(ordered) // 4
        threshold = (ordered[q] + ordered[q + 1]) / 2  # between two window means: no tie to round either way
        first = next(j + w - 1 for j, m in enumerate(means) if m < threshold) if min(means) < threshold else None
        cut = asyncio.run(engine.generate(GenRequest(prompt(i), max_tokens=160, temperature=0, confidences=5,
                                                     exit_confidence_below=(threshold, w)))).completions[0]  # fmt: skip
        if first is None:
            continue
        assert cut.finish_reason == "low_confidence" and cut.token_ids == full.completions[0].token_ids[: first + 1]
        checked += 1
    assert checked >= 3
    with pytest.raises(RequestError, match="needs confidences"):
        GenRequest("x", exit_confidence_below=(1.0, 2))
    with pytest.raises(UnsupportedFeatureError):
        sampling_kwargs(GenRequest("x", confidences=5))


def test_trace_confidence_measures() -> None:
    assert trace_confidence([3, 1, 3, 3], "lowest_group", 2) == 2.0
    assert trace_confidence([3, 1], "lowest_group", 4) == 2.0  # shorter than a window: its mean
    assert math.isnan(trace_confidence([], "mean", 2))


def run(**params: Any) -> tuple[dict[str, Any], Runner, list[dict]]:
    spec = parse_spec({
        "engines": {"policy": {"model": "tiny-l"}},
        "pipeline": [{"id": "dc", "op": "deepconf",
                      "params": {"engine": "policy", "max_tokens": 160, "window": 8, "k": 5, **params}}],
    })  # fmt: skip
    runner = Runner(spec)
    try:
        summary = asyncio.run(runner.run(PROBLEMS))
    finally:
        asyncio.run(runner.aclose())
    return summary, runner, [next(e for e in r["trace"] if e["op"] == "deepconf") for r in runner.records]


def test_offline_the_most_confident_share_votes_weighted_by_confidence() -> None:
    _, runner, events = run(n=8, keep=1.0)
    assert all(e["voted"] == 8 and e["traces"] == 8 and e["abandoned"] == 0 for e in events)
    _, runner, events = run(n=8, keep=0.25)
    assert sum(e["voted"] for e in events) < 8 * len(events)  # the least confident traces were left out
    for rec, e in zip(runner.records, events, strict=True):
        assert e["voted"] >= 2  # a quarter of 8, and every trace tied with them (identical texts tie)
        confs = [c["scores"]["confidence"] for c in rec["candidates"]]
        voting = [x for x in confs if not math.isnan(x)]
        assert all(x >= e["threshold"] for x in voting) and len(voting) == e["voted"]
        assert not math.isnan(rec["candidates"][0]["scores"]["confidence"])  # the winner is a voter


def test_online_low_confidence_traces_stop_early_are_charged_less_and_do_not_vote() -> None:
    offline, _, _ = run(n=12, keep=0.5)
    online, _, events = run(n=12, keep=0.5, mode="online", warmup=4)
    assert sum(e["abandoned"] for e in events) > 0
    assert online["cost"]["total"]["generated_tokens"] < offline["cost"]["total"]["generated_tokens"]
    for e in events:
        assert e["traces"] == 12 and math.isfinite(e["threshold"])
        assert e["voted"] <= 12 - e["abandoned"]
    with pytest.raises(SpecError, match="warmup"):
        run(n=4, mode="online", warmup=4)
    with pytest.raises(SpecError, match="lowest_group"):
        run(n=8, mode="online", measure="tail")
