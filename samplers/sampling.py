"""Choosing the next token of many sequences at once: temperature, top-k, top-p, seeds, logprobs.

Each row of a decode batch has its own sampling parameters and random stream. Everything here is
vectorized over rows; the uniforms come from each row's own counter-based stream
(:mod:`samplers.streams`), so a seeded request gives the same tokens whatever else shares its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RowParams:
    """Per-row sampling parameters of a decode batch (tensors of shape ``[rows]``)."""

    temperature: torch.Tensor
    top_p: torch.Tensor
    top_k: torch.Tensor

    def select(self, idx: torch.Tensor) -> RowParams:
        """The parameters of the rows ``idx`` (after finished rows leave the batch)."""
        return RowParams(self.temperature[idx], self.top_p[idx], self.top_k[idx])


def log_softmax_and_entropy(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities ``[rows, vocab]`` of the model's own distribution and its entropy ``[rows]`` (nats)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    entropy = -(logp.exp() * logp).nan_to_num().sum(-1)
    return logp, entropy


def choose(logits: torch.Tensor, params: RowParams, uniforms: torch.Tensor) -> torch.Tensor:
    """The next token of every row: argmax where temperature is 0, else a draw by inverse CDF.

    Args:
        logits: ``[rows, vocab]`` next-token logits.
        params: Per-row temperature, top-p and top-k (``top_k`` 0: off).
        uniforms: ``[rows]`` uniforms in [0, 1), one per row, from the rows' own streams.

    Example:
        >>> logits = torch.tensor([[0.0, 2.0, 1.0], [0.0, 2.0, 1.0]])
        >>> p = RowParams(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0]), torch.tensor([0, 1]))
        >>> choose(logits, p, torch.tensor([0.5, 0.99])).tolist()
        [1, 1]
    """
    logits = logits.float()
    greedy = logits.argmax(-1)
    sampled = params.temperature > 0
    if not bool(sampled.any()):
        return greedy
    temp = torch.where(sampled, params.temperature, torch.ones_like(params.temperature))
    scaled = logits / temp.unsqueeze(-1)
    if bool((params.top_k > 0).any()) or bool((params.top_p < 1).any()):
        scaled = _truncate(scaled, params)
    probs = torch.softmax(scaled, dim=-1)
    cdf = probs.cumsum(-1)
    target = (uniforms.to(cdf) * cdf[:, -1]).unsqueeze(-1)
    drawn = torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp_(max=logits.shape[-1] - 1)
    return torch.where(sampled, drawn, greedy)


def _truncate(scaled: torch.Tensor, params: RowParams) -> torch.Tensor:
    """Mask tokens outside each row's top-k and nucleus (the most likely token always survives)."""
    sorted_logits, order = scaled.sort(dim=-1, descending=True)
    vocab = scaled.shape[-1]
    rank = torch.arange(vocab, device=scaled.device).unsqueeze(0)
    k = torch.where(params.top_k > 0, params.top_k, torch.full_like(params.top_k, vocab)).unsqueeze(-1)
    drop = rank >= k
    probs = torch.softmax(sorted_logits.masked_fill(drop, float("-inf")), dim=-1)
    before = probs.cumsum(-1) - probs  # probability mass ranked above each token
    drop |= (before >= params.top_p.unsqueeze(-1).to(before)) & (params.top_p < 1).unsqueeze(-1)  # top_p 1: off
    drop[:, 0] = False
    masked = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(scaled).scatter_(-1, order, masked)
