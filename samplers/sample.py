"""Anytime sampling: draw up to ``n`` completions, as many as the budget allows."""

from __future__ import annotations

from typing import Any

from archon.core import Completion, Engine, GenRequest, Prompt
from archon.core.anytime import draw_within_budget


async def sample(engine: Engine, prompt: Prompt, n: int, **params: Any) -> list[Completion]:
    """Up to ``n`` completions of ``prompt``; fewer when a budget refuses more.

    Asks for all ``n`` in one call (one batch, one shared prefill). When the engine's ledger refuses
    (:class:`~budgets.BudgetExhausted`), it halves the call and keeps drawing until even one more
    completion would break the budget, then returns what it has: never more cost than allowed
    (:func:`~archon.core.anytime.draw_within_budget`). Sample ``i`` gets the seed ``seed + i``.

    Args:
        engine: Any engine; a :class:`~archon.core.charging.ChargedEngine` enforces a budget.
        prompt: The prompt.
        n: Most completions wanted.
        **params: Further :class:`~archon.core.GenRequest` fields (``max_tokens``, ``temperature`` ...).
    """
    seed = params.get("seed")

    async def draw(first: int, count: int) -> list[Completion]:
        request = GenRequest(prompt, n=count, **{**params, "seed": None if seed is None else seed + first})
        return list((await engine.generate(request)).completions)

    return await draw_within_budget(n, draw)
