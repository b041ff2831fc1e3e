"""PrefixCache: longest-prefix lookup through block hashes, LRU eviction over a token capacity, subsumption."""

from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archon.core.prefix_cache import PrefixCache


def common(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


# ---------------------------------------------------------------------------------------------- lookup


def test_lookup_finds_the_shared_prefix_and_extends_it_past_the_last_full_block():
    c = PrefixCache(100, block=2)
    c.insert((1, 2, 3, 4, 5), "kv")
    n, entry = c.lookup((1, 2, 3, 9, 9))
    assert n == 3  # one full block by hash, then one more token compared directly
    assert entry.payload == "kv" and entry.tokens == (1, 2, 3, 4, 5)
    assert c.lookup((1, 2, 3, 4, 5, 6, 7))[0] == 5  # the whole entry is a prefix of the query
    assert c.lookup((1, 2, 3, 4))[0] == 4  # the query is a prefix of the entry


def test_matches_shorter_than_one_block_are_not_found():
    c = PrefixCache(100, block=4)
    c.insert((1, 2, 3, 4, 5, 6, 7, 8), "kv")
    assert c.lookup((1, 2, 3, 9, 9)) == (0, None)
    assert c.lookup((7, 7, 7, 7)) == (0, None)
    assert c.lookup((1, 2, 3, 4, 9))[0] == 4


def test_lookup_prefers_the_entry_with_more_matching_blocks():
    c = PrefixCache(100, block=2)
    c.insert((1, 2, 3, 4, 5, 6, 7, 8), "long")
    c.insert((1, 2, 3, 4), "short")  # inserted later, but matches fewer blocks
    c.insert((1, 2, 9, 9, 9, 9), "other")
    n, entry = c.lookup((1, 2, 3, 4, 5, 6, 7, 0))
    assert (n, entry.payload) == (7, "long")
    n, entry = c.lookup((1, 2, 9, 9, 0))
    assert (n, entry.payload) == (4, "other")


def test_lookup_extends_only_the_newest_holder_of_the_deepest_block():
    """Documents a limitation: past the last full block only one entry is compared token by token.

    Both entries share the block (1, 2) with the query; the newest one is extended, so the lookup gives 2
    although (1, 2, 3) shares 3 tokens. A lookup never misses a full block, but may miss up to block - 1 tokens.
    """
    c = PrefixCache(100, block=2)
    c.insert((1, 2, 3), "a")
    c.insert((1, 2, 4), "b")
    n, entry = c.lookup((1, 2, 3, 5))
    assert (n, entry.payload) == (2, "b")


def test_max_len_caps_the_match():
    c = PrefixCache(100, block=2)
    c.insert((1, 2, 3, 4, 5, 6), "kv")
    q = (1, 2, 3, 4, 5, 6, 7)
    assert c.lookup(q, max_len=5)[0] == 5
    assert c.lookup(q, max_len=3)[0] == 3
    assert c.lookup(q, max_len=1) == (0, None)  # less than a block
    assert c.lookup(q, max_len=0) == (0, None)
    assert c.lookup(q, max_len=-3) == (0, None)
    assert c.lookup(q, max_len=100)[0] == 6


def test_lookups_of_an_empty_cache_or_query_miss():
    c = PrefixCache(100, block=2)
    assert c.lookup((1, 2, 3)) == (0, None)
    c.insert((1, 2, 3), "kv")
    assert c.lookup(()) == (0, None)


# ---------------------------------------------------------------------------------------------- insert and capacity


def test_accepts_sequences_of_one_block_up_to_the_capacity():
    c = PrefixCache(10, block=4)
    assert [c.accepts(n) for n in (0, 3, 4, 10, 11)] == [False, False, True, True, False]
    assert not PrefixCache(0, block=1).accepts(1)
    assert PrefixCache(-5).capacity == 0


def test_inserts_that_are_not_accepted_are_ignored():
    c = PrefixCache(10, block=4)
    c.insert((1, 2, 3), "short")
    c.insert(tuple(range(11)), "long")
    assert len(c) == 0 and c.tokens == 0 and c.stats.inserted == 0
    off = PrefixCache(0, block=1)
    off.insert((1, 2), "kv")
    assert len(off) == 0 and off.lookup((1, 2)) == (0, None)


def test_block_must_be_positive():
    with pytest.raises(ValueError, match="block"):
        PrefixCache(10, block=0)


def test_least_recently_used_entries_are_evicted_first():
    c = PrefixCache(10, block=1)
    c.insert((1, 1, 1, 1), "a")
    c.insert((2, 2, 2, 2), "b")
    assert c.lookup((1, 1, 1, 1))[1].payload == "a"  # a hit makes "a" the most recently used
    c.insert((3, 3, 3, 3), "c")  # 12 tokens > 10: evict the LRU entry, "b"
    assert len(c) == 2 and c.tokens == 8
    assert c.lookup((2, 2, 2, 2)) == (0, None)
    assert c.lookup((1, 1, 1, 1))[1].payload == "a"
    assert c.lookup((3, 3, 3, 3))[1].payload == "c"
    assert c.stats.evicted == 1


def test_a_miss_does_not_refresh_an_entry():
    c = PrefixCache(8, block=2)
    c.insert((1, 1, 1, 1), "a")
    c.insert((2, 2, 2, 2), "b")
    assert c.lookup((1, 9, 9)) == (0, None)  # first token matches "a", but not a block: no refresh
    c.insert((3, 3, 3, 3), "c")
    assert c.lookup((1, 1, 1, 1)) == (0, None)
    assert c.lookup((2, 2, 2, 2))[0] == 4


def test_inserting_a_cached_sequence_again_refreshes_it_without_a_second_copy():
    c = PrefixCache(10, block=1)
    c.insert((1, 1, 1, 1), "a")
    c.insert((2, 2, 2, 2), "b")
    c.insert((1, 1, 1, 1), "a2")
    assert len(c) == 2 and c.tokens == 8 and c.stats.inserted == 2
    assert c.lookup((1, 1, 1, 1))[1].payload == "a"  # the first payload is kept
    c.insert((3, 3, 3, 3), "c")
    assert c.lookup((2, 2, 2, 2)) == (0, None)  # "b" was the least recently used


def test_an_entry_that_the_new_one_extends_is_dropped():
    c = PrefixCache(100, block=2)
    c.insert((1, 2, 3, 4), "prompt")
    _, prompt = c.lookup((1, 2, 3, 4, 5))
    c.insert((1, 2, 3, 4, 5, 6), "prompt+step", extends=prompt)
    assert len(c) == 1 and c.tokens == 6 and c.stats.evicted == 0
    n, entry = c.lookup((1, 2, 3, 4))
    assert (n, entry.payload) == (4, "prompt+step")  # the newer entry serves the old prefix


def test_extends_is_kept_when_the_new_entry_does_not_continue_it_or_is_not_cached():
    c = PrefixCache(20, block=2)
    c.insert((1, 2, 3, 4), "prompt")
    _, prompt = c.lookup((1, 2, 3, 4))
    c.insert((1, 2, 3, 5, 6), "diverges", extends=prompt)
    c.insert((1, 2), "shorter", extends=prompt)
    c.insert((1, 2, 3, 4, *range(20)), "too long to cache", extends=prompt)
    assert len(c) == 3 and c.tokens == 4 + 5 + 2
    assert c.lookup((1, 2, 3, 4))[1] is prompt


def test_a_stale_extends_does_not_drop_a_newer_entry_with_the_same_tokens():
    c = PrefixCache(100, block=2)
    c.insert((1, 2, 3), "old")
    _, stale = c.lookup((1, 2, 3))
    c.clear()
    c.insert((1, 2, 3), "new")
    c.insert((1, 2, 3, 4), "ext", extends=stale)
    assert len(c) == 2 and c.tokens == 3 + 4  # the identity check kept "new"


def test_clear_drops_everything():
    c = PrefixCache(100, block=2)
    for i in range(3):
        c.insert((i, i, i), i)
    c.clear()
    assert len(c) == 0 and c.tokens == 0
    assert c.lookup((1, 1, 1)) == (0, None)
    c.insert((1, 1, 1), "again")
    assert c.lookup((1, 1, 1))[1].payload == "again"


def test_stats_count_lookups_hits_reused_tokens_and_inserts():
    c = PrefixCache(100, block=2)
    c.insert((1, 2, 3, 4), "a")
    c.insert((5, 6, 7, 8), "b")
    c.lookup((1, 2, 3, 9))
    c.lookup((5, 6, 7, 8, 9))
    c.lookup((9, 9))
    s = c.stats
    assert (s.lookups, s.hits, s.reused_tokens, s.inserted, s.evicted) == (3, 2, 7, 2, 0)


# ---------------------------------------------------------------------------------------------- property

tokens = st.lists(st.integers(0, 2), max_size=12).map(tuple)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), tokens, st.sampled_from(["plain", "extends", "continue"])),
        st.tuples(st.just("lookup"), tokens, st.one_of(st.none(), st.integers(0, 14))),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(capacity=st.integers(0, 30), block=st.integers(1, 4), ops=ops)
