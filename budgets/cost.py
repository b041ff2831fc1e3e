"""FLOPs and bytes of a decoder's forward passes, from its configuration.

The accounting of Kaplan et al. (2020, "Scaling Laws for Neural Language Models", section 2.1): a
forward pass costs 2 FLOPs per weight of every matrix a token goes through (``2·N`` per token, ``N``
the non-embedding matrix parameters), plus attention's two products (``Q·Kᵀ`` and ``scores·V``),
``2·d_attn`` FLOPs each per (query, key) pair and layer, plus the LM head (``2·d·V`` per position
whose logits are computed). Embedding look-ups, norms, biases, activations and softmax are left out:
they are a fraction of a percent for any real model (and what ``torch``'s ``FlopCounterMode``, which
counts matrix products only, leaves out too).

Bytes moved per decode step follow the roofline analysis of "LLM Inference Unveiled: Survey and
Roofline Model Insights" (Yuan et al. 2024): one step reads every weight once for the whole batch,
and each sequence's KV cache (``2·L·kv_heads·head_dim`` values per token of context).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from budgets.errors import BudgetError
from budgets.facts import ModelFacts

EMBEDDED_DIR = Path(__file__).resolve().parents[1] / "archon" / "models" / "embedded"
"""Where the package's embedded models live (found by path: ``budgets`` imports nothing of the project)."""


