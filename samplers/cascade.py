"""``cascade``: answer with a small model, and escalate to a large one only when the answer looks unsure.

A problem-level model cascade (FrugalGPT-style): the ``small`` engine draws ``n`` samples and votes;
a confidence signal of that answer decides whether it stands or the ``large`` engine answers instead
(``n_large`` samples, voted, or the best by the verifier). The signals:

- ``agreement``: the winning answer's share of the small model's votes (self-consistency);
- ``certainty``: the geometric-mean token probability of the winning sample, ``exp(mean logprob)``,
  from the small model's own log-probabilities (self-certainty);
- ``verifier``: the best score a verifier gives the small model's samples (a PRM's aggregated step
  score, an ORM's) — it must score in [0, 1], higher better, as the embedded reward models do.

``threshold`` is the confidence below which the problem escalates: 0 never escalates (the small model
alone), anything above 1 always does (the large model alone, after the small model's samples). Every
sample of both models is charged; the trace says the confidence, whether the problem escalated and
which engine answered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from archon.core import Context, EngineRef, OperatorParams, State, VerifierRef
from archon.core.generation import MAX_N
from archon.core.registry import OPERATORS
from samplers.ops import SampleParams, sample
from verifiers.ops import ScoreParams, SelectParams, VoteParams, score, select, vote

Signal = Literal["agreement", "certainty", "verifier"]


class CascadeParams(OperatorParams):
    """``cascade``: ``n`` samples of ``small``; below ``threshold`` confidence, ``n_large`` of ``large``."""

    cost_growth: ClassVar[Mapping[str, float]] = {"n": 1.0}
    small: EngineRef
    large: EngineRef
    n: int = Field(4, ge=1, le=MAX_N, description="samples of the small model")
    n_large: int = Field(1, ge=1, le=MAX_N, description="samples of the large model when escalated")
    signal: Signal = Field("agreement", description="agreement, certainty or verifier")
    verifier: VerifierRef | None = Field(None, description="scores the small model's samples (signal: verifier)")
    threshold: float = Field(0.75, ge=0, description="escalate when the confidence is below it")
    temperature: float = Field(0.7, ge=0)
    max_tokens: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _verifier_for_its_signal(self) -> CascadeParams:
        if self.signal == "verifier" and self.verifier is None:
            raise ValueError("signal 'verifier' needs verifier (the verifier whose score is the confidence)")
        return self


def confidence(state: State, p: CascadeParams) -> float:
    """The small model's confidence in its answer (``state``: its samples, the winner first)."""
    if not state.candidates or state.candidates[0].answer is None:
        return 0.0
    top = state.candidates[0]
    if p.signal == "agreement":
        return float(top.scores.get("vote", 0.0))
    if p.signal == "certainty":
        lp = top.logprobs or ()
        return math.exp(sum(lp) / len(lp)) if lp else 0.0
    value = top.scores.get(str(p.verifier), float("nan"))
    return 0.0 if math.isnan(value) else float(value)


async def _answer(ctx: Context, state: State, p: CascadeParams, engine: str, n: int) -> State:
    drawn = await sample(ctx, state, SampleParams(
        engine=engine, n=n, temperature=p.temperature if n > 1 else 0.0, max_tokens=p.max_tokens,
        logprobs=p.signal == "certainty",
    ))  # fmt: skip
    if p.signal == "verifier" and p.verifier is not None:
        drawn = await score(ctx, drawn, ScoreParams(verifier=p.verifier))
        return await select(ctx, drawn, SelectParams(by=p.verifier, k=n))
    return await vote(ctx, drawn, VoteParams())


@OPERATORS.register("cascade", CascadeParams)
async def cascade(ctx: Context, state: State, p: CascadeParams) -> State:
    """The small model's answer when it is confident enough, else the large model's."""
    small = await _answer(ctx, state, p, p.small, p.n)
    conf = confidence(small, p)
    escalate = conf < p.threshold
    final = await _answer(ctx, small.with_candidates([]), p, p.large, p.n_large) if escalate else small
    event = {"node": ctx.node, "op": "cascade", "signal": p.signal, "confidence": conf, "escalated": escalate,
             "answered_by": p.large if escalate else p.small}  # fmt: skip
    return final.with_candidates([*final.candidates], **event)
