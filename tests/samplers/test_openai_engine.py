"""OpenAIEngine against real HTTP servers: a scripted stdlib one and ``transformers serve`` on tiny-l."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from archon.core import EngineError, GenRequest, GenResult, UnsupportedFeatureError, Usage
from samplers.openai_engine import OpenAIEngine
from tests.samplers.servers import FakeOpenAIServer, Reply, TransformersServe, completion_body, free_port

T = TypeVar("T")
TINY_CONFIG = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 103}
CHAT_QUESTION = "Evaluate left to right: 5 + 8 - 8"


def run(engine: OpenAIEngine, work: Callable[[OpenAIEngine], Awaitable[T]]) -> T:
    """Run ``work(engine)`` in a fresh event loop and close the engine's client after."""

    async def main() -> T:
        try:
            return await work(engine)
        finally:
            await engine.aclose()

    return asyncio.run(main())


def fake_engine(server: FakeOpenAIServer, **options: Any) -> OpenAIEngine:
    defaults: dict[str, Any] = {"backoff": 0.001, "max_backoff": 0.01, "timeout": 5.0}
    return OpenAIEngine("fake", base_url=server.url, **(defaults | options))


def generate(engine: OpenAIEngine, request: GenRequest) -> GenResult:
    return run(engine, lambda e: e.generate(request))


# ----- retries and errors (scripted server) -----


def failing_first(statuses: list[int], reply: Reply) -> Callable[[str, dict[str, Any]], Reply]:
    """A handler that fails with ``statuses`` in turn, then answers ``reply``."""
    pending = list(statuses)

    def handler(path: str, body: dict[str, Any]) -> Reply:
        if pending:
            status = pending.pop(0)
            return Reply(status, {"error": {"message": f"status {status}"}}, {"retry-after": "0"})
        return reply

    return handler


def test_retries_429_and_503_then_succeeds(fake_server: FakeOpenAIServer) -> None:
    fake_server.handler = failing_first([429, 503, 502], Reply(body=completion_body(["fine"])))
    result = generate(fake_engine(fake_server, max_retries=3), GenRequest("hi", max_tokens=4))
    assert result.texts == ["fine"]
    assert len(fake_server.requests) == 4


def test_gives_up_after_max_retries_with_one_line_engine_error(fake_server: FakeOpenAIServer) -> None:
    fake_server.handler = lambda path, body: Reply(503, {"error": {"message": "overloaded\nplease wait"}})
    with pytest.raises(EngineError) as info:
        generate(fake_engine(fake_server, max_retries=2), GenRequest("hi", max_tokens=4))
    message = str(info.value)
    assert "HTTP 503 after 3 attempts" in message and "overloaded please wait" in message
    assert fake_server.url in message and "\n" not in message
    assert len(fake_server.requests) == 3


def test_backoff_grows_exponentially_with_jitter(fake_server: FakeOpenAIServer) -> None:
    engine = OpenAIEngine("m", base_url=fake_server.url, backoff=0.1, max_backoff=0.3)
    delays = [engine._delay(a, None) for a in range(4)]
    assert 0.05 <= delays[0] <= 0.1 and 0.1 <= delays[1] <= 0.2 and all(0.15 <= d <= 0.3 for d in delays[2:])
    assert engine._delay(0, "0.02") == 0.02 and engine._delay(0, "60") == 0.3


def test_client_error_fails_at_once_with_server_message(fake_server: FakeOpenAIServer) -> None:
    fake_server.handler = lambda path, body: Reply(400, {"detail": "prompt must be a string."})
    with pytest.raises(EngineError, match=r"/completions: HTTP 400: prompt must be a string\.$"):
        generate(fake_engine(fake_server), GenRequest("hi"))
    assert len(fake_server.requests) == 1


def test_unreachable_server_is_an_engine_error_after_retries() -> None:
    engine = OpenAIEngine("m", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1, backoff=0.001)
    with pytest.raises(EngineError, match=r"Connection error.*after 2 attempts"):
        generate(engine, GenRequest("hi"))


