"""BM25 retrieval with ``bm25s`` (lexical: exact tokens, so a one-letter-different name does not match)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from archon.data import Document
from archon.retrieval.base import Hits, RetrieverBase
from archon.retrieval.extras import require

Method = Literal["robertson", "lucene", "bm25+", "bm25l", "atire"]
METHODS: tuple[str, ...] = ("robertson", "lucene", "bm25+", "bm25l", "atire")


class BM25Retriever(RetrieverBase):
    """Okapi BM25 over each document's title and text.

    Args:
        name: The declared name.
        docs: The corpus.
        k1: Term-frequency saturation.
        b: Length normalisation.
        method: The BM25 variant (``bm25s``'s names).
        stopwords: A language whose stopwords are dropped (``"en"``), or ``None`` to keep every word.
        cache_dir: Where the index is cached.

    Example:
        >>> import asyncio, tempfile
        >>> from archon.data import Document
        >>> docs = [Document("a", "Ann", "Ann plays the oboe."), Document("b", "Bob", "Bob plays the harp.")]
        >>> r = BM25Retriever("bm25", docs, cache_dir=tempfile.mkdtemp())
        >>> [p.id for p in asyncio.run(r.search("Who plays the harp?", 1))]
        ['b']
    """

    kind = "bm25"

    def __init__(
        self,
        name: str,
        docs: Sequence[Document],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        method: Method = "lucene",
        stopwords: str | None = "en",
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(name, docs, cache_dir=cache_dir)
        self.bm25s = require("bm25s", what="the bm25 retriever")
        self.k1, self.b, self.method, self.stopwords = float(k1), float(b), method, stopwords
        self._index: Any = None
        self.open_index()

    def settings(self) -> dict[str, Any]:
        """k1, b, the variant and the stopwords."""
        return {"k1": self.k1, "b": self.b, "method": self.method, "stopwords": self.stopwords}

    def library_versions(self) -> dict[str, str]:
        """bm25s's version."""
        return {"bm25s": str(getattr(self.bm25s, "__version__", "?"))}

    def _tokens(self, texts: Sequence[str], *, ids: bool) -> Any:
        return self.bm25s.tokenize(list(texts), stopwords=self.stopwords, show_progress=False, return_ids=ids)

    def build_index(self) -> float:
        """Tokenise and index the corpus (no model FLOPs)."""
        index = self.bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        index.index(self._tokens([f"{d.title}\n{d.text}" for d in self.docs], ids=True), show_progress=False)
        self._index = index
        return 0.0

    def write_index(self, directory: Path) -> None:
        """``bm25s``'s own files."""
        self._index.save(str(directory))

    def read_index(self, directory: Path) -> None:
        """Load ``bm25s``'s files and check they index this corpus."""
        index = self.bm25s.BM25.load(str(directory))
        n = int(getattr(index, "scores", {}).get("num_docs", len(self.docs)))
        if n != len(self.docs):
            raise ValueError(f"the index holds {n} documents, the corpus {len(self.docs)}")
        self._index = index

    def _search(self, queries: Sequence[str], k: int) -> list[Hits]:
        k = min(k, len(self.docs))
        tokens = [[t for t in q if t in self._index.vocab_dict] for q in self._tokens(queries, ids=False)]
        out: list[Hits] = [[(i, 0.0) for i in range(k)] for _ in tokens]  # no query word in the corpus: all 0
        asked = [i for i, q in enumerate(tokens) if q]
        if asked:
            docs, scores = self._index.retrieve([tokens[i] for i in asked], k=k, show_progress=False, n_threads=1)
            for row, i in enumerate(asked):
                out[i] = [(int(d), float(s)) for d, s in zip(docs[row], scores[row], strict=True)]
        return out
