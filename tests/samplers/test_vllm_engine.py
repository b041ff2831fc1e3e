"""The vLLM engine, driven by a stand-in ``LLM`` (vLLM cannot run on the project's machines).

The stand-ins follow vLLM's documented interfaces: ``SamplingParams`` accepts only the keyword
arguments of the v0.8.3 signature and refuses greedy ``n > 1`` as vLLM does; ``LLM.generate`` takes
token-id prompts and one ``SamplingParams`` per prompt and returns ``RequestOutput``-shaped objects.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import types
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archon.core import (
    Engine,
    EngineError,
    GenRequest,
    RequestError,
    UnsupportedFeatureError,
)
from samplers.vllm_engine import (
    INSTALL_HINT,
    VLLMEngine,
    completion_from_output,
    continuation_logprobs,
    entropy_lower_bound,
    result_from_output,
    sampling_kwargs,
    score_kwargs,
)

# The keyword arguments of vllm.SamplingParams in v0.8.3 (docs.vllm.ai/en/v0.8.3/api/inference_params.html).
VLLM_083_SAMPLING_FIELDS = {
    "n", "best_of", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "top_p",
    "top_k", "min_p", "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens", "min_tokens", "logprobs",
    "prompt_logprobs", "detokenize", "skip_special_tokens", "spaces_between_special_tokens", "logits_processors",
    "include_stop_str_in_output", "truncate_prompt_tokens", "output_kind", "guided_decoding", "logit_bias",
    "allowed_token_ids", "extra_args", "bad_words",
}  # fmt: skip

BOS = 1
CONFIG = {
    "num_hidden_layers": 4,
    "hidden_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 384,
    "vocab_size": 256,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}


# ---- stand-ins -------------------------------------------------------------------------------


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


class FakeSamplingParams:
    """Takes only vLLM 0.8.3's keyword arguments, and refuses what vLLM refuses that matters here."""

    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - VLLM_083_SAMPLING_FIELDS
        if unknown:
            raise TypeError(f"SamplingParams got unexpected keyword arguments {sorted(unknown)}")
        if kwargs.get("temperature", 1.0) == 0 and kwargs.get("n", 1) > 1:
            raise ValueError("n must be 1 when using greedy sampling")
        if kwargs.get("top_k", -1) == 0 or kwargs.get("top_k", -1) < -1:
            raise ValueError(f"top_k must be -1 (disable), or at least 1, got {kwargs['top_k']}.")
        self.kwargs = kwargs

    def __getattr__(self, name: str) -> Any:
        return self.kwargs.get(name)


class FakeTokenizer:
    """Characters are tokens (ord); text gets a BOS token unless ``add_special_tokens=False``."""

    max_token_id = 255

    def __init__(self) -> None:
        self.templates: list[tuple[list[dict[str, str]], bool, bool]] = []

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([BOS] if add_special_tokens else []) + [ord(c) for c in text]

    def apply_chat_template(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = False, tokenize: bool = True
    ) -> str:
        self.templates.append((messages, add_generation_prompt, tokenize))
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + (
            "<assistant>" if add_generation_prompt else ""
        )