@dataclass(frozen=True, slots=True)
class CostModel:
    """FLOPs, bytes and KV memory of one model's forward passes.

    Args:
        facts: The model's architecture facts (:class:`~budgets.ModelFacts`).
        matmul_params: Weights of the matrices every token goes through (the ``N`` of ``2·N`` FLOPs per
            token): all weight matrices except the embeddings and the LM head. Defaults to
            ``facts.non_embedding_parameters`` (which also holds the few norm weights and biases).
        head_params: Weights of the LM head (``d·V``; a reward model's small head counts as a matmul).

    Example:
        >>> cost = CostModel.from_config("tiny-l")
        >>> cost.params, cost.non_embedding_params
        (800768, 787584)
        >>> cost.decode_flops(1, context=100) == 2 * cost.matmul_params + 2 * 128 * 103 + 4 * 4 * 128 * 101
        True
    """

    facts: ModelFacts
    matmul_params: int = -1
    head_params: int = -1

    def __post_init__(self) -> None:
        if self.matmul_params < 0:
            object.__setattr__(self, "matmul_params", self.facts.non_embedding_parameters)
        if self.head_params < 0:
            object.__setattr__(self, "head_params", self.facts.hidden_size * self.facts.vocab_size)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_config(cls, config: Any, *, name: str = "", dtype: str | None = None) -> CostModel:
        """A cost model from a transformers config object, a config dict, a model directory or an embedded name.

        Parameters are counted exactly by building the model on PyTorch's ``meta`` device (no memory,
        no weights) when ``transformers`` is installed; otherwise they are estimated for a Llama-style
        block (:meth:`ModelFacts.from_config`).
        """
        cfg, name = _read_config(config, name)
        counted = _count_parameters(cfg)
        raw = cfg if isinstance(cfg, Mapping) else cfg.to_dict()
        if counted is None:
            return cls(ModelFacts.from_config(raw, name=name, dtype=dtype))
        total, embedding, matmul, head = counted
        facts = ModelFacts.from_config(raw, name=name, parameters=total, dtype=dtype)
        facts = _with(facts, embedding_parameters=embedding)
        return cls(facts, matmul_params=matmul, head_params=head)

    # ------------------------------------------------------------------ sizes

    @property
    def params(self) -> int:
        """All parameters, embeddings included."""
        return self.facts.parameters

    @property
    def non_embedding_params(self) -> int:
        """Parameters outside the token (and position) embeddings and the LM head."""
        return self.facts.non_embedding_parameters

    @property
    def attention_width(self) -> int:
        """``heads · head_dim``: the width of the queries (and of the attention's output)."""
        return self.facts.heads * self.facts.head_dim

    @property
    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes one token of context takes: ``2·L·kv_heads·head_dim·bytes``."""
        return self.facts.kv_bytes_per_token

    @property
    def weight_bytes(self) -> float:
        """Bytes of all weights in the model's number format."""
        return self.facts.parameters * self.facts.bytes_per_parameter

    # ------------------------------------------------------------------ FLOPs

    def attention_flops(self, queries: int, keys_before: int, *, causal: bool = True) -> int:
        """FLOPs of ``Q·Kᵀ`` and ``scores·V`` for ``queries`` new tokens after ``keys_before`` cached ones.

        Causal: query ``i`` (1-based) attends to ``keys_before + i`` keys, so the pairs are
        ``P·C + P·(P+1)/2``. ``causal=False`` counts the full ``P × (C+P)`` score matrix, which is what
        an eager attention computes before masking.
        """
        p, c = queries, keys_before
        pairs = p * c + (p * (p + 1) // 2 if causal else p * p)
        return 4 * self.facts.layers * self.attention_width * pairs

    def prefill_flops(
        self, new_tokens: int, cached_tokens: int = 0, *, logit_positions: int | None = 1, causal: bool = True
    ) -> int:
        """FLOPs to prefill ``new_tokens`` after ``cached_tokens`` whose KV is reused.

        ``logit_positions`` is how many positions go through the LM head: 1 for generation (only the
        last token's logits are needed), ``None`` for all new tokens (a scoring pass).
        """
        if new_tokens <= 0:
            return 0
        heads = new_tokens if logit_positions is None else min(logit_positions, new_tokens)
        return (
            2 * self.matmul_params * new_tokens
            + self.attention_flops(new_tokens, cached_tokens, causal=causal)
            + 2 * self.head_params * heads
        )

    def decode_flops(self, tokens: int, context: int) -> int:
        """FLOPs to generate ``tokens`` tokens one by one, starting at context length ``context``.

        Step ``j`` (0-based) feeds one token at context ``context + j``, which attends to
        ``context + j + 1`` keys: ``2·N + 2·d·V + 4·L·d_attn·(context + j + 1)``.
        """
        if tokens <= 0:
            return 0
        keys = tokens * context + tokens * (tokens + 1) // 2
        per_token = 2 * self.matmul_params + 2 * self.head_params
        return tokens * per_token + 4 * self.facts.layers * self.attention_width * keys

    def score_flops(self, prompt_tokens: int, continuation_tokens: int, cached_tokens: int = 0) -> int:
        """FLOPs of a teacher-forced scoring pass: prompt and continuation, logits over the continuation."""
        new = prompt_tokens + continuation_tokens - cached_tokens
        return self.prefill_flops(new, cached_tokens, logit_positions=continuation_tokens + 1)

    def generation_flops(self, prompt_tokens: int, generated: Sequence[int], cached_tokens: int = 0) -> int:
        """FLOPs of one generate call: the prompt prefilled once, then each completion decoded.

        ``generated`` holds each completion's length. The first token of every completion comes from
        the prefill's logits; the rest are decode steps (the last token is never fed back).
        """
        flops = self.prefill_flops(prompt_tokens - cached_tokens, cached_tokens)
        for g in generated:
            flops += self.decode_flops(max(0, g - 1), prompt_tokens)
        return flops

    # ------------------------------------------------------------------ bytes

    def decode_bytes(self, batch: int, context: int) -> float:
        """Bytes one decode step moves: all weights once, plus each sequence's KV cache of ``context`` tokens."""
        return self.weight_bytes + batch * context * self.kv_bytes_per_token

    def prefill_bytes(self, new_tokens: int, cached_tokens: int = 0, batch: int = 1) -> float:
        """Bytes a prefill moves: the weights once, the cached KV read and the new KV written."""
        return self.weight_bytes + batch * (cached_tokens + new_tokens) * self.kv_bytes_per_token


# ---------------------------------------------------------------------- helpers


def _read_config(config: Any, name: str) -> tuple[Any, str]:
    if isinstance(config, Mapping) or hasattr(config, "to_dict"):
        return config, name or str(getattr(config, "name_or_path", "") or "")
    text = str(config)
    where = EMBEDDED_DIR / text if (EMBEDDED_DIR / text / "config.json").is_file() else Path(text).expanduser()
    if where.is_dir():
        where = where / "config.json"
    if not where.is_file():
        raise BudgetError(f"CostModel.from_config: {text!r} is no config, model directory or embedded model name")
    import json

    return json.loads(where.read_text()), name or text


def _count_parameters(cfg: Any) -> tuple[int, int, int, int] | None:
    """Exact (total, embedding, matmul, head) parameter counts, by building the model on the meta device."""
    try:
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForSequenceClassification,
            AutoModelForTokenClassification,
        )
    except ImportError:  # pragma: no cover - transformers is a dependency; kept for a light budgets install
        return None
    if isinstance(cfg, Mapping):
        data = dict(cfg)
        cfg = AutoConfig.for_model(data.pop("model_type", "llama"), **data)
    arch = " ".join(getattr(cfg, "architectures", None) or [])
    auto = AutoModelForCausalLM
    if "SequenceClassification" in arch:
        auto = AutoModelForSequenceClassification
    elif "TokenClassification" in arch:
        auto = AutoModelForTokenClassification
    with torch.device("meta"):
        model = auto.from_config(cfg)
    embeddings = {id(m) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_ids = {id(p) for p in out.parameters()} if out is not None else set()
    seen: set[int] = set()
    total = embedding = matmul = head = 0
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            if id(module) in embeddings:
                embedding += p.numel()
            elif id(p) in head_ids:
                embedding += p.numel()  # an untied LM head counts with the embeddings, as in Kaplan et al.
            elif p.dim() == 2:
                matmul += p.numel()
    if out is not None:  # reward models have none: their small scoring head is an ordinary matmul
        head = int(out.weight.shape[0] * out.weight.shape[1])
    return total, embedding, matmul, head


def _with(facts: ModelFacts, **changes: Any) -> ModelFacts:
    from dataclasses import replace

    return replace(facts, **changes)
