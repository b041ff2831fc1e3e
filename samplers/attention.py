"""A decode-step attention for transformers models: one query token against a long, padded cache.

Registered with transformers' ``AttentionInterface`` as ``"archon_sdpa"``. Prefill (several query
tokens) goes to transformers' own SDPA path unchanged; a decode step (one query token per row)
multiplies the query heads of each key/value group against the cache directly, which reads the
cache once per group instead of through SDPA's generic kernel (measured 15-20% faster per call at
512 rows on 2 CPU cores, where a strided cache view otherwise costs SDPA an extra copy).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "archon_sdpa"


def decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention of ``query`` ``[B, H, q, D]`` over ``key``/``value`` ``[B, KV, T, D]``; returns ``[B, q, H, D]``."""
    b, heads, q_len, dim = query.shape
    if q_len != 1 or dropout or kwargs.get("softcap") is not None or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    kv_heads, t = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    q = query.reshape(b, kv_heads, groups, dim)
    scores = torch.matmul(q, key.transpose(-1, -2)) * scale  # [B, KV, groups, T]
    if attention_mask is not None:
        mask = (
            attention_mask.reshape(b, 1, 1, t)
            if attention_mask.shape[1] == 1
            else attention_mask.reshape(b, kv_heads, groups, t)
        )
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    probs = torch.softmax(scores.float(), dim=-1).to(value.dtype)
    out = torch.matmul(probs, value)  # [B, KV, groups, D]
    return out.reshape(b, heads, 1, dim).transpose(1, 2), None


def register() -> str:
    """Register the attention (and its mask, SDPA's) with transformers; returns its name."""
    AttentionInterface.register(NAME, decode_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME
