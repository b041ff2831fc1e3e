"""TransformersEngine on the embedded tiny-l: correctness against transformers' own generate."""

import asyncio
import math

import pytest
import torch

import archon.data
from archon.core import Engine, GenRequest, RequestError
from samplers.transformers_engine import TransformersEngine


@pytest.fixture(scope="module")
def problems():
    return archon.data.load("arith", "dev")[:10]


def gather(engine, requests):
    async def main():
        return await asyncio.gather(*(engine.generate(r) for r in requests), return_exceptions=True)

    return asyncio.run(main())


def hf_greedy(engine, prompt_ids, max_new):
    ids = torch.tensor([prompt_ids])
    out = engine.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new)
    return out[0, ids.shape[1] :].tolist()


def test_it_satisfies_the_engine_protocol_and_reports_model_facts(engine):
    assert isinstance(engine, Engine)
    f = engine.facts
    assert (f.parameters, f.layers, f.hidden_size, f.heads, f.kv_heads, f.vocab_size) == (800768, 4, 128, 4, 2, 103)
    assert f.context_length == 2048 and f.dtype == "float32" and f.exact


def test_concurrent_greedy_calls_form_one_batch_and_equal_model_generate(engine, problems):
    before = engine.batch_stats.batches
    reqs = [GenRequest(p.messages(), max_tokens=100, temperature=0) for p in problems]
    results = gather(engine, reqs)
    assert engine.batch_stats.batches == before + 1
    for p, r in zip(problems, results, strict=True):
        got = list(r.completions[0].token_ids)
        assert got == hf_greedy(engine, engine.encode(p.messages()), 100)[: len(got)]
        if r.completions[0].finish_reason == "eos":
            assert got[-1] == engine.tokenizer.eos_token_id
        else:
            assert r.completions[0].finish_reason == "length" and len(got) == 100


def test_n_samples_share_one_prefill(problems):
    e = TransformersEngine("tiny-l", prefix_cache_mb=0)
    try:
        prompt = e.encode(problems[0].messages())
        r = asyncio.run(e.generate(GenRequest(prompt, n=8, max_tokens=20, seed=1)))
        assert len(r.completions) == 8
        assert e.stats.prefill_tokens == len(prompt)
        assert r.usage.prompt_tokens == len(prompt) and r.usage.cached_tokens == 0
        assert r.usage.generated_tokens == sum(c.num_tokens for c in r.completions) == e.stats.decoded_tokens
    finally:
        e.close()


def test_seeded_sampling_is_reproducible_whatever_shares_the_batch(engine, problems):
    req = GenRequest(problems[1].messages(), n=6, max_tokens=60, temperature=1.0, seed=7)
    alone = gather(engine, [req])[0]
    mixed = gather(engine, [GenRequest(problems[2].messages(), n=5, max_tokens=40), req])[1]
    other_seed = gather(engine, [req.replace(seed=8)])[0]
    assert alone.texts == mixed.texts
    assert alone.texts != other_seed.texts
    assert len(set(alone.texts)) > 1  # samples of one request differ from each other


def test_sample_i_of_a_seeded_request_does_not_depend_on_n(engine, problems):
    req = GenRequest(problems[1].messages(), n=3, max_tokens=40, temperature=1.5, seed=5)
    three, seven = gather(engine, [req, req.replace(n=7)])
    one = gather(engine, [req.replace(n=1)])[0]
    assert seven.completions[:3] == three.completions
    assert one.completions[0] == three.completions[0]
    assert len(set(seven.texts)) > 1  # the rows draw from different streams
    later = asyncio.run(engine.generate_from(req.replace(n=4), 3))
    assert later.completions == seven.completions[3:]
    with pytest.raises(RequestError, match="first must be >= 0"):
        asyncio.run(engine.generate_from(req, -1))


def test_stop_strings_cut_the_text_and_keep_or_drop_the_delimiter(engine, problems):
    msgs = problems[0].messages()
    dropped, kept = gather(
        engine,
        [
            GenRequest(msgs, max_tokens=60, temperature=0, stop="\n"),
            GenRequest(msgs, max_tokens=60, temperature=0, stop=["\n"], include_stop=True),
        ],
    )
    a, b = dropped.completions[0], kept.completions[0]
    assert a.finish_reason == b.finish_reason == "stop" and a.stop_str == "\n"
    assert "\n" not in a.text and b.text == a.text + "\n"
    assert engine.tokenizer.decode(list(b.token_ids)) == b.text


def test_max_tokens_ends_with_length(engine, problems):
    r = gather(engine, [GenRequest(problems[0].messages(), max_tokens=3, temperature=0)])[0]
    assert r.completions[0].finish_reason == "length" and r.completions[0].num_tokens == 3