def test_timeout_is_retried_then_reported(fake_server: FakeOpenAIServer) -> None:
    fake_server.handler = lambda path, body: Reply(body=completion_body(["late"]), delay=0.6)
    with pytest.raises(EngineError, match="timed out"):
        generate(fake_engine(fake_server, timeout=0.2, max_retries=1), GenRequest("hi"))
    assert len(fake_server.requests) == 2


def test_a_bad_request_fails_only_its_own_call(fake_server: FakeOpenAIServer) -> None:
    def handler(path: str, body: dict[str, Any]) -> Reply:
        if body["prompt"] == "bad":
            return Reply(422, {"detail": "no"})
        return Reply(body=completion_body(["ok"]))

    fake_server.handler = handler

    async def both(e: OpenAIEngine) -> list[Any]:
        return await asyncio.gather(
            e.generate(GenRequest("bad")), e.generate(GenRequest("good")), return_exceptions=True
        )

    bad, good = run(fake_engine(fake_server), both)
    assert isinstance(bad, EngineError) and "HTTP 422" in str(bad)
    assert isinstance(good, GenResult) and good.texts == ["ok"]


def test_concurrency_limits_requests_in_flight(fake_server: FakeOpenAIServer) -> None:
    fake_server.handler = lambda path, body: Reply(body=completion_body(["x"]), delay=0.05)

    async def many(e: OpenAIEngine) -> list[GenResult]:
        return await asyncio.gather(*(e.generate(GenRequest(f"p{i}")) for i in range(6)))

    results = run(fake_engine(fake_server, concurrency=2), many)
    assert len(results) == 6 and fake_server.max_in_flight == 2


def test_engine_works_across_event_loops(fake_server: FakeOpenAIServer) -> None:
    engine = fake_engine(fake_server)
    assert asyncio.run(engine.generate(GenRequest("a"))).texts == ["ok"]
    assert asyncio.run(engine.generate(GenRequest("b"))).texts == ["ok"]
    assert len(fake_server.requests) == 2


# ----- request bodies, n, usage -----


def test_body_carries_sampling_options(fake_server: FakeOpenAIServer) -> None:
    request = GenRequest("hi", max_tokens=7, temperature=0.7, top_p=0.9, top_k=5, seed=3, stop=["\n"])
    generate(fake_engine(fake_server, supports_n=True), request)
    generate(fake_engine(fake_server, server_stop=False), request.replace(temperature=0.0))
    sampled, greedy = fake_server.bodies("/v1/completions")
    assert sampled == {
        "model": "fake",
        "prompt": "hi",
        "max_tokens": 7,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 5,
        "seed": 3,
        "stop": ["\n"],
    }
    assert greedy == {"model": "fake", "prompt": "hi", "max_tokens": 7, "temperature": 0.0, "seed": 3}


def test_token_ids_go_to_completions_and_messages_to_chat(fake_server: FakeOpenAIServer) -> None:
    fake_server.handler = lambda path, body: Reply(body=completion_body(["x"], chat=path.endswith("chat/completions")))
    generate(fake_engine(fake_server), GenRequest([5, 6, 7]))
    result = generate(fake_engine(fake_server), GenRequest([{"role": "user", "content": "hey"}], logprobs=False))
    assert fake_server.bodies("/v1/completions")[0]["prompt"] == [5, 6, 7]
    assert fake_server.bodies("/v1/chat/completions")[0]["messages"] == [{"role": "user", "content": "hey"}]
    assert result.texts == ["x"]


def ignores_n(path: str, body: dict[str, Any]) -> Reply:
    return Reply(body=completion_body([f"s{body.get('seed')}"], prompt_tokens=10, completion_tokens=5, cached_tokens=4))


