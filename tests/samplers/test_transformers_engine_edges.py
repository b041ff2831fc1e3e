"""TransformersEngine edge cases: mixed batches, the prefix-cache layout, the context limit, stops, eviction, loops."""

import asyncio
import math

import pytest
import torch

import archon.data
from archon.core import GenRequest, RequestError
from samplers.transformers_engine import TransformersEngine


@pytest.fixture(scope="module")
def problems():
    return archon.data.load("arith", "dev")[:40]


def run(engine, calls):
    """Await engine calls concurrently (one micro-batch); ``calls`` are requests or ``(prompt, continuations)``."""

    async def main():
        return await asyncio.gather(
            *(engine.generate(c) if isinstance(c, GenRequest) else engine.score(*c) for c in calls),
            return_exceptions=True,
        )

    return asyncio.run(main())


def hf_greedy(engine, prompt_ids, max_new):
    ids = torch.tensor([list(prompt_ids)])
    out = engine.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new)
    return out[0, ids.shape[1] :].tolist()


def forward_logp(engine, ids):
    with torch.no_grad():
        return torch.log_softmax(engine.model(torch.tensor([list(ids)])).logits[0].float(), -1)


def chat_text(engine, problem):
    return engine.tokenizer.apply_chat_template(problem.messages(), tokenize=False, add_generation_prompt=True)


def step_wise(engine, texts, steps, stops=("\n", " = ", "+")):
    """Continue each text greedily ``steps`` times, one step (ending at a stop string) per batch."""
    outs = []
    for _ in range(steps):
        reqs = [
            GenRequest(t, max_tokens=30 + 3 * i, temperature=0, stop=stops[i % len(stops)], include_stop=True)
            for i, t in enumerate(texts)
        ]
        results = run(engine, reqs)
        outs.append([r.texts[0] for r in results])
        texts = [t + r.texts[0] for t, r in zip(texts, results, strict=True)]
    return outs, texts


# ---------------------------------------------------------------------------------------------- bugs


def test_an_empty_prompt_is_a_request_error_alone_in_a_batch_and_for_score(engine, problems):
    assert engine.encode("") == ()  # the tokenizer adds no BOS to text: nothing to condition on
    good = GenRequest(problems[0].messages(), max_tokens=8, temperature=0)
    alone, mixed, ok = run(engine, [GenRequest("", max_tokens=5, temperature=0), GenRequest("", max_tokens=5), good])
    # in a batch the empty row used to be decoded from the logits of an all-padding row: garbage, no error
    assert isinstance(alone, RequestError) and "GenRequest.prompt" in str(alone)
    assert isinstance(mixed, RequestError)
    assert ok.completions[0].token_ids == tuple(hf_greedy(engine, engine.encode(problems[0].messages()), 8))
    (scored,) = run(engine, [("", ["1 + 2"])])
    assert isinstance(scored, RequestError)


