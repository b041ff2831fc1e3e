"""What the cost model needs to know about a model: sizes, shapes and number format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "fp8": 1, "int4": 0.5}
"""Bytes per parameter of the number formats the cost model knows."""


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """The architecture facts of a decoder-only language model.

    Args:
        name: The model's name (as the user declared it).
        parameters: All parameters, embeddings included.
        embedding_parameters: Parameters of the input embedding (and of an untied LM head).
        layers: Transformer blocks.
        hidden_size: Width of the residual stream ``d``.
        heads: Attention (query) heads.
        kv_heads: Key/value heads (fewer than ``heads`` under grouped-query attention).
        head_dim: Width of one attention head.
        intermediate_size: Width of the MLP.
        vocab_size: Size of the vocabulary (the LM head's output).
        context_length: Longest sequence the model accepts.
        dtype: Number format of the weights and activations (``float32``, ``bfloat16`` ...).
        exact: Whether ``parameters`` was counted on the loaded weights (``True``) or estimated from the
            configuration (``False``, for models behind a server).

    Example:
        >>> cfg = {"num_hidden_layers": 4, "hidden_size": 128, "num_attention_heads": 4,
        ...        "num_key_value_heads": 2, "intermediate_size": 384, "vocab_size": 103,
        ...        "max_position_embeddings": 2048, "tie_word_embeddings": True}
        >>> f = ModelFacts.from_config(cfg, name="tiny-l")
        >>> f.parameters, f.kv_bytes_per_token
        (800768, 2048)
    """

    name: str
    parameters: int
    embedding_parameters: int
    layers: int
    hidden_size: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    context_length: int
    dtype: str = "float32"
    exact: bool = False

    @property
    def non_embedding_parameters(self) -> int:
        """Parameters outside the embedding and LM head: the ``N`` of ``2·N`` FLOPs per token."""
        return self.parameters - self.embedding_parameters

    @property
    def bytes_per_parameter(self) -> float:
        """Bytes one weight takes in :attr:`dtype`."""
        return DTYPE_BYTES.get(self.dtype, 4)

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of KV cache one token of context takes: ``2·L·kv_heads·head_dim·bytes``."""
        return int(2 * self.layers * self.kv_heads * self.head_dim * self.bytes_per_parameter)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, name: str = "", parameters: int | None = None, dtype: str | None = None
    ) -> ModelFacts:
        """Read the facts from a Hugging Face ``config.json`` (as a dict).

        ``parameters`` is the exact count when the weights are loaded; otherwise it is estimated for a
        Llama-style block: attention ``d·(heads + 2·kv_heads)·head_dim + heads·head_dim·d``, a gated
        MLP ``3·d·intermediate``, two RMSNorm vectors, plus the embeddings (twice when untied).
        """
        cfg = dict(config.get("text_config") or config)
        d = int(_first(cfg, "hidden_size", "n_embd", "d_model"))
        layers = int(_first(cfg, "num_hidden_layers", "n_layer", "num_layers"))
        heads = int(_first(cfg, "num_attention_heads", "n_head", "num_heads"))
        kv_heads = int(cfg.get("num_key_value_heads") or heads)
        head_dim = int(cfg.get("head_dim") or d // heads)
        inter = int(_first(cfg, "intermediate_size", "n_inner", "ffn_dim", default=4 * d))
        vocab = int(cfg["vocab_size"])
        ctx = int(_first(cfg, "max_position_embeddings", "n_positions", "max_seq_len", "seq_length", default=2048))
        tied = bool(cfg.get("tie_word_embeddings", True))
        embedding = vocab * d * (1 if tied else 2)
        exact = parameters is not None
        if parameters is None:
            attn = d * (heads + 2 * kv_heads) * head_dim + heads * head_dim * d
            block = attn + 3 * d * inter + 2 * d
            parameters = layers * block + d + embedding
        fmt = dtype or str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32").replace("torch.", "")
        return cls(
            name=name,
            parameters=int(parameters),
            embedding_parameters=embedding,
            layers=layers,
            hidden_size=d,
            heads=heads,
            kv_heads=kv_heads,
            head_dim=head_dim,
            intermediate_size=inter,
            vocab_size=vocab,
            context_length=ctx,
            dtype=fmt,
            exact=exact,
        )


def _first(cfg: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    if default is None:
        raise KeyError(f"model config has none of {', '.join(keys)}")
    return default