def test_n_is_fanned_out_when_the_server_ignores_it(fake_server: FakeOpenAIServer) -> None:
    fake_server.handler = ignores_n
    engine = fake_engine(fake_server)
    result = generate(engine, GenRequest("hi", n=3, seed=11))
    assert len(result.completions) == 3 and engine.supports_n is False
    assert result.usage == Usage(prompt_tokens=30, cached_tokens=12, generated_tokens=15)
    seeds = [b.get("seed") for b in fake_server.bodies()]
    assert seeds[0] == 11 and len(set(seeds)) == 3
    # the fanned-out requests run concurrently, so they reach the server in any order
    assert result.texts[0] == "s11" and sorted(result.texts) == sorted(f"s{s}" for s in seeds)
    assert fake_server.bodies()[0]["n"] == 3 and all("n" not in b for b in fake_server.bodies()[1:])

    fake_server.requests.clear()
    again = generate(engine, GenRequest("hi", n=3, seed=11))
    assert len(fake_server.requests) == 3 and all("n" not in b for b in fake_server.bodies())
    assert again.texts == result.texts  # the same seeds whether n was tried first or not


def test_n_is_sent_once_to_a_server_that_honours_it(fake_server: FakeOpenAIServer) -> None:
    fake_server.handler = lambda path, body: Reply(body=completion_body(["a"] * body.get("n", 1), prompt_tokens=9))
    engine = fake_engine(fake_server)
    result = generate(engine, GenRequest("hi", n=4))
    assert result.texts == ["a"] * 4 and engine.supports_n is True
    assert len(fake_server.requests) == 1 and result.usage.prompt_tokens == 9


def test_missing_usage_counts_zero(fake_server: FakeOpenAIServer) -> None:
    fake_server.handler = lambda path, body: Reply(
        body={"choices": [{"index": 0, "text": "x", "finish_reason": "stop"}]}
    )
    result = generate(fake_engine(fake_server), GenRequest("hi"))
    assert result.usage == Usage() and result.completions[0].finish_reason == "eos"


# ----- stops, finish reasons, logprobs -----


def with_logprobs(path: str, body: dict[str, Any]) -> Reply:
    tokens = ["a", "b", "\n", "c", "d"]
    extra = {
        "logprobs": {
            "tokens": tokens,
            "token_logprobs": [-0.1, -0.2, -0.3, -0.4, -0.5],
            "text_offset": [0, 1, 2, 3, 4],
        },
        "token_ids": [10, 11, 7, 12, 13],
    }
    return Reply(body=completion_body(["".join(tokens)], choice_extra=extra))


@pytest.mark.parametrize(("include_stop", "text"), [(False, "ab"), (True, "ab\n")])
def test_client_side_stop_cuts_text_tokens_and_logprobs(
    fake_server: FakeOpenAIServer, include_stop: bool, text: str
) -> None:
    fake_server.handler = with_logprobs
    request = GenRequest("hi", stop=["\n", "zz"], include_stop=include_stop, logprobs=True)
    (c,) = generate(fake_engine(fake_server, server_stop=False), request).completions
    assert (c.text, c.finish_reason, c.stop_str) == (text, "stop", "\n")
    assert c.logprobs == (-0.1, -0.2, -0.3) and c.token_ids == (10, 11, 7)
    assert "stop" not in fake_server.bodies()[0] and fake_server.bodies()[0]["logprobs"] == 1


def test_logprobs_without_stop_are_all_mapped(fake_server: FakeOpenAIServer) -> None:
    fake_server.handler = with_logprobs
    (c,) = generate(fake_engine(fake_server), GenRequest("hi", logprobs=True)).completions
    assert c.text == "ab\ncd" and c.finish_reason == "length" and c.token_ids == (10, 11, 7, 12, 13)
    assert c.logprobs == (-0.1, -0.2, -0.3, -0.4, -0.5) and math.isclose(c.mean_logprob, -0.3)


