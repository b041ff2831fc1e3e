"""What every retriever shares: its corpus, its cached index, batched search, and charging.

A retriever is built once per run (or study) from a :class:`RetrieverDecl`. Its index is loaded from
the on-disk cache (:mod:`archon.retrieval.index_cache`) or built and stored there; ``index_info`` says
which, with the build's wall time and FLOPs (reported once per run, not charged to problems). Searches
from concurrent problems are coalesced by a micro-batcher into one batched search (one encoder pass for
a dense retriever). ``charged(ledger, scope)`` gives the copy an operator gets from
``ctx.retriever(name)``: each search charges the query's encoding (exact, known before it runs) and
its measured wall time to that node and problem.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from archon.core.batcher import MicroBatcher
from archon.core.retrieval import Passage, Retriever
from archon.data import Document
from archon.retrieval.index_cache import IndexCache, cache_root, corpus_hash, index_key
from budgets import Cost, HardwareProfile, Ledger, Scope

Hits = list[tuple[int, float]]
"""One query's result: (document index, score) pairs, best first."""


@dataclass(frozen=True, slots=True)
class RetrieverDecl:
    """What a retriever builder gets: the declared name, the corpus's documents, options, built members."""

    name: str
    docs: Sequence[Document]
    options: Mapping[str, Any] = field(default_factory=dict)
    members: Mapping[str, Retriever] = field(default_factory=dict)


