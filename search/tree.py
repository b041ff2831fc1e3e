"""What the tree searches share: the trace's tree, PRM scores of partial solutions, ranking, rollouts."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

from archon.core import Aggregation, Candidate, Context, Engine, GenRequest, State, aggregate
from budgets import BudgetExhausted
from search.steps import Partial
from verifiers.ops import majority, rank


@dataclass
class Tree:
    """A search tree for the trace: one row per node (its step, score, parent, kept, finished)."""

    nodes: list[dict[str, Any]] = field(default_factory=list)

    def add(self, partial: Partial, parent: int | None) -> int:
        """Record ``partial`` as a child of node ``parent`` (``None``: a child of the question); its id."""
        step = partial.steps[-1] if partial.steps else ""
        self.nodes.append(
            {"id": len(self.nodes), "parent": parent, "step": step, "score": None, "kept": False,
             "finished": partial.finished}
        )  # fmt: skip
        return len(self.nodes) - 1

    def scored(self, ids: list[int], scores: list[float]) -> None:
        """Store the scores of nodes ``ids``."""
        for i, s in zip(ids, scores, strict=True):
            self.nodes[i]["score"] = s

    def kept(self, ids: list[int]) -> None:
        """Mark nodes ``ids`` as kept (expanded further)."""
        for i in ids:
            self.nodes[i]["kept"] = True


async def prm_scores(
    ctx: Context, state: State, prm: str, partials: list[Partial], *, aggregation: Aggregation, model: str = ""
) -> list[float]:
    """The process verifier's step scores of each partial solution, aggregated."""
    verifier = ctx.process_verifier(prm)
    steps = await verifier.score_steps(state.problem, [x.candidate(model) for x in partials])
    return [aggregate(s, aggregation) for s in steps]


def best_first(scores: list[float], *, higher_is_better: bool) -> list[int]:
    """Indexes of ``scores``, best first (``nan`` last, ties in order)."""
    sign = -1.0 if higher_is_better else 1.0

    def key(j: int) -> tuple[bool, float]:
        missing = math.isnan(scores[j])
        return missing, 0.0 if missing else sign * scores[j]

    return sorted(range(len(scores)), key=key)


async def roll_out(
    engine: Engine,
    partials: list[Partial],
    *,
    max_tokens: int,
    temperature: float,
    answer_marker: str,
    seed: int | None,
) -> list[Partial]:
    """Each partial continued to its end (no stop at the step delimiter), in one call each.

    A partial whose call the budget refuses comes back as it was (unfinished).
    """

    async def one(i: int, x: Partial) -> Partial:
        request = GenRequest(list(x.ids), max_tokens=max_tokens, temperature=temperature,
                             seed=None if seed is None else seed + 7919 * (i + 1))  # fmt: skip
        try:
            c = (await engine.generate(request)).completions[0]
        except BudgetExhausted:
            return x
        finished = c.finish_reason != "length" or answer_marker in c.text
        return Partial(x.ids + tuple(c.token_ids), (*x.steps, c.text), finished, c.finish_reason)

    return list(await asyncio.gather(*(one(i, x) for i, x in enumerate(partials))))


def choose(cands: list[Candidate], prm: str, how: str, *, higher_is_better: bool) -> list[Candidate]:
    """Best first: by the PRM's score (``score``), or the PRM-weighted vote's winner first (``vote``)."""
    if how == "vote" and cands and all(prm in c.scores for c in cands):
        return majority(cands, weight=prm)
    return rank(cands, prm, higher_is_better=higher_is_better)