def test_max_tokens_past_the_context_stops_at_the_context_and_reserves_only_the_room_left(engine, problems):
    ids = list(engine.encode(problems[0].messages()))
    ctx = engine.context_length
    base = ids * (ctx // len(ids) + 1)
    near, last = base[: ctx - 6], base[: ctx - 1]  # room for 6 tokens, and for exactly one
    huge = 10**9  # used to preallocate KV room for max_tokens itself: ~50 GB here, an allocation error
    r_near, r_last = run(
        engine, [GenRequest(near, n=2, max_tokens=huge, temperature=0), GenRequest(last, max_tokens=huge)]
    )
    assert not isinstance(r_near, Exception), r_near
    assert not isinstance(r_last, Exception), r_last
    for c in r_near.completions:
        assert c.finish_reason == "length" and c.num_tokens == 6
        assert list(c.token_ids) == hf_greedy(engine, near, 6)
    assert r_last.completions[0].finish_reason == "length" and r_last.completions[0].num_tokens == 1


def test_requests_with_huge_max_tokens_are_still_batched_together(engine, problems):
    before = engine.batch_stats.batches
    reqs = [GenRequest(p.messages(), max_tokens=10**6, temperature=0, stop="\n") for p in problems[:3]]
    results = run(engine, reqs)
    # their token budget is what the context leaves, not max_tokens: (prompt + 10**6) alone exceeds the batch budget
    assert engine.batch_stats.batches == before + 1
    assert all(r.completions[0].finish_reason == "stop" for r in results)


def test_finished_rows_are_never_fed_a_position_outside_the_context():
    """A model with learned positions (GPT-2) has no embedding for position ``context``."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from archon.core.models import resolve_model

    with torch.random.fork_rng():
        torch.manual_seed(0)
        config = GPT2Config(vocab_size=103, n_positions=64, n_embd=32, n_layer=2, n_head=2, eos_token_id=2)
        model = GPT2LMHeadModel(config)
    e = TransformersEngine(model, tokenizer=AutoTokenizer.from_pretrained(resolve_model("tiny-l")), prefix_cache_mb=0)
    e.eos_ids = frozenset()  # random weights: no row may end early, so the finished row stays in the batch
    seen = []
    e.model.register_forward_pre_hook(lambda _m, _a, kw: seen.append(int(kw["position_ids"].max())), with_kwargs=True)
    try:
        near = list(range(3, 63))  # 60 of 64 positions: finishes at the context after 4 tokens
        shorts = [[5 + i, 6, 7, 8] for i in range(7)]  # 7 more rows keep the batch going (no compaction)
        reqs = [GenRequest(near, max_tokens=100, temperature=0)]
        reqs += [GenRequest(s, max_tokens=30, temperature=0) for s in shorts]
        results = run(e, reqs)
        assert all(not isinstance(r, Exception) for r in results), results
        assert results[0].completions[0].finish_reason == "length" and results[0].completions[0].num_tokens == 4
        assert max(seen) < 64
        # no silent retry request by request (which recomputes every prompt, and on CUDA is a device assert)
        assert e.stats.prefill_tokens == len(near) + sum(len(s) for s in shorts)
    finally:
        e.close()


def test_the_padded_decode_cache_stays_within_the_kv_budget(monkeypatch):
    """One long prompt among short ones: the batch's summed sizes fit, its left-padded decode cache did not (16x)."""
    import samplers.transformers_engine as te

    e = TransformersEngine("tiny-l", kv_budget_mb=1, prefix_cache_mb=0)  # 2048 tokens: the context's
    footprints = []
    stack = te._stack

    def recording(kvs, lengths, width, *args, reserve=0, **kwargs):
        if reserve:  # a decode cache: rows x (longest prompt + room)
            footprints.append(len(kvs) * (width + reserve))
        return stack(kvs, lengths, width, *args, reserve=reserve, **kwargs)

    monkeypatch.setattr(te, "_stack", recording)
    try:
        long = [5, 8, 19, 8, 29] * 400  # 2000 tokens
        shorts = [[1, 5 + i] for i in range(15)]
        reqs = [GenRequest(long, max_tokens=3, temperature=0)] + [GenRequest(s, max_tokens=1) for s in shorts]
        before = e.batch_stats.batches
        out = run(e, reqs)
        assert e.batch_stats.batches == before + 1  # 2003 + 15 * 3 = 2048 tokens: one batch by the batcher's sum
        assert list(out[0].completions[0].token_ids) == hf_greedy(e, long, 3)
        assert all(r.completions[0].num_tokens == 1 for r in out[1:])
        assert max(footprints) <= e.max_batch_tokens, footprints
    finally:
        e.close()


def test_a_seed_of_any_size_is_served_and_reproducible(engine, problems):
    msgs = problems[1].messages()
    big, again, small = run(
        engine,
        [
            GenRequest(msgs, n=2, max_tokens=20, seed=2**64 + 7),
            GenRequest(msgs, n=2, max_tokens=20, seed=2**64 + 7),
            GenRequest(msgs, n=2, max_tokens=20, seed=-3),
        ],
    )
    assert not isinstance(big, Exception), big  # used to fail inside the batch: "Overflow when unpacking long long"
    assert big.texts == again.texts
    assert not isinstance(small, Exception) and small.completions[0].num_tokens > 0


def test_a_completion_entry_replaces_the_prompt_entry_it_extends(problems):
    e = TransformersEngine("tiny-l")
    try:
        texts = [chat_text(e, problems[7])]
        for step in range(3):
            prompt = e.encode(texts[0])
            _, texts = step_wise(e, texts, 1, stops=("\n",))
            assert len(e.prefix_cache) == 1, step  # prompt + step serves the prompt too: one entry per problem
            n, _ = e.prefix_cache.lookup(e.encode(texts[0]))
            assert n == e.prefix_cache.tokens >= len(prompt)  # the entry is this prompt, or it and the step
    finally:
        e.close()


def test_a_score_of_exactly_the_context_is_served(engine):
    ctx = engine.context_length
    prompt = [5, 8, 19] * (ctx // 3)
    prompt = prompt[: ctx - 4]
    full, over = run(engine, [(prompt, ["1234"]), (prompt, ["12345"])])
    assert not isinstance(full, Exception), full
    assert isinstance(over, RequestError) and "2048" in str(over)
    ids = engine.tokenizer("1234", add_special_tokens=False).input_ids
    logp = forward_logp(engine, prompt + ids)
    ref = [float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(ids)]
    assert list(full.logprobs[0]) == pytest.approx(ref, abs=1e-4)


# ---------------------------------------------------------------------------------------------- mixed batches


def test_generate_and_score_share_prompts_in_one_batch(problems):
    e = TransformersEngine("tiny-l", prefix_cache_mb=0)
    try:
        msgs, other = problems[0].messages(), problems[2].messages()
        prompt = list(e.encode(msgs))
        conts = ["5 + 8 = 13", "", "x", "13 - 8 = 5"]
        calls = [
            GenRequest(msgs, n=3, max_tokens=12, temperature=1.0, seed=1),
            (msgs, conts),
            GenRequest(msgs, max_tokens=12, temperature=0),
            (msgs, []),
            (other, ["", ""]),
            GenRequest(msgs, n=2, max_tokens=12, temperature=0.7, seed=2, logprobs=True),
            GenRequest(other, max_tokens=12, temperature=0),
        ]
        before = e.batch_stats.batches
        out = run(e, calls)
        assert e.batch_stats.batches == before + 1
        assert not any(isinstance(r, Exception) for r in out), out
        # each distinct prompt is computed once, whoever asks for it
        assert e.stats.prefill_tokens == len(prompt) + len(e.encode(other)) + sum(len(c) for c in conts)
        cached = [r.usage.cached_tokens for r in out]
        assert cached == [len(prompt), 0, len(prompt), len(prompt), 0, len(prompt), len(e.encode(other))]
        score = out[1]
        assert [len(x) for x in score.logprobs] == [len(c) for c in conts]
        for cont, lps in zip(conts, score.logprobs, strict=True):
            ids = e.tokenizer(cont, add_special_tokens=False).input_ids
            if ids:
                logp = forward_logp(e, prompt + ids)
                ref = [float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(ids)]
                assert list(lps) == pytest.approx(ref, abs=1e-4)
        assert out[3].logprobs == () and out[4].logprobs == ((), ())
        assert out[3].usage.prompt_tokens == len(prompt)
        assert out[2].completions[0].token_ids == tuple(hf_greedy(e, prompt, 12))
        assert out[6].completions[0].token_ids == tuple(hf_greedy(e, e.encode(other), 12))
        assert len(out[0].completions) == 3 and len(out[5].completions) == 2
        assert all(len(c.logprobs) == c.num_tokens for c in out[5].completions)
        assert out[0].completions[0].logprobs is None
    finally:
        e.close()


def test_one_prompt_with_different_n_temperature_and_seeds_in_one_batch(engine, problems):
    msgs = problems[3].messages()
    n_prompt = len(engine.encode(msgs))
    reqs = [
        GenRequest(msgs, n=4, max_tokens=25, temperature=1.0, seed=11),
        GenRequest(msgs, n=2, max_tokens=25, temperature=0.5, seed=12),
        GenRequest(msgs, n=1, max_tokens=25, temperature=0),
        GenRequest(msgs, n=3, max_tokens=25, temperature=1.0, seed=11),
    ]
    together = run(engine, reqs)
    alone = [run(engine, [r])[0] for r in (reqs[0], reqs[3])]
    assert [len(r.completions) for r in together] == [4, 2, 1, 3]
    assert all(r.usage.prompt_tokens == n_prompt for r in together)
    assert [r.usage.cached_tokens for r in together[1:]] == [n_prompt] * 3  # the first one computed it for all
    assert together[0].texts == alone[0].texts and together[3].texts == alone[1].texts
    assert together[2].completions[0].token_ids == tuple(hf_greedy(engine, engine.encode(msgs), 25))


def test_logprobs_and_entropies_for_one_row_among_rows_that_do_not_ask(engine, problems):
    msgs = problems[4].messages()
    reqs = [
        GenRequest(problems[5].messages(), n=3, max_tokens=20, seed=1),
        GenRequest(msgs, n=1, max_tokens=20, temperature=0.8, seed=4, logprobs=True, entropies=True),
        GenRequest(problems[6].messages(), max_tokens=5, temperature=0),
        GenRequest(msgs, n=1, max_tokens=20, temperature=0, entropies=True),
    ]
    out = run(engine, reqs)
    assert all(c.logprobs is None and c.entropies is None for c in out[0].completions + out[2].completions)
    prompt = list(engine.encode(msgs))
    for r, want_lp in ((out[1], True), (out[3], False)):
        c = r.completions[0]
        assert (c.logprobs is not None) == want_lp and len(c.entropies) == c.num_tokens
        logp = forward_logp(engine, prompt + list(c.token_ids))
        for j, tok in enumerate(c.token_ids):
            row = logp[len(prompt) - 1 + j]
            if want_lp:
                assert c.logprobs[j] == pytest.approx(float(row[tok]), abs=1e-4)
            assert c.entropies[j] == pytest.approx(float(-(row.exp() * row).sum()), abs=1e-4)
    assert math.isnan(out[3].completions[0].mean_logprob)


def test_truncated_sampling_rows_that_must_be_greedy_equal_the_greedy_rows(engine, problems):
    msgs = problems[8].messages()
    ref = tuple(hf_greedy(engine, engine.encode(msgs), 30))
    reqs = [
        GenRequest(msgs, max_tokens=30, temperature=0, top_k=5),  # greedy ignores truncation
        GenRequest(msgs, n=2, max_tokens=30, temperature=1.5, top_k=1, seed=1),
        GenRequest(msgs, n=2, max_tokens=30, temperature=2.0, top_p=1e-6, seed=2),
        GenRequest(msgs, n=3, max_tokens=30, temperature=1.0, top_k=3, top_p=0.9, seed=3),
        GenRequest(problems[9].messages(), max_tokens=30, temperature=0),
    ]
    out = run(engine, reqs)
    for r in out[:3]:
        assert all(c.token_ids[: len(ref)] == ref[: c.num_tokens] for c in r.completions)
    assert out[4].completions[0].token_ids == tuple(hf_greedy(engine, engine.encode(problems[9].messages()), 30))
    assert all(c.num_tokens for c in out[3].completions)


def test_max_tokens_one_in_a_batch_with_longer_rows(engine, problems):
    msgs = [p.messages() for p in problems[10:13]]
    out = run(engine, [GenRequest(m, max_tokens=1 + 20 * (i % 2), temperature=0, n=1 + i) for i, m in enumerate(msgs)])
    for i, (m, r) in enumerate(zip(msgs, out, strict=True)):
        k = 1 + 20 * (i % 2)
        ref = tuple(hf_greedy(engine, engine.encode(m), k))
        assert all(c.token_ids == ref[: c.num_tokens] for c in r.completions)
        if k == 1:
            assert all(c.num_tokens == 1 and c.finish_reason == "length" for c in r.completions)
        assert r.usage.generated_tokens == sum(c.num_tokens for c in r.completions)


# ---------------------------------------------------------------------------------------------- stops


@pytest.mark.parametrize(
    "stop,include",
    [
        (["\n#"], False),
        (["\n#"], True),
        ([" = "], True),
        (["= 1", "+ 8"], True),
        (["13\n", " - "], False),
        (["8 =", "5 +"], False),
        (["\n<|user"], True),  # never matched: ends at EOS
    ],
)
def test_multi_token_and_several_stop_strings_cut_where_the_first_one_completes(engine, problems, stop, include):
    msgs = problems[0].messages()
    ref = hf_greedy(engine, engine.encode(msgs), 60)
    want, hit = ref, None
    for k in range(1, len(ref) + 1):  # the first token whose decoding completes a stop string
        text = engine.tokenizer.decode(ref[:k], skip_special_tokens=True)
        found = [(text.find(s), -len(s), s) for s in stop if s in text]
        if found:
            want, hit = ref[:k], min(found)
            break
    (r,) = run(engine, [GenRequest(msgs, max_tokens=60, temperature=0, stop=stop, include_stop=include)])
    c = r.completions[0]
    assert list(c.token_ids) == want
    full = engine.tokenizer.decode(want, skip_special_tokens=True)
    if hit is None:
        assert c.finish_reason == "eos" and c.stop_str is None and c.text == full
    else:
        i, _, s = hit
        assert c.finish_reason == "stop" and c.stop_str == s
        assert c.text == (full[: i + len(s)] if include else full[:i])


# ---------------------------------------------------------------------------------------------- prefix cache


def test_continuations_of_different_lengths_in_one_batch_equal_a_fresh_engine(problems):
    cached = TransformersEngine("tiny-l")
    fresh = TransformersEngine("tiny-l", prefix_cache_mb=0)
    try:
        texts = [chat_text(cached, p) for p in problems[:8]]
        step = [GenRequest(t, max_tokens=30, temperature=0, stop=" = ", include_stop=True) for t in texts[:5]]
        first = run(cached, step)
        stepped = [t + r.texts[0] for t, r in zip(texts[:5], first, strict=True)]
        # continuations (cached prefixes of different lengths), fresh prompts, a step minus one token, plus one
        prompts = [*stepped, *texts[5:], stepped[0][:-1], stepped[1] + "1"]
        reqs = [GenRequest(t, max_tokens=25, temperature=0, n=1 + i % 2) for i, t in enumerate(prompts)]
        got, want = run(cached, reqs), run(fresh, reqs)
        assert [r.texts for r in got] == [r.texts for r in want]
        lens = [len(cached.encode(t)) for t in prompts]
        assert [r.usage.cached_tokens for r in got[:5]] == [n - 1 for n in lens[:5]]  # all but the last token
        assert got[8].usage.cached_tokens == lens[8] - 1  # a prefix of a cached entry: all but its last token
        assert got[9].usage.cached_tokens == lens[9] - 2  # the cached step, then two new tokens
        ref = hf_greedy(cached, cached.encode(prompts[9]), 25)
        assert list(got[9].completions[0].token_ids) == ref[: got[9].completions[0].num_tokens]
    finally:
        cached.close()
        fresh.close()


@pytest.mark.parametrize("mb", [0.01, 0.1])
def test_a_tiny_prefix_cache_evicts_and_changes_nothing(problems, mb):
    tiny = TransformersEngine("tiny-l", prefix_cache_mb=mb)
    fresh = TransformersEngine("tiny-l", prefix_cache_mb=0)
    try:
        texts = [chat_text(tiny, p) for p in problems[14:18]]
        got, _ = step_wise(tiny, texts, 3)
        want, _ = step_wise(fresh, texts, 3)
        assert got == want
        assert tiny.prefix_cache.tokens <= tiny.prefix_cache.capacity
        if mb == 0.1:
            assert tiny.prefix_cache.stats.evicted > 0 and tiny.prefix_cache.stats.hits > 0
    finally:
        tiny.close()
        fresh.close()


def test_many_small_batches_keep_the_prefix_cache_bounded(problems):
    e = TransformersEngine("tiny-l", prefix_cache_mb=0.5)  # 256 tokens
    try:
        sizes = []
        for p in problems[:24]:
            (r,) = run(e, [GenRequest(p.messages(), max_tokens=12, temperature=0, stop=" = ")])
            assert r.completions[0].finish_reason == "stop"
            sizes.append((len(e.prefix_cache), e.prefix_cache.tokens))
        assert all(t <= e.prefix_cache.capacity for _, t in sizes)
        assert max(n for n, _ in sizes) <= 256 // 37  # prompts are at least 37 tokens
        # the hash index holds exactly the live entries (a stale holder would keep its KV alive)
        index_size = sum(len(h) for h in e.prefix_cache._index.values())
        assert index_size == sum(len(x.hashes) for x in e.prefix_cache._entries.values())
    finally:
        e.close()


# ---------------------------------------------------------------------------------------------- loops and threads


def test_worker_thread_and_successive_event_loops_give_the_same_greedy_outputs(engine, problems):
    threaded = TransformersEngine("tiny-l", worker_thread=True)
    try:
        reqs = [GenRequest(p.messages(), max_tokens=30, temperature=0, stop="\n") for p in problems[20:25]]
        a1 = run(threaded, reqs)
        a2 = run(threaded, reqs)  # a second asyncio.run: a new loop, the same worker
        b = run(engine, reqs)
        assert [r.texts for r in a1] == [r.texts for r in a2] == [r.texts for r in b]
        assert threaded.batch_stats.batches == 2
        assert a2[0].usage.cached_tokens == a2[0].usage.prompt_tokens - 1
    finally:
        threaded.close()


def test_a_prompt_longer_than_a_prefill_chunk_is_prefilled_in_pieces(engine, problems):
    small = TransformersEngine("tiny-l", prefill_chunk_tokens=16, prefix_cache_mb=0)
    try:
        msgs = [{"role": "user", "content": " ".join(p.question for p in problems[:4])}]
        ids = small.encode(msgs)
        assert len(ids) > 3 * 16  # at least four pieces
        req = GenRequest(msgs, max_tokens=12, temperature=0, logprobs=True)
        passes = small.stats.forward_passes
        (pieces,) = run(small, [req])
        prefill_passes = small.stats.forward_passes - passes - small.stats.decode_steps
        assert prefill_passes >= 4 and small.stats.prefill_tokens == len(ids)
        assert pieces.usage.cached_tokens == 0  # pieces are computed, not reused
        assert list(pieces.completions[0].token_ids) == hf_greedy(engine, ids, 12)[: pieces.completions[0].num_tokens]
        (whole,) = run(engine, [req])
        assert torch.allclose(
            torch.tensor(pieces.completions[0].logprobs), torch.tensor(whole.completions[0].logprobs), atol=1e-4
        )

        # scoring after a prompt prefilled in pieces (the continuation runs in one final pass)
        cont = " ".join(p.question for p in problems[4:6])
        (scored,) = run(small, [(msgs, [cont, "7"])])
        (expected,) = run(engine, [(msgs, [cont, "7"])])
        for got, want in zip(scored.logprobs, expected.logprobs, strict=True):
            assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-4)
    finally:
        small.close()


def test_a_failed_batch_retried_request_by_request_counts_usage_once(problems, monkeypatch):
    fresh = TransformersEngine("tiny-l", prefix_cache_mb=0)
    try:
        completion = fresh._completion

        def failing(row, req):  # a failure inside the batch, after every row has been decoded
            if req.max_tokens == 7:
                raise RuntimeError("boom")
            return completion(row, req)

        monkeypatch.setattr(fresh, "_completion", failing)
        good = GenRequest(problems[0].messages(), n=2, max_tokens=5, temperature=0)
        bad = GenRequest(problems[1].messages(), max_tokens=7, temperature=0)
        ok, failed = run(fresh, [good, bad])
        assert isinstance(failed, RuntimeError) and not isinstance(ok, BaseException)
        assert fresh.batch_stats.batches == 1  # one batch, then each request alone
        assert fresh.usage == ok.usage  # the failed attempts added nothing
    finally:
        fresh.close()


def test_the_prompt_memo_keeps_text_and_chat_prompts_apart(engine):
    import json

    msgs = [{"role": "user", "content": "Evaluate left to right: 2 + 3"}]
    chat = engine.encode(msgs)
    text = json.dumps(msgs, sort_keys=True)  # the memo's key for the messages, as a text prompt
    assert engine.encode(text) == tuple(engine.tokenizer(text).input_ids) != chat
    assert engine.encode(msgs) == chat
