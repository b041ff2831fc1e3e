"""``deepconf``: confidence-filtered voting (DeepConf, "Deep Think with Confidence"), offline and online.

A token's confidence is minus the mean log-probability of the ``k`` likeliest tokens at its position
(``GenRequest.confidences``): high where the model's distribution is peaked. A trace's confidence is
one of

- ``lowest_group``: the lowest mean over sliding windows of ``window`` tokens (the whole trace when
  shorter) — DeepConf's default;
- ``tail``: the mean over its last ``window`` tokens;
- ``mean``: the mean over all its tokens.

**Offline**: ``n`` traces; the most confident ``keep`` share of them vote, each with its confidence as
weight; the others are kept as candidates but do not vote.

**Online**: ``warmup`` traces first, offline; the threshold is the confidence that the ``keep`` share of
them reach (their ``100 × (1 - keep)``-th percentile). The other ``n - warmup`` traces are generated
with ``GenRequest.exit_confidence_below = (threshold, window)``: a trace is abandoned as soon as the
mean confidence of its last ``window`` tokens falls below the threshold, and is charged only for the
tokens it generated. Warm-up traces at or above the threshold and every finished trace vote, weighted.

Candidates carry their trace confidence as ``scores["confidence"]`` (``nan`` for those that do not
vote); the winner comes first with its weighted share as ``scores["vote"]``. The trace records the
threshold, how many traces voted and how many were abandoned, and the tokens they saved. Token
confidences need an engine that sees the whole distribution: the transformers engine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from archon.core import Candidate, Completion, Context, EngineRef, OperatorParams, State
from archon.core.anytime import draw_within_budget
from archon.core.generation import MAX_N, GenRequest
from archon.core.registry import OPERATORS
from verifiers.answers import extract_answer
from verifiers.ops import majority

Measure = Literal["lowest_group", "tail", "mean"]


class DeepConfParams(OperatorParams):
    """``deepconf``: ``n`` traces; the most confident vote (offline), low-confidence ones stop early (online)."""

    cost_growth: ClassVar[Mapping[str, float]] = {"n": 1.0}
    engine: EngineRef
    n: int = Field(16, ge=1, le=MAX_N, description="traces in all")
    mode: Literal["offline", "online"] = "offline"
    keep: float = Field(0.9, gt=0, le=1, description="the share of (warm-up) traces whose confidence votes")
    measure: Measure = Field("lowest_group", description="lowest_group, tail or mean (online: lowest_group)")
    window: int = Field(16, ge=1, description="tokens of a confidence group")
    k: int = Field(10, ge=1, le=1000, description="top tokens of a token's confidence")
    warmup: int = Field(4, ge=1, description="online: traces that set the threshold")
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, ge=1)
    stop: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _online(self) -> DeepConfParams:
        if self.mode == "online":
            if self.warmup >= self.n:
                raise ValueError(f"online mode needs warmup ({self.warmup}) < n ({self.n})")
            if self.measure != "lowest_group":
                raise ValueError("online mode stops a trace on its sliding-window confidence: measure lowest_group")
        return self


def trace_confidence(confidences: Sequence[float], measure: Measure, window: int) -> float:
    """A trace's confidence from its tokens' (``nan`` for a trace without tokens).

    Example:
        >>> trace_confidence([5, 5, 1, 5, 5], "lowest_group", 2)
        3.0
        >>> trace_confidence([5, 5, 1, 5, 5], "tail", 2), trace_confidence([5, 5, 1, 5, 5], "mean", 2)
        (5.0, 4.2)
    """
    c = list(confidences)
    if not c:
        return math.nan
    if measure == "mean" or len(c) <= window:
        return sum(c) / len(c) if measure != "tail" else sum(c[-window:]) / len(c[-window:])
    if measure == "tail":
        return sum(c[-window:]) / window
    sums = np.convolve(np.asarray(c, dtype=float), np.ones(window), mode="valid") / window
    return float(sums.min())


def _candidate(c: Completion, engine: str, confidence: float, votes: bool) -> Candidate:
    meta = {"finish_reason": c.finish_reason, "tokens": c.num_tokens, "trace_confidence": confidence}
    return Candidate(c.text, answer=extract_answer(c.text) if c.finish_reason != "low_confidence" else None,
                     logprobs=c.logprobs, model=engine, scores={"confidence": confidence if votes else math.nan},
                     metadata=meta)  # fmt: skip


@OPERATORS.register("deepconf", DeepConfParams)
async def deepconf(ctx: Context, state: State, p: DeepConfParams) -> State:
    """Confidence-filtered, confidence-weighted voting over sampled traces (offline or online)."""
    engine = ctx.engine(p.engine)
    prompt = state.messages()

    def request(n: int, seed: int, exit_below: float | None = None) -> GenRequest:
        return GenRequest(prompt, n=n, temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_tokens,
                          stop=tuple(p.stop), seed=seed, confidences=p.k,
                          exit_confidence_below=None if exit_below is None else (exit_below, p.window))  # fmt: skip

    async def draw(first: int, count: int, exit_below: float | None = None) -> list[Completion]:
        return list((await engine.generate(request(count, ctx.seed + first, exit_below))).completions)

    first_n = p.n if p.mode == "offline" else p.warmup
    warm = await draw_within_budget(first_n, lambda f, c: draw(f, c))
    confs = [trace_confidence(c.confidences or (), p.measure, p.window) for c in warm]
    finite = [x for x in confs if not math.isnan(x)]
    threshold = float(np.quantile(finite, 1 - p.keep)) if finite else math.inf
    cands = [_candidate(c, p.engine, x, not math.isnan(x) and x >= threshold) for c, x in zip(warm, confs, strict=True)]
    abandoned = saved = 0
    if p.mode == "online" and finite:
        rest = await draw_within_budget(p.n - len(warm), lambda f, c: draw(len(warm) + f, c, exit_below=threshold))
        for c in rest:
            x = trace_confidence(c.confidences or (), p.measure, p.window)
            gone = c.finish_reason == "low_confidence"
            abandoned += gone
            saved += (p.max_tokens - c.num_tokens) if gone else 0
            cands.append(_candidate(c, p.engine, x, not gone))
    voted = sum(not math.isnan(c.scores["confidence"]) for c in cands)
    ranked = majority(cands, weight="confidence")
    event = {"node": ctx.node, "op": "deepconf", "mode": p.mode, "threshold": threshold, "traces": len(cands),
             "voted": voted, "abandoned": abandoned, "tokens_saved_at_most": saved}  # fmt: skip
    return state.with_candidates([*ranked, *state.candidates], **event)
