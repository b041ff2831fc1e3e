"""A bounded cache of computed prompt prefixes (their KV), found by longest common prefix.

Entries are token sequences with an opaque payload (for the transformers engine: the KV of every
token). A lookup follows a chain of block hashes (as vLLM's prefix caching does) to the deepest block any
entry shares with a new prompt, then extends the match token by token within the newest entry holding
that block; so it finds the longest cached prefix to within one block (it may miss up to ``block - 1``
tokens that an older entry would have matched, never a whole block). Least recently
used entries are evicted once the cached tokens exceed the capacity. An entry that a newer one
extends (the prompt of a step, then the prompt plus that step) is dropped: the newer one serves both.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Entry:
    """A cached token sequence and its payload."""

    tokens: tuple[int, ...]
    payload: Any
    hashes: list[int] = field(default_factory=list)


@dataclass
class CacheStats:
    """Counters: lookups, hits, reused tokens, inserted and evicted entries."""

    lookups: int = 0
    hits: int = 0
    reused_tokens: int = 0
    inserted: int = 0
    evicted: int = 0


class PrefixCache:
    """Longest-prefix lookup over cached token sequences, bounded by a token capacity.

    Args:
        capacity: Most tokens held over all entries (``0`` disables the cache).
        block: Granularity of the hash index; matches shorter than one block are not found.

    Example:
        >>> c = PrefixCache(capacity=100, block=2)
        >>> c.insert((1, 2, 3, 4, 5), "kv-a")
        >>> n, entry = c.lookup((1, 2, 3, 9, 9))
        >>> n, entry.payload
        (3, 'kv-a')
        >>> c.lookup((7, 7, 7))[0]
        0
    """

    def __init__(self, capacity: int, *, block: int = 8) -> None:
        if block < 1:
            raise ValueError("PrefixCache.block must be at least 1")
        self.capacity = max(0, capacity)
        self.block = block
        self._entries: OrderedDict[tuple[int, ...], Entry] = OrderedDict()
        self._index: dict[int, OrderedDict[int, Entry]] = {}
        self.tokens = 0
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    def _chain(self, tokens: Sequence[int]) -> list[int]:
        out, h, b = [], 0, self.block
        for k in range(len(tokens) // b):
            h = hash((h, tuple(tokens[k * b : (k + 1) * b])))
            out.append(h)
        return out

    def lookup(self, tokens: Sequence[int], max_len: int | None = None) -> tuple[int, Entry | None]:
        """The longest cached prefix of ``tokens`` (at most ``max_len``, to within a block): ``(length, entry)``."""
        self.stats.lookups += 1
        limit = len(tokens) if max_len is None else min(max_len, len(tokens))
        if not self._entries or limit <= 0:
            return 0, None
        best: Entry | None = None
        for h in self._chain(tokens[:limit]):
            holders = self._index.get(h)
            if not holders:
                break
            best = next(reversed(holders.values()))
        if best is None:
            return 0, None
        n = _common_prefix(best.tokens, tokens, limit)
        if n == 0:
            return 0, None
        self._entries.move_to_end(best.tokens)
        self.stats.hits += 1
        self.stats.reused_tokens += n
        return n, best

    def get(self, tokens: Sequence[int]) -> Entry | None:
        """The entry holding exactly ``tokens``, if any (not a lookup: no statistics, no recency)."""
        return self._entries.get(tuple(tokens))

    def accepts(self, n_tokens: int) -> bool:
        """Whether a sequence of ``n_tokens`` would be cached (so callers can skip copying its payload)."""
        return bool(self.capacity) and self.block <= n_tokens <= self.capacity

    def insert(self, tokens: Sequence[int], payload: Any, *, extends: Entry | None = None) -> None:
        """Cache ``payload`` for ``tokens``; drop ``extends`` when ``tokens`` continue all of it."""
        key = tuple(tokens)
        if not self.accepts(len(key)):
            return
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        if extends is not None and len(extends.tokens) < len(key) and key[: len(extends.tokens)] == extends.tokens:
            self._remove(extends)
        entry = Entry(key, payload, self._chain(key))
        for h in entry.hashes:
            self._index.setdefault(h, OrderedDict())[id(entry)] = entry
        self._entries[key] = entry
        self.tokens += len(key)
        self.stats.inserted += 1
        while self.tokens > self.capacity:
            self._remove(next(iter(self._entries.values())))
            self.stats.evicted += 1

    def _remove(self, entry: Entry) -> None:
        if self._entries.get(entry.tokens) is not entry:
            return
        del self._entries[entry.tokens]
        self.tokens -= len(entry.tokens)
        for h in entry.hashes:
            holders = self._index.get(h)
            if holders is not None:
                holders.pop(id(entry), None)
                if not holders:
                    del self._index[h]

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self._index.clear()
        self.tokens = 0


def _common_prefix(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