def test_chat_logprobs_are_mapped(fake_server: FakeOpenAIServer) -> None:
    content = [{"token": "y", "logprob": -1.5, "bytes": [121], "top_logprobs": []}]
    body = completion_body(["y"], chat=True, finish_reason="stop", choice_extra={"logprobs": {"content": content}})
    fake_server.handler = lambda path, b: Reply(body=body)
    (c,) = generate(fake_engine(fake_server), GenRequest([{"role": "user", "content": "q"}], logprobs=True)).completions
    assert c.logprobs == (-1.5,) and c.finish_reason == "eos"
    assert fake_server.bodies("/v1/chat/completions")[0]["logprobs"] is True


def test_missing_logprobs_raise_unsupported(fake_server: FakeOpenAIServer) -> None:
    with pytest.raises(UnsupportedFeatureError, match=r"returned no token logprobs.*GenRequest\.logprobs") as info:
        generate(fake_engine(fake_server), GenRequest("hi", logprobs=True))
    assert fake_server.url in str(info.value)


def test_entropies_are_unsupported(fake_server: FakeOpenAIServer) -> None:
    with pytest.raises(UnsupportedFeatureError, match=r"GenRequest\.entropies"):
        generate(fake_engine(fake_server), GenRequest("hi", entropies=True))
    assert fake_server.requests == []


@pytest.mark.parametrize(
    ("server_reason", "extra", "include_stop", "expected"),
    [
        ("length", {}, False, ("ab", "length", None)),
        ("stop", {}, False, ("ab", "eos", None)),
        ("stop", {"stop_reason": None}, False, ("ab", "eos", None)),
        ("stop", {"stop_reason": 2}, False, ("ab", "eos", None)),
        ("stop", {"stop_reason": "##"}, False, ("ab", "stop", "##")),
        ("stop", {"stop_reason": "##"}, True, ("ab##", "stop", "##")),
        ("stop", {"matched_stop": "##"}, False, ("ab", "stop", "##")),
    ],
)
def test_finish_reason_mapping(
    fake_server: FakeOpenAIServer, server_reason: str, extra: dict[str, Any], include_stop: bool, expected: tuple
) -> None:
    fake_server.handler = lambda path, b: Reply(
        body=completion_body(["ab"], finish_reason=server_reason, choice_extra=extra)
    )
    (c,) = generate(fake_engine(fake_server), GenRequest("hi", stop="##", include_stop=include_stop)).completions
    assert (c.text, c.finish_reason, c.stop_str) == expected


# ----- score -----


def echoing(path: str, body: dict[str, Any]) -> Reply:
    """vLLM-style echo: a BOS, one token per character of the prompt, then one generated token."""
    tokens = ["<s>", *body["prompt"], "Z"]
    logprobs = [None, *(-(k + 1) / 10 for k in range(len(body["prompt"]))), -9.0]
    extra = {"logprobs": {"tokens": tokens, "token_logprobs": logprobs}}
    return Reply(
        body=completion_body(
            ["".join(tokens[1:])], prompt_tokens=len(tokens) - 1, completion_tokens=1, choice_extra=extra
        )
    )


def test_score_reads_echoed_prompt_logprobs(fake_server: FakeOpenAIServer) -> None:
    fake_server.handler = echoing
    result = run(fake_engine(fake_server), lambda e: e.score("12 +", [" 3", "456", ""]))
    assert result.logprobs == ((-0.5, -0.6), (-0.5, -0.6, -0.7), ())
    assert math.isclose(result.total(1), -1.8) and result.usage == Usage(7 + 8 + 5, 0, 3)
    assert sorted(b["prompt"] for b in fake_server.bodies()) == sorted(["12 + 3", "12 +456", "12 +"])
    assert all(b["echo"] is True and b["max_tokens"] == 1 for b in fake_server.bodies())


def test_score_without_echo_support_is_unsupported(fake_server: FakeOpenAIServer) -> None:
    with pytest.raises(UnsupportedFeatureError, match="prompt logprobs"):
        run(fake_engine(fake_server), lambda e: e.score("12 +", [" 3"]))
    with pytest.raises(UnsupportedFeatureError, match="text prompt"):
        run(fake_engine(fake_server), lambda e: e.score([{"role": "user", "content": "q"}], [" 3"]))


