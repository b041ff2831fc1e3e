r"""Beam search with a process reward model (Snell et al.; search-and-learn), for one problem.

``n`` beams of width ``M``: each round extends every live beam by one step, scores the partial
solutions with the PRM (its step scores aggregated: ``last``, ``min``, ``prod`` or ``mean``), keeps the
best ``n / M`` and expands each ``M`` times. A beam that writes the final answer is set aside as
finished, and the beams still searching shrink by as many (search-and-learn's beams did not, so it
returned more completions than asked: that breaks comparisons at equal budgets). After ``max_steps``
rounds the beams still unfinished are rolled out to their end in one call each. So the result is
exactly ``n`` finished solutions, best first (by score, or by the PRM-weighted vote of their answers),
unless the budget ran out first: then the finished ones so far (possibly none), never an unfinished
one. The tree goes to the trace: every node's step, score, parent, and whether it was kept and
finished.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from archon.core import Context, State
from archon.core.anytime import within_budget
from archon.core.generation import MAX_N
from archon.core.registry import OPERATORS
from search.steps import Partial, extend, look_ahead, root
from search.tree import Tree, TreeSearchParams, best_first, prm_scores, roll_out, score_finished


class BeamSearchParams(TreeSearchParams):
    """Beam search: ``n`` beams of width ``width`` guided by the process verifier ``prm``."""

    cost_growth: ClassVar = {"n": 1.0}

    n: int = Field(8, ge=1, le=MAX_N, description="beams, and the finished solutions returned")
    width: int = Field(4, ge=1, description="M: keep n/M beams each round, expand each M times")
    max_steps: int = Field(12, ge=1, description="rounds before the unfinished beams are rolled out")
    lookahead: int = Field(0, ge=0, le=32, description="greedy steps rolled out before a beam is scored (0: none)")

    @model_validator(mode="after")
    def _width_divides_n(self) -> BeamSearchParams:
        if self.n % self.width:
            raise ValueError(f"n ({self.n}) must be a multiple of width ({self.width})")
        return self


@OPERATORS.register("beam_search", BeamSearchParams)
async def beam_search(ctx: Context, state: State, p: BeamSearchParams) -> State:
    """Beam search over steps with a PRM; ``n`` finished solutions, the chosen one first."""
    engine = ctx.engine(p.engine)
    step = p.step_options()
    tree = Tree()
    higher = ctx.process_verifier(p.prm).higher_is_better
    start = root(engine, state.messages())
    finished: list[tuple[Partial, int]] = []
    live: list[tuple[Partial, int]] = []
    rounds = 0
    with within_budget() as budget:
        first = (await extend(engine, [start], p.n, temperature=p.temperature, seed=ctx.seed, **step))[0]
        live = [(x, tree.add(x, None)) for x in first]
        while live and rounds < p.max_steps:
            rounds += 1
            finished += [(x, i) for x, i in live if x.finished]
            live = [(x, i) for x, i in live if not x.finished]
            wanted = p.n - len(finished)  # beams still to search: finished ones leave the pool
            if not live or wanted <= 0:
                break
            judged = [x for x, _ in live]
            if p.lookahead:
                judged = await look_ahead(engine, judged, p.lookahead, **step)
                for (x, i), y in zip(live, judged, strict=True):
                    tree.nodes[i]["lookahead"] = "".join(y.steps[len(x.steps) :])
            scores = await prm_scores(ctx, state, p.prm, judged, aggregation=p.aggregation)
            tree.scored([i for _, i in live], scores)
            keep = max(1, -(-wanted // p.width))  # ceil(wanted / M) beams, expanded to `wanted` in all
            ranked = best_first(scores, higher_is_better=higher)[:keep]
            counts = [wanted // keep + (1 if r < wanted % keep else 0) for r in range(len(ranked))]
            parents = [live[j] for j in ranked]
            tree.kept([i for _, i in parents])
            seed = None if ctx.seed is None else ctx.seed + 1000 * rounds
            children = await extend(
                engine, [x for x, _ in parents], counts, temperature=p.temperature, seed=seed, **step
            )
            live = [(c, tree.add(c, i)) for (_, i), kids in zip(parents, children, strict=True) for c in kids]
        finished += [(x, i) for x, i in live if x.finished]
        live = [(x, i) for x, i in live if not x.finished]
        live = live[: max(0, p.n - len(finished))]
        rolled = await roll_out(
            engine, [x for x, _ in live], max_tokens=p.max_tokens, temperature=p.temperature,
            answer_marker=p.answer_marker, seed=ctx.seed,
        )  # fmt: skip
        finished += [(x, tree.add(x, i)) for x, (_, i) in zip(rolled, live, strict=False) if x.finished]
    finished = finished[: p.n]
    cands = await score_finished(ctx, state, p, tree, finished, exhausted=budget.exhausted, rounds=rounds)
    event = {"rounds": rounds, "finished": len(cands), "tree": tree.nodes, "lookahead": p.lookahead}
    if budget.exhausted:
        event["stopped_by_budget"] = True
    return state.with_candidates(cands, node=ctx.node, op="beam_search", **event)
