"""``rank``: order a problem's candidates by a model's judgement and keep the top k (Archon's ranker).

Two modes:

- ``listwise``: one ask shows the model the first ``window`` candidates and asks for a full ranking
  (``Ranking: [2] > [1] > [3]``); the ranking must name every candidate exactly once.
- ``pairwise``: every pair of the first ``window`` candidates is compared (``Better: A`` or ``B``);
  with ``both_orders`` each pair is asked twice, A/B and B/A, so that the model's preference for a
  position cancels. A candidate's score is its share of the comparisons it took part in, and
  candidates are ordered by it (ties keep their order).

Malformed output, after ``retries``: with ``on_malformed: keep`` a listwise ranking leaves the
candidates in their input order, marked unranked in the trace, and a pairwise comparison counts as a
tie (half a win each); with ``drop`` a listwise ranking leaves no candidate and a pairwise comparison
is not counted. Candidates beyond the window follow the ranked ones, in order. Each ranked candidate
carries its rank (1 = best) in ``metadata["rank"]`` and, pairwise, its win share under
``scores[<node>]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from itertools import combinations
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from archon.core import Candidate, Context, State
from archon.core.registry import OPERATORS
from archon.llm.common import LLMParams, Policy, ask, gather_within_budget, numbered, question_of, user
from archon.llm.parsing import parse_choice, parse_ranking
from archon.llm.templates import RANK_LISTWISE, RANK_PAIRWISE
from archon.retrieval.ops import _template


class RankParams(LLMParams):
    """``rank``: order the first ``window`` candidates by the model's judgement and keep ``top_k``."""

    cost_growth: ClassVar[Mapping[str, float]] = {"window": 2.0}
    mode: Literal["listwise", "pairwise"] = "listwise"
    window: int = Field(8, ge=2, le=64, description="candidates ranked (the state's first ones)")
    top_k: int | None = Field(None, ge=1, description="candidates kept after ranking (null: all)")
    both_orders: bool = Field(True, description="pairwise: ask each pair as A/B and as B/A")
    on_malformed: Policy = "keep"
    max_tokens: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _template_fields(self) -> RankParams:
        if self.template is not None:
            try:
                if self.mode == "listwise":
                    _template(self.template, {"question", "candidates", "count"}, {"candidates"})
                else:
                    _template(self.template, {"question", "a", "b"}, {"a", "b"})
            except ValueError as exc:
                raise ValueError(f"template: {exc} (mode {self.mode})") from None
        return self


@OPERATORS.register("rank", RankParams)
async def rank(ctx: Context, state: State, p: RankParams) -> State:
    """Rank the first ``window`` candidates (listwise or pairwise), then keep ``top_k``."""
    window, rest = list(state.candidates[: p.window]), list(state.candidates[p.window :])
    if len(window) < 2:
        kept = [*window, *rest][: p.top_k]
        return state.with_candidates(kept, node=ctx.node, op="rank", mode=p.mode, ranked=len(window), malformed=[])
    if p.mode == "listwise":
        order, event = await _listwise(ctx, state, p, window)
    else:
        order, event = await _pairwise(ctx, state, p, window)
    out = [*order, *rest] if order is not None else []
    if p.top_k is not None:
        out = out[: p.top_k]
    return state.with_candidates(out, node=ctx.node, op="rank", mode=p.mode, ranked=len(window), **event)


async def _listwise(ctx: Context, state: State, p: RankParams, window: list[Candidate]) -> tuple[list | None, dict]:
    prompt = (p.template or RANK_LISTWISE).format(
        question=question_of(state), candidates=numbered(window), count=len(window)
    )
    asked, refused = await gather_within_budget(
        [ask(ctx, p, user(prompt), lambda t: parse_ranking(t, len(window)), seed=ctx.seed, what="ranking")]
    )
    if refused:
        return window, {"malformed": [], "policy": None, "stopped_by_budget": True}
    a = asked[0]
    assert a is not None
    if a.value is None:
        return (window if p.on_malformed == "keep" else None), {"malformed": a.malformed, "policy": p.on_malformed}
    ranked = [window[i] for i in a.value]
    ranked = [_ranked(c, r) for r, c in enumerate(ranked, 1)]
    return ranked, {"malformed": a.malformed, "policy": None, "order": [i + 1 for i in a.value]}


async def _pairwise(ctx: Context, state: State, p: RankParams, window: list[Candidate]) -> tuple[list, dict]:
    template = p.template or RANK_PAIRWISE
    question = question_of(state)
    asks: list[tuple[int, int]] = []  # (shown as A, shown as B)
    for i, j in combinations(range(len(window)), 2):
        asks.append((i, j))
        if p.both_orders:
            asks.append((j, i))
    calls = [
        ask(
            ctx,
            p,
            user(template.format(question=question, a=window[a].text.strip(), b=window[b].text.strip())),
            parse_choice,
            seed=ctx.seed + n,
            what=f"pair {a + 1}-{b + 1}",
        )
        for n, (a, b) in enumerate(asks)
    ]
    asked, refused = await gather_within_budget(calls)
    wins = [0.0] * len(window)
    games = [0] * len(window)
    malformed: list[dict] = []
    counted = 0
    for (a, b), res in zip(asks, asked, strict=True):
        if res is None:  # refused by the budget: not counted
            continue
        malformed.extend(res.malformed)
        if res.value is None:
            if p.on_malformed == "drop":
                continue
            wins[a] += 0.5
            wins[b] += 0.5
        else:
            wins[a if res.value == "A" else b] += 1.0
        games[a] += 1
        games[b] += 1
        counted += 1
    share = [w / g if g else 0.0 for w, g in zip(wins, games, strict=True)]
    order = sorted(range(len(window)), key=lambda i: -share[i])
    ranked = [_ranked(window[i].with_score(ctx.node, share[i]), r) for r, i in enumerate(order, 1)]
    event = {
        "malformed": malformed,
        "policy": p.on_malformed if any(r is not None and r.value is None for r in asked) else None,
        "comparisons": counted,
        "wins": [wins[i] for i in order],
        "order": [i + 1 for i in order],
    }
    if refused:
        event["stopped_by_budget"] = True
    return ranked, event


def _ranked(c: Candidate, rank: int) -> Candidate:
    return replace(c, metadata={**c.metadata, "rank": rank})
