"""The generation cache: per-index samples, reuse across requests, persistence, concurrency, nominal usage."""

import asyncio
import multiprocessing

import pytest

from archon.core import ChargedEngine, Completion, Engine, GenRequest, RequestError
from budgets import CostModel, Ledger, Scope
from samplers.cache import GenerationCache, sample_key
from samplers.indexed import DrawnSample, IndexSeededEngine, derive_seed

PROMPT = "3 * 4 - 2 ="  # at temperature 1.5 tiny-l's samples of this differ from each other
IDENTITY = "tiny-l"


def request(**changes) -> GenRequest:
    fields = {"prompt": PROMPT, "n": 4, "max_tokens": 5, "temperature": 1.5, "seed": 1} | changes
    return GenRequest(**fields)


def generate(engine: IndexSeededEngine, req: GenRequest):
    return asyncio.run(engine.generate(req))


@pytest.fixture
def cache(tmp_path):
    c = GenerationCache(tmp_path / "generations.sqlite")
    yield c
    c.close()


# ---------------------------------------------------------------------- keys and seeds


def test_keys_change_with_every_field_that_changes_samples_but_not_with_n():
    base = request()
    key = sample_key(IDENTITY, base, 1)
    assert key == sample_key(IDENTITY, base.replace(n=64), 1)
    assert key == sample_key(IDENTITY, base.replace(temperature=3 / 2), 1)  # same float, same key
    changed = [
        sample_key("tiny-s", base, 1),
        sample_key(IDENTITY, base, 2),
        sample_key(IDENTITY, base.replace(prompt="3 * 4 + 2 ="), 1),
        sample_key(IDENTITY, base.replace(prompt=[{"role": "user", "content": PROMPT}]), 1),
        sample_key(IDENTITY, base.replace(prompt=[3, 4, 5]), 1),
        sample_key(IDENTITY, base.replace(max_tokens=6), 1),
        sample_key(IDENTITY, base.replace(temperature=1.2), 1),
        sample_key(IDENTITY, base.replace(top_p=0.9), 1),
        sample_key(IDENTITY, base.replace(top_k=5), 1),
        sample_key(IDENTITY, base.replace(stop="\n"), 1),
        sample_key(IDENTITY, base.replace(stop="\n", include_stop=True), 1),
        sample_key(IDENTITY, base.replace(logprobs=True), 1),
        sample_key(IDENTITY, base.replace(entropies=True), 1),
        sample_key(IDENTITY, base.replace(seed=2), 1),
    ]
    assert len({key, *changed}) == len(changed) + 1


def test_derived_seeds_are_distinct_63_bit_integers():
    seeds = [derive_seed(s, i) for s in (0, 1, -1, 2**70) for i in range(50)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**63 for s in seeds)


# ---------------------------------------------------------------------- the engine


def test_sample_i_does_not_depend_on_n(engine):
    off = IndexSeededEngine(engine, None, identity=IDENTITY)
    batches = engine.batch_stats.batches
    three = generate(off, request(n=3))
    assert engine.batch_stats.batches == batches + 1  # the three samples were drawn in one batch
    eight = generate(off, request(n=8))
    assert len(three.completions) == 3 and len(eight.completions) == 8
    assert eight.completions[:3] == three.completions
    assert len(set(eight.texts)) > 1  # the samples differ, so the equality above means something
    assert off.draw_stats.samples_generated == 11 and off.draw_stats.hits == 0


def test_a_larger_n_draws_only_the_missing_samples(engine, cache):
    cached = IndexSeededEngine(engine, cache, identity=IDENTITY)
    four = generate(cached, request(n=4))
    assert (cached.draw_stats.samples_generated, cached.draw_stats.hits, len(cache)) == (4, 0, 4)
    eight = generate(cached, request(n=8))
    stats = cached.draw_stats
    assert (stats.requests, stats.samples_generated, stats.hits, stats.samples_served, len(cache)) == (2, 8, 4, 12, 8)
    assert eight.completions[:4] == four.completions
    assert stats.tokens_served == sum(c.num_tokens for c in four.completions + eight.completions)
    assert stats.tokens_generated == sum(c.num_tokens for c in eight.completions)

    off = IndexSeededEngine(engine, None, identity=IDENTITY)
    assert generate(off, request(n=8)).completions == eight.completions


class Recording:
    """The wrapped engine with its requests recorded (and ``stable_samples`` overridden)."""

    def __init__(self, inner, stable: bool) -> None:
        self.inner, self.stable_samples, self.requests = inner, stable, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def generate(self, req):
        self.requests.append((req, 0))
        return await self.inner.generate(req)

    async def generate_from(self, req, first):
        self.requests.append((req, first))
        return await self.inner.generate_from(req, first)