class FakeLLM:
    """Answers each prompt with ``n`` completions ``"c0"``, ``"c1"`` ...; records every call."""

    def __init__(self, max_model_len: int = 64, reject_token: int | None = None) -> None:
        self.calls: list[tuple[list[dict[str, list[int]]], list[FakeSamplingParams]]] = []
        self.tokenizer = FakeTokenizer()
        self.reject_token = reject_token
        self.llm_engine = types.SimpleNamespace(
            model_config=types.SimpleNamespace(
                max_model_len=max_model_len, hf_config=dict(CONFIG), dtype="torch.bfloat16", max_logprobs=20
            )
        )

    def get_tokenizer(self) -> FakeTokenizer:
        return self.tokenizer

    def generate(
        self, prompts: list[dict[str, list[int]]], sampling_params: list[FakeSamplingParams], use_tqdm: bool = True
    ) -> list[Any]:
        assert use_tqdm is False
        assert isinstance(sampling_params, list) and len(sampling_params) == len(prompts)
        self.calls.append((prompts, sampling_params))
        if self.reject_token is not None and any(self.reject_token in p["prompt_token_ids"] for p in prompts):
            raise ValueError(f"Token id {self.reject_token} is out of vocabulary\nmore detail")
        return [self._answer(p["prompt_token_ids"], sp) for p, sp in zip(prompts, sampling_params, strict=True)]

    @staticmethod
    def _answer(ids: list[int], sp: FakeSamplingParams) -> Any:
        outs = []
        for j in range(sp.n):
            tokens = [ord("c"), ord(str(j))][: sp.max_tokens]
            logprobs = None
            if sp.logprobs is not None:  # the chosen token (p = 1/4) ranks second; the top one is ord("z")
                logprobs = [{t: Logprob(math.log(0.25), 2), ord("z"): Logprob(math.log(0.5), 1)} for t in tokens]
            outs.append(
                types.SimpleNamespace(
                    index=j,
                    text=f"c{j}",
                    token_ids=tokens,
                    cumulative_logprob=None,
                    logprobs=logprobs,
                    finish_reason="length",
                    stop_reason=None,
                )
            )
        prompt_logprobs = None
        if sp.prompt_logprobs is not None:
            prompt_logprobs = [None] + [{t: Logprob(-t / 100), 0: Logprob(-0.01, 1)} for t in ids[1:]]
        return types.SimpleNamespace(
            prompt_token_ids=list(ids), prompt_logprobs=prompt_logprobs, outputs=outs, num_cached_tokens=len(ids) // 2
        )


def make_engine(**kwargs: Any) -> tuple[VLLMEngine, FakeLLM]:
    llm = FakeLLM(**{k: kwargs.pop(k) for k in ("max_model_len", "reject_token") if k in kwargs})
    return VLLMEngine("org/fake", llm=llm, sampling_params=FakeSamplingParams, **kwargs), llm


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def gather(*coros: Any) -> list[Any]:
    return await asyncio.gather(*coros, return_exceptions=True)


def output(**fields: Any) -> Any:
    base = {"index": 0, "text": "abc", "token_ids": [5, 6, 7], "logprobs": None, "finish_reason": "length"}
    return types.SimpleNamespace(**{"stop_reason": None, **base, **fields})


# ---- GenRequest -> SamplingParams ------------------------------------------------------------


def test_every_field_of_a_sampling_request_is_mapped():
    request = GenRequest(
        "q",
        n=4,
        max_tokens=12,
        temperature=0.7,
        top_p=0.9,
        top_k=5,
        stop=("\n", "###"),
        include_stop=True,
        seed=7,
        logprobs=True,
    )
    assert sampling_kwargs(request) == {
        "n": 4,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 5,
        "max_tokens": 12,
        "stop": ["\n", "###"],
        "include_stop_str_in_output": True,
        "seed": 7,
        "logprobs": 1,
    }


def test_defaults_map_to_vllm_defaults_and_only_known_fields():
    kw = sampling_kwargs(GenRequest("q"))
    assert kw["logprobs"] is None and kw["seed"] is None and kw["stop"] == [] and not kw["include_stop_str_in_output"]
    assert set(kw) <= VLLM_083_SAMPLING_FIELDS
    assert set(score_kwargs()) <= VLLM_083_SAMPLING_FIELDS
    FakeSamplingParams(**kw)  # accepted as vLLM would


def test_top_k_off_is_minus_one_which_every_vllm_accepts():
    assert sampling_kwargs(GenRequest("q", top_k=0))["top_k"] == -1
    assert sampling_kwargs(GenRequest("q", top_k=1))["top_k"] == 1