def test_logprobs_equal_teacher_forced_scores_and_entropies_are_of_the_full_distribution(engine, problems):
    msgs = problems[3].messages()
    r = gather(engine, [GenRequest(msgs, n=2, max_tokens=30, seed=3, logprobs=True, entropies=True)])[0]
    c = r.completions[0]
    assert len(c.logprobs) == len(c.entropies) == c.num_tokens
    prompt = engine.encode(msgs)
    with torch.no_grad():
        logits = engine.model(torch.tensor([list(prompt) + list(c.token_ids)])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    n = len(prompt)
    for j, tok in enumerate(c.token_ids):
        assert c.logprobs[j] == pytest.approx(float(logp[n - 1 + j, tok]), abs=1e-4)
        ent = float(-(logp[n - 1 + j].exp() * logp[n - 1 + j]).sum())
        assert c.entropies[j] == pytest.approx(ent, abs=1e-4)
        assert 0 <= c.entropies[j] <= math.log(engine.facts.vocab_size) + 1e-6


def test_score_matches_a_plain_forward_pass(engine, problems):
    msgs = problems[4].messages()
    conts = ["5 + 8 = 13", "1", ""]
    res = asyncio.run(engine.score(msgs, conts))
    prompt = list(engine.encode(msgs))
    for cont, lps in zip(conts, res.logprobs, strict=True):
        ids = engine.tokenizer(cont, add_special_tokens=False).input_ids
        assert len(lps) == len(ids)
        if not ids:
            continue
        with torch.no_grad():
            logp = torch.log_softmax(engine.model(torch.tensor([prompt + ids])).logits[0].float(), -1)
        ref = [float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(ids)]
        assert list(lps) == pytest.approx(ref, abs=1e-4)
    assert res.usage.prompt_tokens == len(prompt) + 10 + 1


def test_a_step_wise_continuation_reuses_the_prefix_cache_and_changes_nothing(problems):
    cached = TransformersEngine("tiny-l")
    plain = TransformersEngine("tiny-l", prefix_cache_mb=0)
    try:
        text = cached.tokenizer.apply_chat_template(problems[5].messages(), tokenize=False, add_generation_prompt=True)
        texts = {"cached": text, "plain": text}
        for step in range(3):
            out = {}
            for name, e in (("cached", cached), ("plain", plain)):
                req = GenRequest(texts[name], max_tokens=40, temperature=0, stop="\n", include_stop=True)
                out[name] = gather(e, [req])[0]
                texts[name] += out[name].completions[0].text
            assert out["cached"].texts == out["plain"].texts
            assert out["plain"].usage.cached_tokens == 0
            if step:  # the previous prompt and step are reused, all but the last token
                assert out["cached"].usage.cached_tokens >= out["cached"].usage.prompt_tokens - 2
        assert cached.stats.prefill_tokens < plain.stats.prefill_tokens / 2
    finally:
        cached.close()
        plain.close()


def test_text_messages_and_token_prompts_are_the_same_prompt(engine, problems):
    msgs = problems[6].messages()
    text = engine.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ids = engine.encode(msgs)
    # the chat template already holds <s>; a text prompt is tokenized without adding another
    assert engine.encode(text) == ids
    outs = gather(engine, [GenRequest(p, max_tokens=30, temperature=0) for p in (msgs, text, ids)])
    assert outs[0].texts == outs[1].texts == outs[2].texts


def test_invalid_requests_fail_alone_with_the_field_and_the_limit(engine, problems):
    too_long = "1" * 3000
    good = GenRequest(problems[0].messages(), max_tokens=10, temperature=0)
    results = gather(engine, [good, GenRequest(too_long, max_tokens=5), good])
    assert isinstance(results[1], RequestError)
    assert "GenRequest.prompt" in str(results[1]) and "2048" in str(results[1])
    assert results[0].texts == results[2].texts and results[0].texts[0]
    bad_token = gather(engine, [GenRequest([5, 500])])[0]
    assert isinstance(bad_token, RequestError) and "vocabulary of 103" in str(bad_token)


def test_a_failure_inside_a_batch_is_isolated_to_its_request(problems):
    class Flaky(TransformersEngine):
        def _serve(self, items):
            if any(getattr(w, "request", None) is not None and w.request.max_tokens == 13 for w in items):
                raise RuntimeError("simulated failure of one request")
            return super()._serve(items)

    e = Flaky("tiny-l")
    try:
        reqs = [GenRequest(p.messages(), max_tokens=20, temperature=0) for p in problems[:3]]
        reqs[1] = reqs[1].replace(max_tokens=13)
        out = gather(e, reqs)
        assert isinstance(out[1], RuntimeError)
        assert out[0].completions[0].text and out[2].completions[0].text
    finally:
        e.close()


@pytest.mark.parametrize(
    "field,value,msg", [("n", 0, "n"), ("temperature", -1, "temperature"), ("max_tokens", 0, "max_tokens")]
)
def test_request_validation_names_the_field(field, value, msg):
    with pytest.raises(RequestError, match=rf"GenRequest\.{msg}"):
        GenRequest("x", **{field: value})


def test_a_loaded_model_object_is_served_as_it_is(engine, problems):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from archon.core.models import resolve_model

    where = resolve_model("tiny-l")
    model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.bfloat16)
    mine = TransformersEngine(model, tokenizer=AutoTokenizer.from_pretrained(where), name="mine")
    try:
        assert mine.facts.dtype == "bfloat16" and mine.name == "mine"
        r = gather(mine, [GenRequest(problems[0].messages(), max_tokens=40, temperature=0)])[0]
        assert r.completions[0].text and r.model == "mine"
    finally:
        mine.close()
    with pytest.raises(RequestError, match="tokenizer="):
        TransformersEngine(model)
