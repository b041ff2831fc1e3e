"""Batched forward passes that continue cached KV: the layout an engine and a reward model share.

Rows of one pass may continue cached prefixes of different lengths. Every row's new tokens are
left-padded to the longest, its cached prefix right-aligned before them, so that each token sits at
its true position (``position_ids``) and the attention mask hides the padding on both sides:

    [ pad pad | cached prefix ][ pad | new tokens ]
      <------ c_max ------>    <--- s_max --->
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]
"""One sequence's cache: ``(keys, values)`` per layer, each ``[heads, tokens, head_dim]``."""


def continuation_inputs(
    rows: Sequence[tuple[Sequence[int], int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    """``input_ids``, ``position_ids`` and ``attention_mask`` of rows ``(token ids, cached)``, and ``c_max, s_max``.

    Each row's first ``cached`` tokens come from its cache; the others are fed.

    Example:
        >>> ids, pos, mask, c, s = continuation_inputs([([5, 6, 7], 2), ([8, 9], 0)], pad_id=0)
        >>> ids.tolist(), pos.tolist(), mask.tolist(), (c, s)
        ([[0, 7], [8, 9]], [[0, 2], [0, 1]], [[1, 1, 0, 1], [0, 0, 1, 1]], (2, 2))
    """
    c_max = max(cached for _, cached in rows)
    s_max = max(len(ids) - cached for ids, cached in rows)
    b = len(rows)
    ids = torch.full((b, s_max), pad_id, dtype=torch.long)
    pos = torch.zeros((b, s_max), dtype=torch.long)
    mask = torch.zeros((b, c_max + s_max), dtype=torch.long)
    for r, (tokens, cached) in enumerate(rows):
        new = tokens[cached:]
        ids[r, s_max - len(new) :] = torch.tensor(list(new))
        pos[r, s_max - len(new) :] = torch.arange(cached, len(tokens))
        mask[r, c_max - cached : c_max] = 1
        mask[r, c_max + s_max - len(new) :] = 1
    return ids, pos, mask, c_max, s_max


def stack_kv(
    kvs: Sequence[KV | None],
    lengths: Sequence[int],
    width: int,
    shape: tuple[int, int, int],
    dtype: torch.dtype,
    device: torch.device,
    *,
    share: bool = False,
) -> KV:
    """A batch's cache: each sequence's first ``lengths[i]`` positions right-aligned in ``width`` columns.

    ``shape`` is ``(layers, kv_heads, head_dim)``. With ``share``, identical KV objects (the ``n``
    samples of one prompt) are stacked once and expanded by indexing.
    """
    uniq: dict[int, int] = {}
    order: list[int] = []
    firsts: list[int] = []
    for i, kv in enumerate(kvs):
        key = id(kv) if share and kv is not None else -1 - i
        if key not in uniq:
            uniq[key] = len(firsts)
            firsts.append(i)
        order.append(uniq[key])
    layers, heads, head_dim = shape
    data = []
    for li in range(layers):
        keys = torch.zeros((len(firsts), heads, width, head_dim), dtype=dtype, device=device)
        values = torch.zeros_like(keys)
        for u, i in enumerate(firsts):
            kv, n = kvs[i], lengths[i]
            if kv is not None and n:
                keys[u, :, width - n :] = kv[li][0][:, :n]
                values[u, :, width - n :] = kv[li][1][:, :n]
        if len(firsts) != len(kvs):
            idx = torch.tensor(order, device=device)
            keys, values = keys.index_select(0, idx), values.index_select(0, idx)
        data.append((keys, values))
    return data


def row_kv(layers: Sequence[object], row: int, start: int, prefix: KV | None, cached: int) -> KV:
    """Row ``row``'s KV after a pass: ``cached`` positions of ``prefix``, then the pass's from column ``start`` on."""
    kv = []
    for li, layer in enumerate(layers):
        k_new = layer.keys[row, :, start:]  # type: ignore[attr-defined]
        v_new = layer.values[row, :, start:]  # type: ignore[attr-defined]
        if cached and prefix is not None:
            k_old, v_old = prefix[li]
            k_new = torch.cat([k_old[:, :cached], k_new], dim=1)
            v_new = torch.cat([v_old[:, :cached], v_new], dim=1)
        kv.append((k_new, v_new))
    return kv