def test_greedy_asks_for_one_completion_with_top_p_and_top_k_off():
    kw = sampling_kwargs(GenRequest("q", n=3, temperature=0, top_p=0.5, top_k=4))
    assert (kw["n"], kw["temperature"], kw["top_p"], kw["top_k"]) == (1, 0.0, 1.0, -1)
    FakeSamplingParams(**kw)  # vLLM refuses greedy n > 1


def test_entropies_are_refused_without_entropy_top_k():
    with pytest.raises(UnsupportedFeatureError, match=r"GenRequest\.entropies") as info:
        sampling_kwargs(GenRequest("q", entropies=True))
    assert "\n" not in str(info.value)


def test_entropies_ask_for_the_top_k_logprobs():
    assert sampling_kwargs(GenRequest("q", entropies=True, logprobs=True), entropy_top_k=5)["logprobs"] == 5
    assert sampling_kwargs(GenRequest("q", logprobs=True), entropy_top_k=5)["logprobs"] == 1


def test_score_asks_for_prompt_logprobs_and_one_token():
    kw = score_kwargs()
    assert kw["prompt_logprobs"] == 1 and kw["max_tokens"] == 1 and kw["n"] == 1


# ---- entropy bound ---------------------------------------------------------------------------


def test_entropy_of_a_whole_distribution_is_exact():
    probs = [0.5, 0.25, 0.25]
    expected = -sum(p * math.log(p) for p in probs)
    assert entropy_lower_bound(math.log(p) for p in probs) == pytest.approx(expected)
    assert entropy_lower_bound([]) == 0.0


@given(st.lists(st.floats(0.01, 1.0), min_size=2, max_size=12), st.integers(0, 11))
def test_entropy_of_a_partial_view_is_a_lower_bound(weights, k):
    total = sum(weights)
    probs = sorted((w / total for w in weights), reverse=True)
    true_entropy = -sum(p * math.log(p) for p in probs)
    bound = entropy_lower_bound(math.log(p) for p in probs[: min(k, len(probs))])
    assert 0.0 <= bound <= true_entropy + 1e-9


# ---- RequestOutput -> GenResult --------------------------------------------------------------


def test_finish_reasons():
    eos = completion_from_output(output(finish_reason="stop", stop_reason=None))
    assert (eos.finish_reason, eos.stop_str) == ("eos", None)
    stop = completion_from_output(output(finish_reason="stop", stop_reason="\n"))
    assert (stop.finish_reason, stop.stop_str) == ("stop", "\n")
    extra_eos = completion_from_output(output(finish_reason="stop", stop_reason=128009))
    assert (extra_eos.finish_reason, extra_eos.stop_str) == ("eos", None)
    length = completion_from_output(output(finish_reason="length"))
    assert (length.finish_reason, length.text, length.token_ids) == ("length", "abc", (5, 6, 7))
    with pytest.raises(EngineError, match="abort"):
        completion_from_output(output(finish_reason="abort"))


def test_logprobs_are_the_chosen_tokens_not_the_top_ones():
    steps = [{5: Logprob(-1.0, 3), 9: Logprob(-0.1, 1)}, {6: Logprob(-2.0, 1)}, {7: Logprob(-0.5, 2)}]
    c = completion_from_output(output(logprobs=steps), logprobs=True)
    assert c.logprobs == (-1.0, -2.0, -0.5)
    assert c.entropies is None
    assert completion_from_output(output(logprobs=steps)).logprobs is None


def test_entropies_from_the_returned_logprobs():
    half = math.log(0.5)
    steps = [{5: Logprob(half), 9: Logprob(half)}, {6: Logprob(0.0)}, {7: Logprob(half)}]
    c = completion_from_output(output(logprobs=steps), entropies=True)
    assert c.entropies == pytest.approx((math.log(2), 0.0, math.log(2)))


def test_missing_logprobs_are_an_engine_error():
    with pytest.raises(EngineError, match="log-probabilities"):
        completion_from_output(output(logprobs=None), logprobs=True)
    with pytest.raises(EngineError, match="token 7"):
        completion_from_output(
            output(logprobs=[{5: Logprob(-1.0)}, {6: Logprob(-1.0)}, {8: Logprob(-1.0)}]), logprobs=True
        )


def test_usage_counts_prompt_cached_and_generated_tokens():
    request = GenRequest("q", n=2)
    out = types.SimpleNamespace(
        prompt_token_ids=list(range(10)),
        num_cached_tokens=6,
        outputs=[output(index=1, text="b", token_ids=[1, 2]), output(index=0, text="a", token_ids=[3, 4, 5])],
    )
    result = result_from_output(request, out, model="m")
    assert result.texts == ["a", "b"]  # in vLLM's index order
    assert (result.usage.prompt_tokens, result.usage.cached_tokens, result.usage.generated_tokens) == (10, 6, 5)
    assert result.usage.computed_prompt_tokens == 4
    assert result.model == "m" and result.request is request


def test_usage_without_num_cached_tokens_counts_none_cached():
    out = types.SimpleNamespace(prompt_token_ids=[1, 2, 3], outputs=[output()])
    assert result_from_output(GenRequest("q"), out).usage.cached_tokens == 0


def test_greedy_n_repeats_one_completion_and_counts_it_once():
    out = types.SimpleNamespace(prompt_token_ids=[1, 2], num_cached_tokens=0, outputs=[output()])
    result = result_from_output(GenRequest("q", n=3, temperature=0), out)
    assert result.texts == ["abc"] * 3
    assert result.usage.generated_tokens == 3


def test_too_few_completions_are_an_engine_error():
    out = types.SimpleNamespace(prompt_token_ids=[1], num_cached_tokens=0, outputs=[output()])
    with pytest.raises(EngineError, match="n=2"):
        result_from_output(GenRequest("q", n=2), out)


def test_continuation_logprobs_read_the_continuation_positions():
    out = types.SimpleNamespace(
        prompt_token_ids=[1, 10, 11, 12],
        prompt_logprobs=[None, {10: Logprob(-1.0)}, {11: Logprob(-2.0), 3: Logprob(-0.1)}, {12: Logprob(-3.0)}],
    )
    assert continuation_logprobs(out, 2) == (-2.0, -3.0)
    with pytest.raises(EngineError):
        continuation_logprobs(types.SimpleNamespace(prompt_token_ids=[1, 2], prompt_logprobs=None), 1)


# ---- vLLM is optional ------------------------------------------------------------------------


def test_importing_the_module_imports_neither_vllm_nor_torch():
    code = "import sys, samplers.vllm_engine; print('vllm' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_without_vllm_building_an_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm now fails, installed or not
    with pytest.raises(UnsupportedFeatureError) as info:
        VLLMEngine("org/model")
    message = str(info.value)
    assert 'pip install "archon-its[vllm]"' in message and "CUDA" in message and "\n" not in message
    assert INSTALL_HINT in message
    with pytest.raises(UnsupportedFeatureError, match="not installed"):
        VLLMEngine("org/model", llm=FakeLLM())  # a stand-in LLM still needs vllm.SamplingParams


def test_building_from_a_model_name_turns_prefix_caching_on(monkeypatch):
    built: dict[str, Any] = {}

    def fake_llm(**kwargs: Any) -> FakeLLM:
        built.update(kwargs)
        return FakeLLM()

    fake_vllm = types.ModuleType("vllm")
    fake_vllm.LLM = fake_llm  # type: ignore[attr-defined]
    fake_vllm.SamplingParams = FakeSamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm)
    engine = VLLMEngine(
        "org/model", dtype="bfloat16", seed=3, gpu_memory_utilization=0.5, llm_kwargs={"max_model_len": 64}
    )
    assert built == {
        "model": "org/model",
        "dtype": "bfloat16",
        "seed": 3,
        "gpu_memory_utilization": 0.5,
        "enable_prefix_caching": True,
        "max_model_len": 64,
    }
    assert engine.name == "org/model"
    result = run(engine.generate(GenRequest("hi", max_tokens=2)))
    assert result.texts == ["c0"]
    run(engine.aclose())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"llm_kwargs": {"enable_prefix_caching": False}}, "enable_prefix_caching"),
        ({"llm_kwargs": {"seed": 1}}, "seed"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"entropy_top_k": 0}, "entropy_top_k"),
        ({"entropy_top_k": 50}, "max_logprobs=20"),
    ],
)
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_engine(**kwargs)


