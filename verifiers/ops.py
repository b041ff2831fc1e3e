"""The judgement operators: ``score`` candidates with a verifier, ``select`` the best, ``vote`` on answers.

Each is written for ONE problem (``async def op(ctx, state, params) -> State``). A process verifier's
step scores are reduced by the node's ``aggregation``; an outcome verifier's scores are used as they are.
``select`` respects the verifier's direction (``higher_is_better``); ``vote`` is plain majority over
normalised answers or, with ``weight``, a vote weighted by a verifier's scores (one :func:`majority`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from archon.core import (
    Aggregation,
    Candidate,
    Context,
    OperatorParams,
    State,
    VerifierRef,
    aggregate,
    within_budget,
)
from archon.core.metrics import tally
from archon.core.registry import OPERATORS
from verifiers.answers import normalize_answer


class ScoreParams(OperatorParams):
    """``score``: apply a verifier to every candidate (a process verifier's steps are aggregated)."""

    verifier: VerifierRef
    aggregation: Aggregation = "min"


class SelectParams(OperatorParams):
    """``select``: keep the ``k`` best candidates by a verifier's score."""

    by: VerifierRef
    k: int = Field(1, ge=1)


class VoteParams(OperatorParams):
    """``vote``: majority over normalised final answers, optionally weighted by a verifier's score."""

    weight: VerifierRef | None = None


@OPERATORS.register("score", ScoreParams)
async def score(ctx: Context, state: State, p: ScoreParams) -> State:
    """Store a verifier's score on every candidate."""
    cands = list(state.candidates)
    if not cands:
        return state
    v = ctx.verifier(p.verifier)
    with within_budget() as budget:
        if v.kind == "process":
            values = [aggregate(s, p.aggregation) for s in await v.score_steps(state.problem, cands)]
        else:
            values = await v.score(state.problem, cands)
    if budget.exhausted:  # anytime: the candidates go on unscored (select ranks them last, in order)
        return state.with_candidates(cands, node=ctx.node, op="score", verifier=p.verifier, stopped_by_budget=True)
    scored = [c.with_score(p.verifier, s) for c, s in zip(cands, values, strict=True)]
    return state.with_candidates(scored, node=ctx.node, op="score", verifier=p.verifier)


@OPERATORS.register("select", SelectParams)
async def select(ctx: Context, state: State, p: SelectParams) -> State:
    """Keep the ``k`` best candidates by the verifier ``by`` (its direction respected; unscored last)."""
    ranked = rank(state.candidates, p.by, higher_is_better=ctx.verifier(p.by).higher_is_better)
    return state.with_candidates(ranked[: p.k], node=ctx.node, op="select", kept=min(p.k, len(ranked)))


@OPERATORS.register("vote", VoteParams)
async def vote(ctx: Context, state: State, p: VoteParams) -> State:
    """The candidate of the most voted normalised answer first (its share stored as ``vote``)."""
    winner = majority(state.candidates, weight=p.weight)
    return state.with_candidates(winner, node=ctx.node, op="vote")


def rank(candidates: Sequence[Candidate], by: str, *, higher_is_better: bool) -> list[Candidate]:
    """Candidates best first by their score under ``by``; missing and ``nan`` scores last, ties in order.

    Example:
        >>> cs = [Candidate("a", scores={"v": 0.2}), Candidate("b"), Candidate("c", scores={"v": 0.9})]
        >>> [c.text for c in rank(cs, "v", higher_is_better=True)]
        ['c', 'a', 'b']
        >>> [c.text for c in rank(cs, "v", higher_is_better=False)]
        ['a', 'c', 'b']
    """
    return sorted(candidates, key=lambda c: _key(c.scores.get(by), higher_is_better))


def majority(candidates: Sequence[Candidate], *, weight: str | None = None) -> list[Candidate]:
    """Candidates reordered so that one holding the winning answer comes first, with ``scores['vote']`` its share.

    Votes go to normalised answers (candidates without an answer do not vote); with ``weight``, each
    vote counts the candidate's score under that name (missing: 0, ``nan``: no vote). Ties go to the
    answer seen first (:func:`archon.core.metrics.tally`).

    Example:
        >>> cs = [Candidate("x", answer="1"), Candidate("y", answer="2"), Candidate("z", answer="2.0")]
        >>> [(c.text, round(c.scores.get("vote", 0), 2)) for c in majority(cs)]
        [('y', 0.67), ('x', 0), ('z', 0)]
    """
    keys = [None if c.answer is None else normalize_answer(c.answer) for c in candidates]
    weights = [float(c.scores.get(weight, 0.0)) for c in candidates] if weight else None
    votes = tally(keys, weights)
    if not votes:
        return list(candidates)
    total = sum(votes.values()) or 1.0
    top = max(votes.values())
    best = next(k for k, v in votes.items() if v == top)
    first = keys.index(best)
    winner = candidates[first].with_score("vote", votes[best] / total)
    return [winner, *(c for i, c in enumerate(candidates) if i != first)]


def _key(value: Any, higher: bool) -> tuple[int, float]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (1, 0.0)
    return (0, -float(value) if higher else float(value))