def test_a_stable_engine_gets_one_request_for_the_missing_samples(engine, cache):
    inner = Recording(engine, stable=True)
    cached = IndexSeededEngine(inner, cache, identity=IDENTITY)
    assert cached.stable_samples and IndexSeededEngine(engine, None, identity=IDENTITY).stable_samples
    four = generate(cached, request(n=4))
    eight = generate(cached, request(n=8))
    assert [(r.n, r.seed, first) for r, first in inner.requests] == [(4, 1, 0), (4, 1, 4)]  # only the missing
    plain = asyncio.run(engine.generate(request(n=8)))
    assert eight.completions == plain.completions  # sample i is the engine's own row i
    assert eight.completions[:4] == four.completions
    assert len(set(eight.texts)) > 1

    cache.put_many({sample_key(IDENTITY, request(), 9): DrawnSample(Completion("stored"), 1, 1, 0.0)})
    twelve = generate(cached, request(n=12))  # 8 and 10-11 are missing: two runs
    assert [(r.n, first) for r, first in inner.requests[2:]] == [(1, 8), (2, 10)]
    assert twelve.completions[:8] == plain.completions and twelve.completions[9].text == "stored"
    assert twelve.completions[10:] == asyncio.run(engine.generate(request(n=12))).completions[10:]


def test_generate_from_serves_later_samples_from_the_cache_and_nests(engine, cache):
    cached = IndexSeededEngine(engine, cache, identity=IDENTITY)
    eight = generate(cached, request(n=8))
    later = asyncio.run(cached.generate_from(request(n=4), 4))
    assert later.completions == eight.completions[4:]
    assert (cached.draw_stats.hits, cached.draw_stats.samples_generated) == (4, 8)
    outer = IndexSeededEngine(cached, None, identity=IDENTITY)  # stable too: it draws from the inner cache
    assert outer.stable_samples
    assert generate(outer, request(n=10)).completions[:8] == eight.completions
    assert cached.draw_stats.samples_generated == 10  # only samples 8 and 9 were new
    with pytest.raises(RequestError, match="first must be >= 0"):
        asyncio.run(cached.generate_from(request(), -1))


def test_an_unstable_engine_draws_each_sample_with_its_derived_seed(engine, cache):
    inner = Recording(engine, stable=False)
    cached = IndexSeededEngine(inner, cache, identity=IDENTITY)
    assert cached.stable_samples  # what it serves is stable by index, whatever the inner engine's rows are
    three = generate(cached, request(n=3))
    assert [(r.n, r.seed) for r, _ in inner.requests] == [(1, derive_seed(1, i)) for i in range(3)]
    singles = [asyncio.run(engine.generate(request(n=1, seed=derive_seed(1, i)))) for i in range(3)]
    assert three.completions == tuple(r.completions[0] for r in singles)
    assert len(set(three.texts)) > 1
    five = generate(cached, request(n=5))
    assert [(r.n, r.seed) for r, _ in inner.requests[3:]] == [(1, derive_seed(1, i)) for i in (3, 4)]
    assert five.completions[:3] == three.completions


@pytest.mark.parametrize(
    "change",
    [{"temperature": 1.2}, {"max_tokens": 4}, {"seed": 2}, {"prompt": "3 * 4 + 2 ="}, {"identity": "other"}],
    ids=lambda c: next(iter(c)),
)
def test_a_different_request_or_model_misses(engine, cache, change):
    change = dict(change)
    identity = change.pop("identity", IDENTITY)
    first = IndexSeededEngine(engine, cache, identity=IDENTITY)
    generate(first, request(n=2))
    generate(first, request(n=2))
    assert first.draw_stats.hits == 2  # the same request hits...
    other = IndexSeededEngine(engine, cache, identity=identity)
    generate(other, request(n=2, **change))
    assert (other.draw_stats.hits, other.draw_stats.samples_generated, len(cache)) == (0, 2, 4)  # ...this not


def test_greedy_draws_one_sample_for_any_n_and_seed(engine, cache):
    cached = IndexSeededEngine(engine, cache, identity=IDENTITY)
    five = generate(cached, request(n=5, temperature=0, seed=3))
    assert len(five.completions) == 5 and len(set(five.completions)) == 1
    assert (cached.draw_stats.samples_generated, len(cache)) == (1, 1)
    plain = asyncio.run(engine.generate(GenRequest(PROMPT, max_tokens=5, temperature=0)))
    assert five.completions[0] == plain.completions[0]
    assert five.usage.generated_tokens == 5 * plain.completions[0].num_tokens

    two = generate(cached, request(n=2, temperature=0, seed=4))
    assert two.completions == five.completions[:2]
    assert (cached.draw_stats.samples_generated, cached.draw_stats.hits) == (1, 1)