# ---- the engine on a stand-in LLM ------------------------------------------------------------


def test_the_engine_satisfies_the_protocol_and_reads_facts_from_the_config():
    engine, _ = make_engine()
    assert isinstance(engine, Engine)
    facts = engine.facts
    assert (facts.layers, facts.hidden_size, facts.kv_heads, facts.vocab_size) == (4, 128, 2, 256)
    assert facts.dtype == "bfloat16" and facts.name == "org/fake" and not facts.exact
    assert engine.max_model_len == 64
    run(engine.aclose())


def test_facts_from_a_config_object_and_an_explicit_dtype():
    llm = FakeLLM()
    llm.llm_engine.model_config.hf_config = types.SimpleNamespace(to_dict=lambda: dict(CONFIG, num_hidden_layers=6))
    engine = VLLMEngine("org/fake", llm=llm, sampling_params=FakeSamplingParams, dtype="float16")
    assert engine.facts.layers == 6 and engine.facts.dtype == "float16"
    run(engine.aclose())


def test_facts_from_a_broken_config_are_an_engine_error():
    llm = FakeLLM()
    llm.llm_engine.model_config.hf_config = {"hidden_size": 8}
    engine = VLLMEngine("org/fake", llm=llm, sampling_params=FakeSamplingParams)
    with pytest.raises(EngineError, match="model facts"):
        _ = engine.facts
    run(engine.aclose())


def test_concurrent_generates_become_one_llm_generate_call():
    engine, llm = make_engine()
    requests = [
        GenRequest("2 + 3 =", n=2, max_tokens=4, seed=1),
        GenRequest([{"role": "user", "content": "hi"}], max_tokens=4, logprobs=True),
        GenRequest((1, 50, 51), max_tokens=4, temperature=0, n=2),
        GenRequest("x", n=3, stop="\n", include_stop=True),
    ]
    results = run(gather(*(engine.generate(r) for r in requests)))
    assert len(llm.calls) == 1
    prompts, params = llm.calls[0]
    assert prompts == [
        {"prompt_token_ids": [BOS, *map(ord, "2 + 3 =")]},
        {"prompt_token_ids": list(map(ord, "<user>hi<assistant>"))},  # template rendered, encoded without BOS
        {"prompt_token_ids": [1, 50, 51]},
        {"prompt_token_ids": [BOS, ord("x")]},
    ]
    assert [p.kwargs for p in params] == [sampling_kwargs(r) for r in requests]
    assert llm.tokenizer.templates == [([{"role": "user", "content": "hi"}], True, False)]
    assert results[0].texts == ["c0", "c1"] and results[3].texts == ["c0", "c1", "c2"]
    assert results[1].completions[0].logprobs == (math.log(0.25),) * 2
    assert results[2].texts == ["c0", "c0"]  # greedy: one completion, repeated
    assert results[0].usage.prompt_tokens == 8 and results[0].usage.cached_tokens == 4
    assert results[0].usage.generated_tokens == 4
    assert all(r.model == "org/fake" and r.seconds > 0 for r in results)
    run(engine.aclose())


def test_a_prompt_too_long_fails_alone():
    engine, llm = make_engine(max_model_len=16)
    good = GenRequest("short", max_tokens=4)
    bad = GenRequest("x" * 20, max_tokens=4)
    results = run(gather(engine.generate(good), engine.generate(bad), engine.generate(good)))
    assert isinstance(results[1], RequestError)
    message = str(results[1])
    assert message.startswith("GenRequest.prompt:") and "21 tokens" in message and "16" in message
    assert results[0].texts == ["c0"] and results[2].texts == ["c0"]
    assert len(llm.calls) == 1 and len(llm.calls[0][0]) == 2
    run(engine.aclose())


