"""Anytime sampling: draw up to ``n`` completions, as many as the budget allows."""

from __future__ import annotations

from typing import Any

from archon.core import Completion, Engine, GenRequest, Prompt
from budgets import BudgetExhausted


async def sample(engine: Engine, prompt: Prompt, n: int, **params: Any) -> list[Completion]:
    """Up to ``n`` completions of ``prompt``; fewer when a budget refuses more.

    Asks for all ``n`` in one call (one batch, one shared prefill). When the engine's ledger refuses
    (:class:`~budgets.BudgetExhausted`), it halves the call and keeps drawing until even one more
    completion would break the budget, then returns what it has: never more cost than allowed.

    Args:
        engine: Any engine; a :class:`~archon.core.charging.ChargedEngine` enforces a budget.
        prompt: The prompt.
        n: Most completions wanted.
        **params: Further :class:`~archon.core.GenRequest` fields (``max_tokens``, ``temperature`` ...).
    """
    out: list[Completion] = []
    chunk = n
    while len(out) < n and chunk >= 1:
        want = min(chunk, n - len(out))
        seed = params.get("seed")
        request = GenRequest(prompt, n=want, **{**params, "seed": None if seed is None else seed + len(out)})
        try:
            result = await engine.generate(request)
        except BudgetExhausted:
            chunk = want // 2
            continue
        out.extend(result.completions)
    return out