class RetrieverBase:
    """A retriever over ``docs``: subclasses give ``settings``, the index's build/read/write, ``_search``.

    Args:
        name: The declared name (traces and errors use it).
        docs: The corpus.
        cache_dir: Where indexes are cached (default: :func:`~archon.retrieval.index_cache.cache_root`).
    """

    kind: ClassVar[str] = ""
    cached_index: ClassVar[bool] = True
    """Whether the index is kept in the on-disk cache (a hybrid keeps none of its own)."""

    def __init__(self, name: str, docs: Sequence[Document], *, cache_dir: str | Path | None = None) -> None:
        if not docs:
            raise ValueError(f"retriever {name!r}: the corpus has no documents")
        self.name = name
        self.docs = list(docs)
        self.corpus_hash = corpus_hash(self.docs)
        self.cache = IndexCache(cache_root(cache_dir))
        self.index_info: dict[str, Any] = {"kind": self.kind, "documents": len(self.docs)}
        self._batcher: MicroBatcher[tuple[str, int]] = MicroBatcher(
            self._run_batch, max_items=256, threaded=False, name=f"archon-retriever-{name}"
        )

    # ------------------------------------------------------------------ the index

    def settings(self) -> dict[str, Any]:
        """Every setting that changes the index (part of its cache key)."""
        return {}

    def open_index(self) -> None:
        """Load the index from the cache, or build and store it (``index_info`` records which)."""
        if not self.cached_index:
            return
        key = index_key(self.kind, {**self.settings(), "libraries": self.library_versions()}, self.corpus_hash)
        start = time.perf_counter()
        loaded = self.cache.load(key, self.read_index)
        if loaded is not None:
            _, meta = loaded
            self.index_info.update(
                cached=True, path=str(self.cache.entry(key)), load_seconds=time.perf_counter() - start,
                build_seconds=meta.get("build_seconds", 0.0), build_flops=meta.get("build_flops", 0.0),
            )  # fmt: skip
            return
        start = time.perf_counter()
        flops = self.build_index()
        seconds = time.perf_counter() - start
        meta = {"kind": self.kind, "documents": len(self.docs), "build_seconds": seconds, "build_flops": flops}
        path = self.cache.store(key, self.write_index, meta)
        self.index_info.update(cached=False, path=str(path), build_seconds=seconds, build_flops=flops)

    def library_versions(self) -> dict[str, str]:
        """Versions of the libraries whose files the index holds (a new version builds a new index)."""
        return {}

    def build_index(self) -> float:
        """Build the index in memory; returns the FLOPs the build computed (0 for a lexical index)."""
        raise NotImplementedError

    def write_index(self, directory: Path) -> None:
        """Write the built index's files into ``directory``."""
        raise NotImplementedError

    def read_index(self, directory: Path) -> None:
        """Load the index from ``directory`` (raise on anything wrong: the entry is rebuilt)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ search

    def _search(self, queries: Sequence[str], k: int) -> list[Hits]:
        """The top ``k`` (document index, score) of each query, best first."""
        raise NotImplementedError

    def query_cost(self, queries: Sequence[str]) -> Cost:
        """What encoding ``queries`` costs (FLOPs of a query encoder; nothing for a lexical retriever)."""
        return Cost()

    def query_latency(self, queries: Sequence[str], hardware: HardwareProfile) -> float:
        """Idealized seconds of encoding ``queries`` on ``hardware`` (0 without an encoder)."""
        return 0.0

    def passages(self, hits: Hits) -> list[Passage]:
        """Hits as passages."""
        return [
            Passage(self.docs[i].id, self.docs[i].title, self.docs[i].text, float(s), rank)
            for rank, (i, s) in enumerate(hits)
        ]

    def _run_batch(self, items: Sequence[tuple[str, int]]) -> list[Any]:
        k = max(k for _, k in items)
        start = time.perf_counter()
        try:
            hits = self._search([q for q, _ in items], k)
        except Exception as exc:
            return [exc] * len(items)
        share = (time.perf_counter() - start) / len(items)  # each query's share of the batch's time
        return [(self.passages(h[:kk]), share) for h, (_, kk) in zip(hits, items, strict=True)]

    async def timed_search(self, query: str, k: int) -> tuple[list[Passage], float]:
        """:meth:`search`, with this query's share of its batch's wall time."""
        if k < 1:
            raise ValueError(f"retriever {self.name!r}: k must be at least 1, got {k}")
        return await self._batcher.submit((query, k), size=max(1, len(query)))

    async def search(self, query: str, k: int) -> list[Passage]:
        """The top ``k`` passages for ``query`` (concurrent searches are batched)."""
        return (await self.timed_search(query, k))[0]

    async def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """:meth:`search` for each query, in one batch."""
        return [found for found, _ in await self._timed_many(queries, k)]

    async def _timed_many(self, queries: Sequence[str], k: int) -> list[tuple[list[Passage], float]]:
        import asyncio

        return list(await asyncio.gather(*(self.timed_search(q, k) for q in queries)))

    def charged(self, ledger: Ledger, scope: Scope, *, hardware: HardwareProfile | None = None) -> ChargedRetriever:
        """The same retriever with each search charged to ``scope`` of ``ledger`` (latency on ``hardware``)."""
        return ChargedRetriever(self, ledger, scope, hardware)

    def batcher_stats(self) -> Any:
        """What the micro-batcher did (batches, items, the largest batch)."""
        return self._batcher.stats

    def close(self) -> None:
        """Release the batcher."""
        self._batcher.close()


class ChargedRetriever:
    """A retriever whose searches charge their query encoding and wall time to one ledger scope."""

    def __init__(
        self, retriever: RetrieverBase, ledger: Ledger, scope: Scope, hardware: HardwareProfile | None = None
    ) -> None:
        self.retriever, self.ledger, self.scope, self.hardware = retriever, ledger, scope, hardware
        self.name = retriever.name

    def cost(self, queries: Sequence[str]) -> Cost:
        """What searching ``queries`` is charged, wall time aside."""
        cost = self.retriever.query_cost(queries)
        if self.hardware is not None:
            cost = replace(cost, latency=self.retriever.query_latency(queries, self.hardware))
        return cost

    async def search(self, query: str, k: int) -> list[Passage]:
        """:meth:`RetrieverBase.search`, charged."""
        return (await self.search_many([query], k))[0]

    async def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """:meth:`RetrieverBase.search_many`, charged as one call."""
        worst = self.cost(queries)
        with self.ledger.charged(self.scope, worst) as r:
            timed = await self.retriever._timed_many(queries, k)
            r.settle(replace(worst, seconds=sum(t for _, t in timed)))  # compute time, not time queued
        return [found for found, _ in timed]
