"""Anytime operators under a budget: do the work that fits, keep the best so far when the budget refuses.

A charged engine or verifier raises :class:`~budgets.BudgetExhausted` *before* a call that would
break a limit, so nothing is spent past it. An operator that loops wraps its loop in
:class:`within_budget` and returns what it has when the budget stops it; one that draws many items
(samples, expansions) draws them with :func:`draw_within_budget`, which shrinks a refused call until
even one more item would not fit.

Example:
    >>> import asyncio
    >>> from budgets import BudgetExhausted
    >>> async def draw(first, count):  # a budget that allows 5 items in all
    ...     if first + count > 5:
    ...         raise BudgetExhausted("over the flops limit")
    ...     return list(range(first, first + count))
    >>> asyncio.run(draw_within_budget(8, draw))
    [0, 1, 2, 3, 4]
    >>> async def loop():
    ...     best = None
    ...     with within_budget() as budget:
    ...         for i in range(10):
    ...             best = (await draw(i, 1))[0]
    ...     return best, budget.exhausted
    >>> asyncio.run(loop())
    (4, True)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TypeVar

from budgets import BudgetExhausted

T = TypeVar("T")


class within_budget:
    """A context manager that ends its block quietly when the budget refuses a call.

    ``exhausted`` tells afterwards whether the budget stopped the block (then record it in the trace);
    every other exception propagates.
    """

    exhausted: bool
    error: BudgetExhausted | None

    def __init__(self) -> None:
        self.exhausted = False
        self.error = None

    def __enter__(self) -> within_budget:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if isinstance(exc, BudgetExhausted):
            self.exhausted, self.error = True, exc
            return True
        return False


async def draw_within_budget(n: int, draw: Callable[[int, int], Awaitable[Sequence[T]]]) -> list[T]:
    """Up to ``n`` items from ``draw(first, count)`` calls, as many as the budget allows.

    Asks for all ``n`` at once (one batch); when the budget refuses, asks for half as many, and keeps
    going until even one more item is refused. ``first`` is how many items are already drawn, so that
    item ``i`` can be drawn the same way whatever the call sizes.
    """
    out: list[T] = []
    chunk = n
    while len(out) < n and chunk >= 1:
        want = min(chunk, n - len(out))
        try:
            got = await draw(len(out), want)
        except BudgetExhausted:
            chunk = want // 2
            continue
        out.extend(got)
        if not got:
            break
    return out
