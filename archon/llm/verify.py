"""``verify``: a generative verdict filter keeping the candidates judged correct (Archon's verifier).

For each candidate the model checks the solution in writing and ends with ``Verdict: correct`` or
``Verdict: incorrect`` (:func:`verifiers.judge.parse_verdict`); ``samples`` verdicts are drawn per
candidate, and its score (stored under ``scores[<node>]``) is the share of its parsed verdicts that
say correct. Candidates scoring at least ``threshold`` are kept, in order.

A check without a verdict is malformed: re-asked ``retries`` times, then not counted. A candidate
with no parsed verdict at all follows ``on_malformed``: ``keep`` keeps it unjudged (no score),
``drop`` removes it. When no candidate is kept, ``fallback`` says what goes on: ``all``
(every candidate, in order), ``best`` (the highest-scoring one) or ``none``. Candidates the budget
refused are kept unjudged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from archon.core import Candidate, Context, State
from archon.core.registry import OPERATORS
from archon.llm.common import LLMParams, Policy, ask, gather_within_budget, question_of, user
from archon.llm.parsing import MalformedOutput
from archon.llm.templates import VERIFY
from archon.retrieval.ops import _template
from verifiers.judge import parse_verdict


def _verdict(text: str) -> bool:
    v = parse_verdict(text)
    if v is None:
        raise MalformedOutput("no 'Verdict: correct' or 'Verdict: incorrect' line")
    return v


class VerifyParams(LLMParams):
    """``verify``: keep the candidates whose verdicts say correct."""

    cost_growth: ClassVar[Mapping[str, float]] = {"samples": 1.0}
    samples: int = Field(1, ge=1, le=32, description="verdicts drawn per candidate")
    threshold: float = Field(0.5, ge=0, le=1, description="the share of 'correct' verdicts a kept candidate needs")
    fallback: Literal["all", "best", "none"] = Field("all", description="what goes on when none is judged correct")
    on_malformed: Policy = "keep"

    @field_validator("template")
    @classmethod
    def _fields(cls, v: str | None) -> str | None:
        return None if v is None else _template(v, {"question", "solution"}, {"solution"})


@OPERATORS.register("verify", VerifyParams)
async def verify(ctx: Context, state: State, p: VerifyParams) -> State:
    """Judge every candidate ``samples`` times and keep those judged correct (with a fallback)."""
    cands = list(state.candidates)
    if not cands:
        return state.with_candidates([], node=ctx.node, op="verify", kept=0, malformed=[])
    template = p.template or VERIFY
    question = question_of(state)
    calls = [
        ask(
            ctx,
            p,
            user(template.format(question=question, solution=c.text.strip())),
            _verdict,
            seed=ctx.seed + 1009 * i + s,
            what=f"candidate {i + 1} verdict {s + 1}",
        )
        for i, c in enumerate(cands)
        for s in range(p.samples)
    ]
    asked, refused = await gather_within_budget(calls)
    malformed: list[dict] = []
    judged: list[tuple[Candidate, float | None]] = []
    for i, c in enumerate(cands):
        mine = asked[i * p.samples : (i + 1) * p.samples]
        verdicts = [a.value for a in mine if a is not None and a.value is not None]
        malformed.extend(m for a in mine if a is not None for m in a.malformed)
        if verdicts:
            share = sum(verdicts) / len(verdicts)
            judged.append((c.with_score(ctx.node, share), share))
        elif any(a is None for a in mine) or p.on_malformed == "keep":
            judged.append((c, None))  # refused by the budget, or unparsed and kept: unjudged
    kept = [c for c, s in judged if s is None or s >= p.threshold]
    policy = None
    if not kept and judged:  # none judged correct (nor kept unjudged)
        policy = p.fallback
        if p.fallback == "all":
            kept = [c for c, _ in judged]
        elif p.fallback == "best":
            best = max(range(len(judged)), key=lambda i: (judged[i][1] or 0.0, -i))
            kept = [judged[best][0]]
    extra = {"stopped_by_budget": True} if refused else {}
    scores = [None if s is None else round(s, 4) for _, s in judged]
    return state.with_candidates(kept, node=ctx.node, op="verify", kept=len(kept), scores=scores, fallback=policy,
                                 malformed=malformed, **extra)  # fmt: skip
