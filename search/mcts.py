r"""Monte Carlo tree search over steps with a process verifier, for one problem.

Each of ``iterations`` rounds walks down from the question by UCT — the child maximising
``W/N + c·sqrt(ln N_parent / N)``, an unvisited child first — to a node not yet expanded, samples its
``children`` next steps, values each new child, and backs the values up the path (``N += 1``,
``W += v``). A child's value is the PRM's aggregated score of its partial solution (``value: prm``),
or of a rollout of it to the end (``value: rollout``: the rollout is kept as a finished solution). A
finished node is a leaf: walking into it backs its value up again. At the end the finished solutions
found (finished nodes and rollouts) are ranked by their PRM score; when fewer than ``returns`` were
found, the most valuable unfinished nodes are rolled out to make up the number. The result is exactly
``returns`` finished solutions, best first — fewer only when the budget ran out, never an unfinished
one. The tree, with visits and values, goes to the trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from pydantic import Field

from archon.core import Context, State
from archon.core.anytime import within_budget
from archon.core.registry import OPERATORS
from search.steps import Partial, extend, root
from search.tree import Tree, TreeSearchParams, prm_scores, roll_out, score_finished


class MCTSParams(TreeSearchParams):
    """MCTS: ``iterations`` expansions of ``children`` steps each, chosen by UCT, valued by the PRM."""

    cost_growth: ClassVar = {"iterations": 1.0, "children": 1.0}

    iterations: int = Field(8, ge=1, le=4096, description="nodes expanded (the search's budget)")
    children: int = Field(3, ge=1, le=64, description="steps sampled when a node is expanded")
    exploration: float = Field(1.0, ge=0, description="c of UCT: higher explores more")
    value: Literal["prm", "rollout"] = Field("prm", description="a child's value: its PRM score, or a rollout's")
    returns: int = Field(4, ge=1, le=256, description="finished solutions returned")


@dataclass
class _Node:
    partial: Partial
    row: int | None  # its row in the trace's tree (None: the question)
    visits: int = 0
    total: float = 0.0
    children: list[_Node] = field(default_factory=list)
    parent: _Node | None = None

    def uct(self, c: float) -> float:
        if not self.visits:
            return math.inf
        assert self.parent is not None
        return self.total / self.visits + c * math.sqrt(math.log(max(1, self.parent.visits)) / self.visits)


def _backup(node: _Node | None, value: float) -> None:
    while node is not None:
        node.visits += 1
        node.total += value
        node = node.parent


@OPERATORS.register("mcts", MCTSParams)
async def mcts(ctx: Context, state: State, p: MCTSParams) -> State:
    """MCTS over steps with a PRM; ``returns`` finished solutions, the chosen one first."""
    engine = ctx.engine(p.engine)
    step = p.step_options()
    higher = ctx.process_verifier(p.prm).higher_is_better
    sign = 1.0 if higher else -1.0
    tree = Tree()
    top = _Node(root(engine, state.messages()), None)
    found: list[tuple[Partial, int]] = []  # finished solutions and the tree rows they hang from
    expanded = 0
    rollouts = {"max_tokens": p.max_tokens, "temperature": p.temperature, "answer_marker": p.answer_marker}

    async def value_of(kids: list[_Node], seed: int) -> list[float]:
        partials = [k.partial for k in kids]
        if p.value == "rollout":
            unfinished = [i for i, x in enumerate(partials) if not x.finished]
            rolled = await roll_out(engine, [partials[i] for i in unfinished], seed=seed, **rollouts)
            for i, x in zip(unfinished, rolled, strict=True):
                partials[i] = x
                if x.finished:
                    found.append((x, tree.add(x, kids[i].row)))
        scores = await prm_scores(ctx, state, p.prm, partials, aggregation=p.aggregation)
        return [sign * (0.0 if math.isnan(s) else s) for s in scores]

    with within_budget() as budget:
        while expanded < p.iterations:
            node = top
            while node.children:
                node = max(node.children, key=lambda k: k.uct(p.exploration))
            if node.partial.finished:  # a leaf: its value again
                _backup(node, node.total / max(1, node.visits))
                expanded += 1
                continue
            seed = (ctx.seed or 0) + 1000 * expanded
            grown = (await extend(engine, [node.partial], p.children, temperature=p.temperature, seed=seed, **step))[0]
            expanded += 1
            if not grown:
                break  # the budget refused the step
            kids = [_Node(x, tree.add(x, node.row), parent=node) for x in grown]
            node.children = kids
            if node.row is not None:
                tree.kept([node.row])
            values = await value_of(kids, seed)
            for k, v in zip(kids, values, strict=True):
                tree.nodes[k.row]["score"] = sign * v  # type: ignore[index]
                _backup(k, v)
                if k.partial.finished:
                    found.append((k.partial, k.row))  # type: ignore[arg-type]
        if len(found) < p.returns:  # make up the number from the most valuable unfinished nodes
            leaves: list[_Node] = []
            stack = [top]
            while stack:
                n = stack.pop()
                stack.extend(n.children)
                if n.row is not None and not n.partial.finished and not n.children:
                    leaves.append(n)
            leaves.sort(key=lambda n: -(n.total / max(1, n.visits)))
            short = leaves[: p.returns - len(found)]
            rolled = await roll_out(engine, [n.partial for n in short], seed=(ctx.seed or 0) + 7, **rollouts)
            found += [(x, tree.add(x, n.row)) for x, n in zip(rolled, short, strict=True) if x.finished]
    cands = await score_finished(ctx, state, p, tree, found, exhausted=budget.exhausted, iterations=expanded)
    cands = cands[: p.returns]
    visits = {}
    stack = [top]
    while stack:
        n = stack.pop()
        stack.extend(n.children)
        if n.row is not None:
            visits[n.row] = (n.visits, n.total)
    for row, (v, w) in visits.items():
        tree.nodes[row]["visits"], tree.nodes[row]["value"] = v, (w / v if v else None)
    event: dict[str, object] = {"iterations": expanded, "finished": len(cands), "tree": tree.nodes}
    if budget.exhausted:
        event["stopped_by_budget"] = True
    return state.with_candidates(cands, node=ctx.node, op="mcts", **event)
