"""What the tree searches share: the trace's tree, PRM scores of partial solutions, ranking, rollouts."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from archon.core import (
    Aggregation,
    Candidate,
    Context,
    Engine,
    EngineRef,
    GenRequest,
    OperatorParams,
    State,
    VerifierRef,
    aggregate,
)
from archon.core.anytime import within_budget
from budgets import BudgetExhausted
from search.steps import ANSWER_MARKER, DELIMITER, Partial
from verifiers.ops import majority, rank


class TreeSearchParams(OperatorParams):
    """What every PRM-guided tree search takes: the policy, the process verifier, how steps are cut and scored."""

    engine: EngineRef
    prm: VerifierRef = Field(description="a process verifier (reward model or step checker)")
    aggregation: Aggregation = Field("min", description="step scores to one: last, min, prod or mean")
    choose: Literal["score", "vote"] = Field("score", description="the best score, or the PRM-weighted vote")
    temperature: float = Field(0.8, ge=0)
    max_step_tokens: int = Field(64, ge=1)
    max_tokens: int = Field(256, ge=1, description="most tokens of a rollout to the end")
    delimiter: str = Field(DELIMITER, min_length=1)
    answer_marker: str = Field(ANSWER_MARKER, min_length=1)

    def step_options(self) -> dict[str, object]:
        """The keyword arguments of :func:`~search.steps.extend` that these params fix."""
        return {
            "delimiter": self.delimiter,
            "answer_marker": self.answer_marker,
            "max_step_tokens": self.max_step_tokens,
        }


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


async def score_finished(
    ctx: Context,
    state: State,
    p: TreeSearchParams,
    tree: Tree,
    finished: list[tuple[Partial, int]],
    *,
    exhausted: bool,
    **metadata: object,
) -> list[Candidate]:
    """The finished solutions (and their tree rows) as candidates, scored by the PRM, best first.

    The scores go to the tree too. When the budget ran out (``exhausted``), or refuses this last call,
    the candidates come unscored (in the order found).
    """
    cands = [x.candidate(p.engine, **metadata) for x, _ in finished]
    if cands and not exhausted:
        with within_budget():
            scores = await prm_scores(ctx, state, p.prm, [x for x, _ in finished], aggregation=p.aggregation)
            tree.scored([i for _, i in finished], scores)
            cands = [c.with_score(p.prm, s) for c, s in zip(cands, scores, strict=True)]
    return choose(cands, p.prm, p.choose, higher_is_better=ctx.process_verifier(p.prm).higher_is_better)


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
