"""The first pipeline operators: sample, score, select, vote, best_of_n and self_consistency.

Each is written for ONE problem (``async def op(ctx, state, params) -> State``); the runtime runs all
problems concurrently and the engines batch their calls. ``best_of_n`` and ``self_consistency`` are
the chains ``sample → score → select`` (or a weighted vote) and ``sample → vote`` as single operators.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from archon.core import Aggregation, Candidate, State, aggregate
from archon.core.registry import OPERATORS
from archon.core.state import Context
from samplers.sample import sample as draw
from verifiers.answers import extract_answer, normalize_answer


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SampleParams(_Params):
    """``sample``: ``n`` completions of the problem from an engine."""

    cost_knobs: ClassVar[tuple[str, ...]] = ("n",)  # params the cost grows with (the tuner's budget repair)
    engine: str
    n: int = Field(1, ge=1)
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    max_tokens: int = Field(256, ge=1)
    stop: list[str] = Field(default_factory=list)
    logprobs: bool = False


class ScoreParams(_Params):
    """``score``: apply a verifier to every candidate (a process verifier's steps are aggregated)."""

    verifier: str
    aggregation: Aggregation = "min"


class SelectParams(_Params):
    """``select``: keep the ``k`` best candidates by a verifier's score."""

    by: str
    k: int = Field(1, ge=1)


class VoteParams(_Params):
    """``vote``: majority over normalised final answers, optionally weighted by a verifier's score."""

    weight: str | None = None


class BestOfNParams(SampleParams):
    """``best_of_n``: sample ``n``, score with ``verifier``, keep the best (or a weighted vote)."""

    verifier: str
    aggregation: Aggregation = "min"
    mode: Literal["best", "weighted_vote"] = "best"


class WeightedVoteParams(SampleParams):
    """``weighted_vote``: sample ``n``, score with ``verifier``, vote with each answer's summed scores."""

    verifier: str
    aggregation: Aggregation = "min"


class SelfConsistencyParams(SampleParams):
    """``self_consistency``: sample ``n`` and take the majority answer."""

    n: int = Field(8, ge=1)


@OPERATORS.register("sample", SampleParams)
async def sample(ctx: Context, state: State, p: SampleParams) -> State:
    """Sample ``n`` completions (fewer when the budget refuses more)."""
    engine = ctx.engine(p.engine)
    completions = await draw(
        engine,
        state.problem.messages(),
        p.n,
        temperature=p.temperature,
        top_p=p.top_p,
        top_k=p.top_k,
        max_tokens=p.max_tokens,
        stop=tuple(p.stop),
        logprobs=p.logprobs,
        seed=ctx.seed,
    )
    new = [
        Candidate(
            c.text,
            answer=extract_answer(c.text),
            logprobs=c.logprobs,
            entropies=c.entropies,
            model=p.engine,
            metadata={"finish_reason": c.finish_reason, "tokens": c.num_tokens},
        )
        for c in completions
    ]
    return state.with_candidates([*state.candidates, *new], node=ctx.node, op="sample", added=len(new))


@OPERATORS.register("score", ScoreParams)
async def score(ctx: Context, state: State, p: ScoreParams) -> State:
    """Store a verifier's score on every candidate."""
    v = ctx.verifier(p.verifier)
    cands = list(state.candidates)
    if not cands:
        return state
    if _is_process(v):
        values = [aggregate(s, p.aggregation) for s in await v.score_steps(state.problem, cands)]
    else:
        values = await v.score(state.problem, cands)
    scored = [c.with_score(p.verifier, s) for c, s in zip(cands, values, strict=True)]
    return state.with_candidates(scored, node=ctx.node, op="score", verifier=p.verifier)


@OPERATORS.register("select", SelectParams)
async def select(ctx: Context, state: State, p: SelectParams) -> State:
    """Keep the ``k`` best candidates by the verifier ``by`` (its direction respected)."""
    higher = ctx.verifier(p.by).higher_is_better
    ranked = sorted(
        state.candidates,
        key=lambda c: _key(c.scores.get(p.by), higher),
    )
    return state.with_candidates(ranked[: p.k], node=ctx.node, op="select", kept=min(p.k, len(ranked)))


@OPERATORS.register("vote", VoteParams)
async def vote(ctx: Context, state: State, p: VoteParams) -> State:
    """The candidate of the most voted normalised answer first (its share stored as ``vote``)."""
    winner = majority(state.candidates, weight=p.weight)
    return state.with_candidates(winner, node=ctx.node, op="vote")


@OPERATORS.register("best_of_n", BestOfNParams)
async def best_of_n(ctx: Context, state: State, p: BestOfNParams) -> State:
    """Sample ``n``, score them, keep the best one (``mode: weighted_vote``: sum scores per answer)."""
    sp = SampleParams(**p.model_dump(include=set(SampleParams.model_fields)))
    state = await sample(ctx, state, sp)
    state = await score(ctx, state, ScoreParams(verifier=p.verifier, aggregation=p.aggregation))
    if p.mode == "weighted_vote":
        return await vote(ctx, state, VoteParams(weight=p.verifier))
    return await select(ctx, state, SelectParams(by=p.verifier, k=1))


@OPERATORS.register("weighted_vote", WeightedVoteParams)
async def weighted_vote(ctx: Context, state: State, p: WeightedVoteParams) -> State:
    """Sample ``n``, score them, take the answer with the largest summed score (``best_of_n``'s vote mode)."""
    return await best_of_n(ctx, state, BestOfNParams(**p.model_dump(), mode="weighted_vote"))


@OPERATORS.register("self_consistency", SelfConsistencyParams)
async def self_consistency(ctx: Context, state: State, p: SelfConsistencyParams) -> State:
    """Sample ``n`` and take the majority answer."""
    sp = SampleParams(**p.model_dump(include=set(SampleParams.model_fields)))
    return await vote(ctx, await sample(ctx, state, sp), VoteParams())


def majority(candidates: tuple[Candidate, ...] | list[Candidate], *, weight: str | None = None) -> list[Candidate]:
    """Candidates reordered so that one holding the winning answer comes first, with ``scores['vote']`` its share.

    Votes go to normalised answers (candidates without an answer do not vote); with ``weight``, each
    vote counts the candidate's score under that name. Ties go to the answer seen first.
    """
    tally: dict[str, float] = defaultdict(float)
    first: dict[str, int] = {}
    for i, c in enumerate(candidates):
        if c.answer is None:
            continue
        key = normalize_answer(c.answer)
        tally[key] += float(c.scores.get(weight, 0.0)) if weight else 1.0
        first.setdefault(key, i)
    if not tally:
        return list(candidates)
    total = sum(tally.values()) or 1.0
    best = max(tally, key=lambda k: (tally[k], -first[k]))
    winner = candidates[first[best]].with_score("vote", tally[best] / total)
    rest = [c for i, c in enumerate(candidates) if i != first[best]]
    return [winner, *rest]


def _is_process(verifier: Any) -> bool:
    """Whether a verifier scores steps (then ``score`` aggregates them as the node asks)."""
    kind = getattr(getattr(verifier, "config", None), "kind", None)
    return callable(getattr(verifier, "score_steps", None)) and kind in (None, "process")


def _key(value: Any, higher: bool) -> tuple[int, float]:
    if value is None or value != value:  # missing or nan: last
        return (1, 0.0)
    return (0, -float(value) if higher else float(value))