# ----- facts and prices -----


def test_facts_from_config_or_local_directory() -> None:
    from archon.models import path

    assert OpenAIEngine("m", base_url="http://x/v1", config=TINY_CONFIG).facts.hidden_size == 64
    local = OpenAIEngine(str(path("tiny-l")), base_url="http://x/v1", name="tiny-l").facts
    assert (local.name, local.layers, local.vocab_size) == ("tiny-l", 4, 103)
    with pytest.raises(UnsupportedFeatureError, match="pass config="):
        _ = OpenAIEngine("gpt-x", base_url="http://x/v1").facts


def test_dollars_charge_computed_cached_and_generated_tokens() -> None:
    engine = OpenAIEngine(
        "m", base_url="http://x/v1", price_per_mtok_in=2.0, price_per_mtok_cached=0.5, price_per_mtok_out=8.0
    )
    assert math.isclose(engine.dollars(Usage(1_000_000, 400_000, 250_000)), 1.2 + 0.2 + 2.0)


# ----- the real transformers serve on tiny-l -----


@pytest.fixture(scope="module")
def reference() -> Any:
    """tiny-l loaded by transformers in this process, for greedy references."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from archon.models import path

    directory = str(path("tiny-l"))
    return AutoTokenizer.from_pretrained(directory), AutoModelForCausalLM.from_pretrained(directory)


def greedy_reference(reference: Any, input_ids: list[int], max_new_tokens: int) -> tuple[str, int]:
    """HF ``generate`` greedy: the decoded continuation and its number of tokens."""
    import torch

    tokenizer, model = reference
    ids = torch.tensor([input_ids])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new_tokens)
    new = out[0, len(input_ids) :].tolist()
    return tokenizer.decode(new, skip_special_tokens=True), len(new)


def tserve_engine(tserve: TransformersServe, **options: Any) -> OpenAIEngine:
    return OpenAIEngine(tserve.model, base_url=tserve.url, server_stop=False, max_retries=0, **options)


@pytest.mark.slow
@pytest.mark.parametrize("prompt", ["12 + 3 =", f"<|user|>{CHAT_QUESTION}\n<|assistant|>"])
def test_tserve_greedy_text_matches_hf_generate(tserve: TransformersServe, reference: Any, prompt: str) -> None:
    tokenizer, _ = reference
    ids = tokenizer(prompt).input_ids  # the server tokenizes text as the tokenizer does by default: no BOS
    assert ids[0] != tokenizer.bos_token_id
    expected, generated = greedy_reference(reference, ids, 20)
    result = generate(tserve_engine(tserve), GenRequest(prompt, max_tokens=20, temperature=0))
    assert result.texts == [expected]
    assert result.usage == Usage(prompt_tokens=len(ids), generated_tokens=generated)


@pytest.mark.slow
def test_tserve_greedy_chat_matches_hf_generate_on_the_template(tserve: TransformersServe, reference: Any) -> None:
    tokenizer, _ = reference
    messages = [{"role": "user", "content": CHAT_QUESTION}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    ids = list(ids["input_ids"])
    expected, generated = greedy_reference(reference, ids, 48)
    (c,) = (result := generate(tserve_engine(tserve), GenRequest(messages, max_tokens=48, temperature=0))).completions
    assert c.text == expected and "####" in c.text
    assert c.finish_reason == "eos" and generated < 48  # the model ended with </s>
    assert result.usage == Usage(prompt_tokens=len(ids), generated_tokens=generated)


@pytest.mark.slow
@pytest.mark.parametrize("server_stop", [False, True])
def test_tserve_stop_strings_cut_on_the_client(tserve: TransformersServe, server_stop: bool) -> None:
    messages = [{"role": "user", "content": CHAT_QUESTION}]
    engine = OpenAIEngine(tserve.model, base_url=tserve.url, server_stop=server_stop, max_retries=0)
    full = generate(engine, GenRequest(messages, max_tokens=48, temperature=0)).texts[0]
    first_line, _ = full.split("\n", 1)
    (c,) = generate(engine, GenRequest(messages, max_tokens=48, temperature=0, stop="\n")).completions
    assert (c.text, c.finish_reason, c.stop_str) == (first_line, "stop", "\n")
    (kept,) = generate(
        engine, GenRequest(messages, max_tokens=48, temperature=0, stop="\n", include_stop=True)
    ).completions
    assert kept.text == first_line + "\n"


@pytest.mark.slow
def test_tserve_n_is_fanned_out_and_usage_summed(tserve: TransformersServe) -> None:
    engine = tserve_engine(tserve)
    result = generate(engine, GenRequest("12 + 3 =", n=3, max_tokens=6, temperature=1.0, seed=5))
    assert len(result.completions) == 3 and engine.supports_n is False
    assert all(c.finish_reason in ("length", "eos") for c in result.completions)
    assert result.usage.prompt_tokens == 3 * 8 and 3 <= result.usage.generated_tokens <= 18


@pytest.mark.slow
def test_tserve_max_tokens_gives_length(tserve: TransformersServe) -> None:
    (c,) = generate(tserve_engine(tserve), GenRequest("12 + 3 =", max_tokens=3, temperature=0)).completions
    assert c.finish_reason == "length" and len(c.text) == 3 and c.token_ids == ()


@pytest.mark.slow
def test_tserve_unsupported_features_are_reported(tserve: TransformersServe) -> None:
    engine = tserve_engine(tserve)
    with pytest.raises(UnsupportedFeatureError, match=r"GenRequest\.logprobs") as info:
        generate(engine, GenRequest("12 + 3 =", max_tokens=3, logprobs=True))
    assert tserve.url in str(info.value)
    with pytest.raises(UnsupportedFeatureError, match="prompt logprobs"):
        run(tserve_engine(tserve), lambda e: e.score("12 + 3 =", [" 15"]))
    with pytest.raises(EngineError, match="HTTP 400: prompt must be a string"):
        generate(tserve_engine(tserve), GenRequest([25, 26], max_tokens=3))
    with pytest.raises(EngineError, match=r"HTTP 422: Unexpected fields.*top_k"):
        generate(tserve_engine(tserve), GenRequest("12", max_tokens=3, top_k=5))


@pytest.mark.slow
def test_tserve_concurrent_requests_all_complete(tserve: TransformersServe) -> None:
    async def many(e: OpenAIEngine) -> list[GenResult]:
        return await asyncio.gather(
            *(e.generate(GenRequest(f"{i} + 1 =", max_tokens=4, temperature=0)) for i in range(6))
        )

    results = run(tserve_engine(tserve, concurrency=3), many)
    assert [len(r.completions[0].text) for r in results] == [4] * 6


@pytest.mark.slow
def test_tserve_greedy_equals_the_transformers_engine(tserve: TransformersServe) -> None:
    """The same model behind an HTTP server and in-process gives the same greedy completions."""
    import archon.data
    from samplers.transformers_engine import TransformersEngine

    local = TransformersEngine("tiny-l")
    try:
        problems = archon.data.load("arith", "dev")[20:24]
        requests = [GenRequest(p.messages(), max_tokens=60, temperature=0, stop="\n") for p in problems]
        requests.append(GenRequest("7 * 8 =", max_tokens=12, temperature=0))

        async def both(e: OpenAIEngine) -> tuple[list[GenResult], list[GenResult]]:
            remote = await asyncio.gather(*(e.generate(r) for r in requests))
            here = await asyncio.gather(*(local.generate(r) for r in requests))
            return remote, here

        remote, here = run(tserve_engine(tserve), both)
        for r, h in zip(remote, here, strict=True):
            assert r.texts == h.texts and r.texts[0]
            assert r.completions[0].finish_reason == h.completions[0].finish_reason
            assert r.usage.prompt_tokens == h.usage.prompt_tokens
    finally:
        local.close()
