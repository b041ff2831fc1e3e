"""What a retriever is to an operator: :class:`Passage` and the :class:`Retriever` protocol.

The retrievers themselves (BM25, dense, hybrid) live in :mod:`archon.retrieval`; operators see only
this protocol, through ``ctx.retriever(name)``, whose calls are charged to the operator's node and
problem (a dense retriever charges its query encoder's FLOPs; BM25 costs no model FLOPs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrieved document: its corpus id, title, text, the retriever's score and its rank (0: best)."""

    id: str
    title: str
    text: str
    score: float
    rank: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (for traces)."""
        return {"id": self.id, "title": self.title, "score": round(float(self.score), 6), "rank": self.rank}


@runtime_checkable
class Retriever(Protocol):
    """Finds the passages of a corpus that best match a query."""

    name: str

    async def search(self, query: str, k: int) -> list[Passage]:
        """The top ``k`` passages for ``query``, best first (fewer when the corpus is smaller)."""
        ...

    async def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """:meth:`search` for several queries at once (one batched encoding where there is one)."""
        ...
