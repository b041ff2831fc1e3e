"""The built-in retriever kinds (``retrievers:`` entries of a spec), each registered with its builder.

``{kind: bm25, corpus: facts, options: {k1: 1.5}}``, ``{kind: dense, corpus: docs.jsonl}`` and
``{kind: hybrid, of: [bm25, dense]}``. Builders import ``bm25s``, sentence-transformers and FAISS when
called (the ``rag`` extra); without them, building fails in one line naming the extra.
"""

from __future__ import annotations

from typing import Any

from archon.core.registry import RETRIEVER_KINDS, accepts
from archon.retrieval.base import RetrieverDecl
from archon.retrieval.bm25 import METHODS


def _bm25_values(options: dict[str, Any]) -> None:
    if "method" in options and options["method"] not in METHODS:
        raise ValueError(f"@options.method: one of {', '.join(METHODS)}, got {options['method']!r}")
    for key, low in (("k1", 0.0), ("b", 0.0)):
        if key in options and not (isinstance(options[key], int | float) and options[key] >= low):
            raise ValueError(f"@options.{key}: a number >= {low:g}, got {options[key]!r}")
    if "b" in options and isinstance(options["b"], int | float) and options["b"] > 1:
        raise ValueError(f"@options.b: a number in [0, 1], got {options['b']!r}")


@RETRIEVER_KINDS.register(
    "bm25", check=accepts("k1", "b", "method", "stopwords", "cache_dir", values=_bm25_values), corpus="required"
)
def bm25(decl: RetrieverDecl) -> Any:
    """BM25 over the corpus (``bm25s``): exact words, no model FLOPs."""
    from archon.retrieval.bm25 import BM25Retriever

    return BM25Retriever(decl.name, decl.docs, **decl.options)


@RETRIEVER_KINDS.register("dense", check=accepts("model", "batch_size", "device", "cache_dir"), corpus="required")
def dense(decl: RetrieverDecl) -> Any:
    """Cosine similarity of sentence-transformers embeddings (MiniLM by default) in a FAISS index."""
    from archon.retrieval.dense import DenseRetriever

    return DenseRetriever(decl.name, decl.docs, **decl.options)


@RETRIEVER_KINDS.register("hybrid", check=accepts("k0", "depth", "weights"), corpus="none")
def hybrid(decl: RetrieverDecl) -> Any:
    """Reciprocal rank fusion of the retrievers named in ``of``."""
    from archon.retrieval.hybrid import HybridRetriever

    return HybridRetriever(decl.name, decl.members, **decl.options)
