"""Hybrid retrieval: reciprocal rank fusion (Cormack et al., 2009) of declared retrievers over one corpus.

A document's fused score is ``sum_m w_m / (k0 + rank_m)`` over the member retrievers that rank it
within their top ``depth`` (rank 1-based). It costs what its members cost (a dense member's query
encoding is charged); it keeps no index of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from archon.retrieval.base import Hits, RetrieverBase
from archon.retrieval.extras import RetrievalError
from budgets import Cost, HardwareProfile


def rrf(rankings: Sequence[Hits], *, k0: float = 60.0, weights: Sequence[float] | None = None) -> Hits:
    """Fuse rankings of document indices by reciprocal rank; best first, ties by first appearance.

    Example:
        >>> [(d, round(s, 3)) for d, s in rrf([[(3, 9.0), (1, 5.0)], [(1, 0.9), (2, 0.8)]], k0=1)]
        [(1, 0.833), (3, 0.5), (2, 0.333)]
    """
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for w, hits in zip(weights, rankings, strict=True):
        for rank, (doc, _) in enumerate(hits, start=1):
            fused[doc] = fused.get(doc, 0.0) + w / (k0 + rank)
    order = sorted(fused.items(), key=lambda kv: -kv[1])  # stable: ties keep first appearance
    return order


class HybridRetriever(RetrieverBase):
    """Reciprocal rank fusion of ``members`` (built retrievers over the same corpus).

    Args:
        name: The declared name.
        members: The retrievers fused, by declared name (two or more).
        k0: RRF's constant (60 in the paper).
        depth: How many of each member's results are fused (at least the ``k`` asked).
        weights: One weight per member (default 1 each).
    """

    kind = "hybrid"
    cached_index = False

    def __init__(
        self,
        name: str,
        members: Mapping[str, RetrieverBase],
        *,
        k0: float = 60.0,
        depth: int = 50,
        weights: Sequence[float] | None = None,
    ) -> None:
        if len(members) < 2:
            raise RetrievalError(f"retriever {name!r}: a hybrid fuses two or more retrievers, got {len(members)}")
        first = next(iter(members.values()))
        for m_name, m in members.items():
            if not isinstance(m, RetrieverBase):
                raise RetrievalError(f"retriever {name!r}: member {m_name!r} is not a built-in retriever")
            if m.corpus_hash != first.corpus_hash:
                raise RetrievalError(
                    f"retriever {name!r}: members {first.name!r} and {m_name!r} index different corpora"
                )
        if weights is not None and len(weights) != len(members):
            raise RetrievalError(f"retriever {name!r}: {len(weights)} weights for {len(members)} members")
        super().__init__(name, first.docs)
        self.members = dict(members)
        self.k0, self.depth = float(k0), int(depth)
        self.weights = list(weights) if weights is not None else None
        self.index_info.update(members=list(self.members))

    def settings(self) -> dict[str, Any]:
        """The members and the fusion's constants."""
        return {"members": list(self.members), "k0": self.k0, "depth": self.depth, "weights": self.weights}

    def _search(self, queries: Sequence[str], k: int) -> list[Hits]:
        depth = max(k, self.depth)
        per_member = [m._search(queries, depth) for m in self.members.values()]
        fused = [rrf([hits[q] for hits in per_member], k0=self.k0, weights=self.weights) for q in range(len(queries))]
        return [f[:k] for f in fused]

    def query_cost(self, queries: Sequence[str]) -> Cost:
        """What the members' query encodings cost."""
        total = Cost()
        for m in self.members.values():
            total = total + m.query_cost(queries)
        return total

    def query_latency(self, queries: Sequence[str], hardware: HardwareProfile) -> float:
        """The members' encodings, one after the other."""
        return sum(m.query_latency(queries, hardware) for m in self.members.values())
