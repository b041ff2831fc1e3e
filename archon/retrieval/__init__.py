"""Retrieval: BM25, dense and hybrid retrievers over a corpus, cached indexes, and the ``retrieve`` operators.

Retrievers are a resource kind (``retrievers:`` in a spec, built by kind through
:data:`~archon.core.registry.RETRIEVER_KINDS`); operators reach them with ``ctx.retriever(name)``, which
charges each search to the node and problem. Their libraries (``bm25s``, sentence-transformers, FAISS)
are the ``rag`` extra: ``pip install -e ".[rag]"``.
"""

from archon.core.retrieval import Passage, Retriever
from archon.retrieval.base import ChargedRetriever, RetrieverBase, RetrieverDecl
from archon.retrieval.extras import RetrievalError
from archon.retrieval.index_cache import IndexCache, cache_root, corpus_hash, index_key

__all__ = [
    "ChargedRetriever",
    "IndexCache",
    "Passage",
    "RetrievalError",
    "Retriever",
    "RetrieverBase",
    "RetrieverDecl",
    "cache_root",
    "corpus_hash",
    "index_key",
]
