r"""Diverse verifier tree search (search-and-learn's DVTS), for one problem.

``n / M`` independent subtrees (``M`` = ``width``), each greedy on the PRM: every round each live
subtree extends its one partial solution ``M`` ways, the PRM scores the children (all subtrees' in one
call), and each subtree keeps its best child. A subtree whose best child has written the final answer
is done. Subtrees never compete with each other, so the search keeps ``n / M`` different lines where
beam search can collapse onto one; at large ``n`` search-and-learn found it catching up with or passing
beam search. After ``max_steps`` rounds the subtrees still unfinished are rolled out to their end. The
result is exactly ``n / M`` finished solutions (one per subtree), best first by the PRM (or with the
PRM-weighted vote's winner first) — fewer only when the budget ran out, never an unfinished one. The
tree goes to the trace.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from archon.core import Context, State
from archon.core.anytime import within_budget
from archon.core.generation import MAX_N
from archon.core.registry import OPERATORS
from search.steps import Partial, extend, root
from search.tree import Tree, TreeSearchParams, best_first, prm_scores, roll_out, score_finished


class DVTSParams(TreeSearchParams):
    """DVTS: ``n / width`` subtrees, each extended ``width`` ways a round and greedy on the PRM."""

    cost_growth: ClassVar = {"n": 1.0}

    n: int = Field(16, ge=1, le=MAX_N, description="steps sampled per round over all subtrees")
    width: int = Field(4, ge=1, description="M: children per subtree and round; n / M subtrees")
    max_steps: int = Field(12, ge=1, description="rounds before the unfinished subtrees are rolled out")

    @model_validator(mode="after")
    def _width_divides_n(self) -> DVTSParams:
        if self.n % self.width:
            raise ValueError(f"n ({self.n}) must be a multiple of width ({self.width})")
        return self


@OPERATORS.register("dvts", DVTSParams)
async def dvts(ctx: Context, state: State, p: DVTSParams) -> State:
    """DVTS over steps with a PRM; one finished solution per subtree, the chosen one first."""
    engine = ctx.engine(p.engine)
    step = p.step_options()
    tree, higher = Tree(), ctx.process_verifier(p.prm).higher_is_better
    subtrees = p.n // p.width
    start = root(engine, state.messages())
    live: list[tuple[Partial, int | None]] = [(start, None)] * subtrees  # each subtree's current partial
    done: list[tuple[Partial, int]] = []
    rounds = 0
    with within_budget() as budget:
        while live and rounds < p.max_steps:
            seed = None if ctx.seed is None else ctx.seed + 1000 * rounds
            children = await extend(engine, [x for x, _ in live], p.width, temperature=p.temperature, seed=seed, **step)
            rounds += 1
            kids = [[(c, tree.add(c, i)) for c in cs] for (_, i), cs in zip(live, children, strict=True)]
            flat = [k for ks in kids for k in ks]
            if not flat:
                break
            scores = await prm_scores(ctx, state, p.prm, [x for x, _ in flat], aggregation=p.aggregation)
            tree.scored([i for _, i in flat], scores)
            by_node = dict(zip((i for _, i in flat), scores, strict=True))
            nxt: list[tuple[Partial, int | None]] = []
            for ks in kids:
                if not ks:  # the budget refused this subtree's step: it stays where it was, unfinished
                    continue
                best = ks[best_first([by_node[i] for _, i in ks], higher_is_better=higher)[0]]
                tree.kept([best[1]])
                (done if best[0].finished else nxt).append(best)
            live = nxt
        unfinished = [(x, i) for x, i in live if i is not None]
        rolled = await roll_out(
            engine, [x for x, _ in unfinished], max_tokens=p.max_tokens, temperature=p.temperature,
            answer_marker=p.answer_marker, seed=ctx.seed,
        )  # fmt: skip
        done += [(x, tree.add(x, i)) for x, (_, i) in zip(rolled, unfinished, strict=True) if x.finished]
    cands = await score_finished(ctx, state, p, tree, done, exhausted=budget.exhausted, rounds=rounds)
    event = {"rounds": rounds, "subtrees": subtrees, "finished": len(cands), "tree": tree.nodes}
    if budget.exhausted:
        event["stopped_by_budget"] = True
    return state.with_candidates(cands, node=ctx.node, op="dvts", **event)
