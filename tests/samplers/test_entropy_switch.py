"""Entropy-adaptive switching: the engine's entropy exits, two models writing in turns, and what it costs."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from archon import data
from archon.core import ChargedEngine, GenRequest, RequestError, UnsupportedFeatureError
from archon.runtime import Runner
from archon.spec import parse_spec
from budgets import Ledger, Scope
from samplers.switching import EntropySwitch
from samplers.transformers_engine import TransformersEngine
from samplers.vllm_engine import sampling_kwargs

PROBLEMS = data.load("arith", "dev")[:6]


@pytest.fixture(scope="module")
def engines() -> Any:
    small, large = TransformersEngine("tiny-s"), TransformersEngine("tiny-l")
    yield small, large
    small.close()
    large.close()


def prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": PROBLEMS[i].question}]


def gen(engine: TransformersEngine, request: GenRequest) -> Any:
    return asyncio.run(engine.generate(request)).completions[0]


def greedy(engine: TransformersEngine, p: Any, max_tokens: int = 160) -> Any:
    return gen(engine, GenRequest(p, max_tokens=max_tokens, temperature=0, entropies=True))


def test_the_requests_validate_their_exits() -> None:
    assert GenRequest("x", exit_entropy_above=[0.5, 3]).exit_entropy_above == (0.5, 3)
    for bad in [(-1, 3), (0.5, 0), (0.5,), "0.5", (math.nan, 2), (0.5, 2.5)]:
        with pytest.raises(RequestError, match="exit_calm_below: must be"):
            GenRequest("x", exit_calm_below=bad)
    assert GenRequest("x", exit_calm_below=(1, 2)).entropy_exits and not GenRequest("x").entropy_exits
    with pytest.raises(UnsupportedFeatureError, match="transformers engine"):
        sampling_kwargs(GenRequest("x", exit_entropy_above=(1.0, 2)))


def test_the_unsure_exit_stops_before_the_first_token_whose_rolling_mean_entropy_is_too_high(engines) -> None:
    small, _ = engines
    checked = 0
    for i in range(len(PROBLEMS)):
        full = greedy(small, prompt(i))
        ents = full.entropies
        for w in (1, 3):
            tau = sorted(ents)[len(ents) * 3 // 4]  # somewhere inside this solution
            means = [sum(ents[max(0, j - w + 1) : j + 1]) / min(w, j + 1) for j in range(len(ents))]
            first = next((j for j, m in enumerate(means) if m > tau), None)
            out = gen(small, GenRequest(prompt(i), max_tokens=160, temperature=0, exit_entropy_above=(tau, w)))
            if first is None:
                assert out.token_ids == full.token_ids and out.finish_reason == full.finish_reason
            else:
                assert out.token_ids == full.token_ids[:first] and out.finish_reason == "switch"
                checked += 1
    assert checked >= 4
    out = gen(small, GenRequest(prompt(0), temperature=0, exit_entropy_above=(0.0, 1)))
    assert out.token_ids == () and out.text == "" and out.finish_reason == "switch"


def test_the_calm_exit_stops_after_dwell_tokens_below_tau_and_the_kv_is_kept(engines) -> None:
    _, large = engines
    full = greedy(large, prompt(1))
    ents, d = full.entropies, 3
    tau = sorted(ents)[len(ents) // 2]
    last = next(j for j in range(d - 1, len(ents)) if all(e < tau for e in ents[j - d + 1 : j + 1]))
    out = gen(large, GenRequest(prompt(1), max_tokens=160, temperature=0, exit_calm_below=(tau, d)))
    assert out.token_ids == full.token_ids[: last + 1] and out.finish_reason == "switch"
    # the next turn continues the KV of prompt + those tokens (the last one not fed yet)
    ids = (*large.encode(prompt(1)), *out.token_ids)
    after = asyncio.run(large.generate(GenRequest(ids, max_tokens=4, temperature=0)))
    assert after.usage.cached_tokens == len(ids) - 1


def test_after_an_unsure_exit_every_token_it_wrote_is_cached(engines) -> None:
    small, _ = engines
    out = gen(small, GenRequest(prompt(2), max_tokens=160, temperature=0, exit_entropy_above=(0.05, 1)))
    assert out.finish_reason == "switch" and out.token_ids
    ids = (*small.encode(prompt(2)), *out.token_ids, *small.encode("9")[-1:])
    after = asyncio.run(small.generate(GenRequest(ids, max_tokens=2, temperature=0)))
    assert after.usage.cached_tokens == len(ids) - 1  # all but the one token it had never seen


def test_the_end_points_are_each_model_alone(engines) -> None:
    small, large = engines
    for i in range(3):
        alone = EntropySwitch(small, large, tau=100.0)
        (one,) = asyncio.run(alone.complete(GenRequest(prompt(i), max_tokens=160, temperature=0)))
        assert one.completion.text == greedy(small, prompt(i)).text and one.large_tokens == 0 and one.switches == 0
        big = EntropySwitch(small, large, tau=0.0)
        (two,) = asyncio.run(big.complete(GenRequest(prompt(i), max_tokens=160, temperature=0)))
        assert two.completion.text == greedy(large, prompt(i)).text and two.small_tokens == 0


def test_each_segment_is_what_its_model_writes_from_there(engines) -> None:
    small, large = engines
    switch = EntropySwitch(small, large, tau=0.3, window=2, dwell=3)
    done = asyncio.run(switch.complete(GenRequest(prompt(3), n=1, max_tokens=160, temperature=0, entropies=True)))
    assert len(done) == 1
    mixed = done[0]
    seen = 0
    for i in range(len(PROBLEMS)):
        (res,) = asyncio.run(switch.complete(GenRequest(prompt(i), max_tokens=160, temperature=0, entropies=True)))
        written: list[int] = []
        base = tuple(small.encode(prompt(i)))
        for seg in res.segments:
            engine = small if seg.model == "small" else large
            ref = greedy(engine, (*base, *written), max_tokens=len(seg.token_ids))
            assert ref.token_ids == seg.token_ids
            written += seg.token_ids
            if seg.model == "large":
                assert all(e < 0.3 for e in ref.entropies[-3:]) or len(written) == len(res.completion.token_ids)
        assert tuple(written) == res.completion.token_ids
        assert len(res.completion.entropies or ()) == len(written)
        seen += res.switches
    assert seen >= 2 and mixed.small_tokens > 0


def test_every_turn_is_charged_and_the_incoming_model_prefills_only_what_it_has_not_seen(engines) -> None:
    small, large = engines
    ledger = Ledger()
    switch = EntropySwitch(
        ChargedEngine(small, ledger, Scope("a", "p")), ChargedEngine(large, ledger, Scope("b", "p")),
        tau=0.3, window=2, dwell=3,
    )  # fmt: skip
    small.prefix_cache.clear()
    large.prefix_cache.clear()
    (res,) = asyncio.run(switch.complete(GenRequest(prompt(4), max_tokens=160, temperature=0)))
    assert res.switches >= 2, "this problem should switch"
    base = len(small.encode(prompt(4)))
    # each model's computed prompt tokens: its first turn's prompt, then what the other model wrote since
    fed = {"small": 0, "large": 0}  # tokens each model has KV for
    expect = {"small": 0, "large": 0}
    pos = base
    first = True
    for seg in res.segments:
        m = seg.model
        if first and m == "large":  # the small model saw the prompt and handed over at once
            expect["small"], fed["small"] = base, base
        expect[m] += pos - fed[m]
        pos += len(seg.token_ids)
        fed[m] = pos if m == "small" else pos - 1  # the large model's last token is not fed yet
        first = False
    by = ledger.by("node")
    computed = {m: by[n].prompt_tokens - by[n].cached_tokens for m, n in (("small", "a"), ("large", "b"))}
    # a small turn that wrote nothing still prefilled what it had not seen
    assert computed["large"] == expect["large"]
    assert computed["small"] >= expect["small"]
    assert by["b"].generated_tokens == res.large_tokens and by["a"].generated_tokens == res.small_tokens
    assert by["a"].flops > 0 and by["b"].flops > 0


def test_a_stop_string_ends_it_across_turns_and_the_tokenizers_must_match(engines) -> None:
    small, large = engines
    switch = EntropySwitch(small, large, tau=0.3, window=2, dwell=3)
    (res,) = asyncio.run(switch.complete(GenRequest(prompt(3), max_tokens=160, temperature=0, stop=("\n",))))
    assert "\n" not in res.completion.text and res.completion.finish_reason == "stop"

    class Other:
        name = "other"

        def encode(self, p: Any) -> tuple[int, ...]:
            return (1, 2, 3)

    with pytest.raises(RequestError, match="one tokenizer"):
        asyncio.run(EntropySwitch(small, Other(), tau=1.0).complete(GenRequest(prompt(0))))  # type: ignore[arg-type]


def run(**params: Any) -> tuple[dict[str, Any], Runner]:
    spec = parse_spec({
        "engines": {"small": {"model": "tiny-s"}, "large": {"model": "tiny-l"}},
        "pipeline": [{"id": "answer", "op": "entropy_switch",
                      "params": {"small": "small", "large": "large", "max_tokens": 160, **params}}],
    })  # fmt: skip
    runner = Runner(spec)
    try:
        summary = asyncio.run(runner.run(PROBLEMS))
    finally:
        asyncio.run(runner.aclose())
    return summary, runner


def test_the_operator_traces_who_wrote_what_and_the_large_share_follows_tau() -> None:
    shares = []
    for tau in (0.0, 0.3, 100.0):
        summary, runner = run(tau=tau, window=2, dwell=3)
        assert summary["errors"] == 0
        events = [next(e for e in r["trace"] if e["op"] == "entropy_switch") for r in runner.records]
        large = sum(e["large_tokens"] for e in events)
        total = large + sum(e["small_tokens"] for e in events)
        for rec, e in zip(runner.records, events, strict=True):
            (segments,) = e["segments"]
            assert "".join(text for _, _, text in segments).startswith(rec["candidates"][0]["text"][:5])
            assert sum(k for m, k, _ in segments if m == "large") == e["large_tokens"]
            assert {m for m, _, _ in segments} <= {"small", "large"}
        shares.append((large / total, summary["cost"]["total"]["flops"]))
    assert shares[0][0] == 1.0 and shares[2][0] == 0.0 and 0 < shares[1][0] < 1
    assert shares[2][1] < shares[1][1] < shares[0][1]  # the large model's tokens are what costs


def test_n_samples_are_drawn_and_the_knobs_are_validated() -> None:
    _, runner = run(tau=0.3, n=3, temperature=1.0)
    assert all(len(r["trace"][0]["segments"]) == 3 for r in runner.records)
    from archon.spec.load import SpecError

    with pytest.raises(SpecError, match="window"):
        run(window=0)


def test_a_request_without_an_exit_keeps_the_cache_key_it_had_before_exits_existed() -> None:
    request = GenRequest("2+3", n=2, stop="\n")
    assert request.key() == "79949f04697f5b61b64ea14ce64fe60a"  # the key before the exit fields were added
    assert request.replace(exit_calm_below=(1.0, 2)).key() != request.key()
