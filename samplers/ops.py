"""The generation operators: ``sample``, and the composites ``best_of_n``, ``weighted_vote``, ``self_consistency``.

Each is written for ONE problem (``async def op(ctx, state, params) -> State``); the runtime runs all
problems concurrently and the engines batch their calls. ``best_of_n`` and ``self_consistency`` are
the chains ``sample → score → select`` (or a weighted vote) and ``sample → vote`` of the judgement
operators in :mod:`verifiers.ops`, as single operators; ``weighted_vote`` is ``best_of_n`` with
``mode: weighted_vote`` (a documented alias).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field

from archon.core import Aggregation, Candidate, Context, EngineRef, OperatorParams, State, VerifierRef
from archon.core.generation import MAX_N
from archon.core.registry import OPERATORS
from samplers.sample import sample as draw
from verifiers.answers import extract_answer
from verifiers.ops import ScoreParams, SelectParams, VoteParams, score, select, vote


class SampleParams(OperatorParams):
    """``sample``: ``n`` completions of the problem from an engine."""

    cost_growth: ClassVar[Mapping[str, float]] = {"n": 1.0}  # cost grows linearly with n (budget repair)
    engine: EngineRef
    n: int = Field(1, ge=1, le=MAX_N)
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    max_tokens: int = Field(256, ge=1)
    stop: list[str] = Field(default_factory=list)
    logprobs: bool = False


class BestOfNParams(SampleParams):
    """``best_of_n``: sample ``n``, score with ``verifier``, keep the best (or a weighted vote)."""

    verifier: VerifierRef
    aggregation: Aggregation = "min"
    mode: Literal["best", "weighted_vote"] = "best"


class WeightedVoteParams(SampleParams):
    """``weighted_vote``: sample ``n``, score with ``verifier``, vote with each answer's summed scores."""

    verifier: VerifierRef
    aggregation: Aggregation = "min"


class SelfConsistencyParams(SampleParams):
    """``self_consistency``: sample ``n`` and take the majority answer."""

    n: int = Field(8, ge=1, le=MAX_N)


@OPERATORS.register("sample", SampleParams)
async def sample(ctx: Context, state: State, p: SampleParams) -> State:
    """Sample ``n`` completions (fewer when the budget refuses more)."""
    engine = ctx.engine(p.engine)
    completions = await draw(
        engine,
        state.messages(),
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