def test_unseeded_requests_pass_through_and_are_not_stored(engine, cache):
    cached = IndexSeededEngine(engine, cache, identity=IDENTITY)
    req = request(n=3, seed=None)
    result = generate(cached, req)
    assert result.request is req and len(result.completions) == 3
    assert len(cache) == 0
    stats = cached.draw_stats
    assert (stats.requests, stats.samples_served, stats.samples_generated, stats.hits) == (1, 3, 3, 0)


def test_entries_persist_in_the_file(engine, tmp_path):
    path = tmp_path / "study" / "generations.sqlite"
    path.parent.mkdir()
    first_cache = GenerationCache(path)
    first = generate(IndexSeededEngine(engine, first_cache, identity=IDENTITY), request(n=3, logprobs=True))
    first_cache.close()
    with pytest.raises(RuntimeError, match="closed"):
        len(first_cache)

    with GenerationCache(path) as again:
        assert len(again) == 3
        cached = IndexSeededEngine(engine, again, identity=IDENTITY)
        second = generate(cached, request(n=3, logprobs=True))
        assert (cached.draw_stats.hits, cached.draw_stats.samples_generated) == (3, 0)
    assert second.completions == first.completions
    assert all(c.logprobs is not None and len(c.logprobs) == c.num_tokens for c in second.completions)


def test_usage_and_charged_flops_are_the_same_cached_or_not(engine, cache):
    cached = IndexSeededEngine(engine, cache, identity=IDENTITY)
    cost = CostModel.from_config("tiny-l")
    ledgers = [Ledger(), Ledger()]
    live, stored = (
        asyncio.run(ChargedEngine(cached, ledger, Scope("sample", "p1"), cost=cost).generate(request(n=4)))
        for ledger in ledgers
    )
    assert (cached.draw_stats.samples_generated, cached.draw_stats.hits) == (4, 4)
    assert live.completions == stored.completions

    p = len(engine.encode(PROMPT))
    lengths = [c.num_tokens for c in live.completions]
    assert live.usage == stored.usage
    assert (live.usage.prompt_tokens, live.usage.cached_tokens, live.usage.generated_tokens) == (p, 0, sum(lengths))
    assert live.compute_seconds == stored.compute_seconds and live.compute_seconds > 0
    flops = [ledger.total().flops for ledger in ledgers]
    assert flops[0] == flops[1] == cost.generation_flops(p, lengths, 0)


def test_it_declares_the_wrapped_engines_capabilities_and_is_an_engine(engine, cache):
    cached = IndexSeededEngine(engine, cache, identity=IDENTITY)
    assert isinstance(cached, Engine)
    assert cached.name == engine.name and cached.facts is engine.facts and cached.tokenizer is engine.tokenizer
    assert cached.encode(PROMPT) == engine.encode(PROMPT) and cached.supports_n is True
    with pytest.raises(AttributeError):
        _ = cached.no_such_attribute


def test_errors_of_the_wrapped_engine_propagate_and_store_nothing(engine, cache):
    cached = IndexSeededEngine(engine, cache, identity=IDENTITY)
    with pytest.raises(RequestError, match=r"GenRequest\.prompt"):
        generate(cached, GenRequest("1" * 3000, n=2, max_tokens=4, seed=1))
    assert len(cache) == 0


# ---------------------------------------------------------------------- the file


def _write(path: str, worker: int, barrier, count: int) -> None:
    barrier.wait()  # both processes create the file and write at the same moment
    cache = GenerationCache(path)
    for start in range(0, count, 10):
        # keys below count // 2 are written by both workers: INSERT OR IGNORE keeps one
        keys = [f"{i}" if i < count // 2 else f"{worker}-{i}" for i in range(start, start + 10)]
        cache.put_many({k: DrawnSample(Completion(k, (worker, 1)), 3, 2, 0.5) for k in keys})
        cache.get_many(keys)
    cache.close()


def test_two_processes_write_the_same_file_at_once(tmp_path):
    path, count = str(tmp_path / "generations.sqlite"), 2000
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_write, args=(path, w, barrier, count)) for w in (0, 1)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    with GenerationCache(path) as cache:
        assert len(cache) == count // 2 + 2 * (count - count // 2)
        got = cache.get_many([f"{i}" for i in range(count // 2)] + [f"1-{count - 1}"])
        assert len(got) == count // 2 + 1
        assert got[f"1-{count - 1}"] == DrawnSample(Completion(f"1-{count - 1}", (1, 1)), 3, 2, 0.5)


def test_many_keys_are_looked_up_in_chunks(cache):
    entries = {f"k{i}": DrawnSample(Completion(f"t{i}", (i,), logprobs=(-0.5,)), 1, 1, 0.0) for i in range(1200)}
    assert cache.put_many(entries) == 1200
    assert cache.put_many(dict(list(entries.items())[:5])) == 0  # already stored: kept, not counted
    got = cache.get_many([*entries, "missing"])
    assert got == entries