def test_lookups_never_miss_a_full_block_and_the_capacity_holds(capacity, block, ops):
    """Against a model of the live entries (LRU order; the Entry object when a lookup revealed it)."""
    c = PrefixCache(capacity, block=block)
    live: OrderedDict[tuple, object] = OrderedDict()
    last = None  # the entry of the last hit, offered as ``extends`` to inserts (and continued by some)
    for op in ops:
        if op[0] == "insert":
            _, t, mode = op
            extends = last if mode != "plain" else None
            if mode == "continue" and last is not None:  # the prompt of a step, then the prompt plus that step
                t = last.tokens + t
            c.insert(t, payload=t, extends=extends)
            if block <= len(t) <= capacity:
                if t in live:
                    live.move_to_end(t)
                else:
                    subsumed = extends is not None and live.get(extends.tokens) is extends
                    if subsumed and len(extends.tokens) < len(t) and t[: len(extends.tokens)] == extends.tokens:
                        del live[extends.tokens]
                    live[t] = None
                    while sum(map(len, live)) > capacity:
                        live.popitem(last=False)
        else:
            _, q, max_len = op
            n, entry = c.lookup(q, max_len)
            limit = len(q) if max_len is None else min(max_len, len(q))
            best = max((min(common(t, q), limit) for t in live), default=0)
            assert 0 <= n <= limit
            assert n >= best // block * block  # no full block of match is missed
            assert n <= best
            if n == 0:
                assert entry is None
            else:
                assert entry.tokens in live and entry.payload == entry.tokens
                assert entry.tokens[:n] == q[:n]
                assert live[entry.tokens] in (None, entry)
                live[entry.tokens] = entry
                live.move_to_end(entry.tokens)
                last = entry
        assert c.tokens == sum(map(len, live)) <= capacity
        assert len(c) == len(live)