def test_out_of_vocabulary_token_ids_fail_alone():
    engine, llm = make_engine()
    results = run(gather(engine.generate(GenRequest((1, 300))), engine.generate(GenRequest("ok"))))
    assert isinstance(results[0], RequestError) and "300" in str(results[0])
    assert results[1].texts == ["c0"]
    assert len(llm.calls) == 1
    run(engine.aclose())


def test_when_vllm_rejects_the_batch_it_is_rerun_one_by_one():
    engine, llm = make_engine(reject_token=99)
    results = run(
        gather(engine.generate(GenRequest((1, 99))), engine.generate(GenRequest("a")), engine.generate(GenRequest("b")))
    )
    assert isinstance(results[0], RequestError)
    assert str(results[0]) == "vLLM rejected the request: Token id 99 is out of vocabulary"
    assert results[1].texts == ["c0"] and results[2].texts == ["c0"]
    assert [len(prompts) for prompts, _ in llm.calls] == [3, 1, 1, 1]
    run(engine.aclose())


def test_entropies_are_refused_before_queueing_unless_opted_in():
    engine, llm = make_engine()
    with pytest.raises(UnsupportedFeatureError, match="entropy_top_k"):
        run(engine.generate(GenRequest("q", entropies=True)))
    assert llm.calls == []
    run(engine.aclose())

    engine, llm = make_engine(entropy_top_k=2)
    result = run(engine.generate(GenRequest("q", entropies=True, max_tokens=2)))
    assert llm.calls[0][1][0].kwargs["logprobs"] == 2
    expected = -(0.25 * math.log(0.25) + 0.5 * math.log(0.5) + 0.25 * math.log(0.25))  # the unseen quarter lumped
    assert result.completions[0].entropies == pytest.approx((expected, expected))
    run(engine.aclose())


def test_score_maps_prompt_logprobs_and_batches_with_generate():
    engine, llm = make_engine()

    async def main() -> list[Any]:
        return await gather(engine.score("ab", ["cd", "", "e"]), engine.generate(GenRequest("q")))

    scored, generated = run(main())
    assert len(llm.calls) == 1
    prompts, params = llm.calls[0]
    head = [BOS, ord("a"), ord("b")]
    assert prompts[:2] == [{"prompt_token_ids": [*head, ord("c"), ord("d")]}, {"prompt_token_ids": [*head, ord("e")]}]
    assert all(p.kwargs == score_kwargs() for p in params[:2])
    assert scored.token_ids == ((ord("c"), ord("d")), (), (ord("e"),))
    assert scored.logprobs == ((-ord("c") / 100, -ord("d") / 100), (), (-ord("e") / 100,))
    assert scored.total(0) == pytest.approx(-(ord("c") + ord("d")) / 100)
    assert (scored.usage.prompt_tokens, scored.usage.generated_tokens) == (9, 2)
    assert scored.model == "org/fake"
    assert generated.texts == ["c0"]
    run(engine.aclose())


def test_score_of_nothing_and_of_too_much():
    engine, llm = make_engine(max_model_len=8)
    assert run(engine.score("ab", [])).logprobs == ()
    with pytest.raises(RequestError, match=r"continuations\[1\].*max_model_len of 8"):
        run(engine.score("ab", ["c", "x" * 10]))
    with pytest.raises(RequestError, match="sequence of strings"):
        run(engine.score("ab", "cd"))
    assert llm.calls == []
    run(engine.aclose())


def test_a_closed_engine_refuses_work():
    engine, _ = make_engine()
    run(engine.aclose())
    with pytest.raises(EngineError, match="closed"):
        run(engine.generate(GenRequest("q")))
