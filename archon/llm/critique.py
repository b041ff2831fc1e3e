"""``critique``: a written critique of each candidate, kept for a following ``fuse`` (Archon's critic).

The model reads the problem and one candidate and writes its strengths and mistakes; the critique is
stored in the candidate's ``metadata["critique"]``, and ``fuse`` (or ``rank``) shows it after the
candidate. The candidates and their order are unchanged. An empty critique is malformed: re-asked
``retries`` times, then ``on_malformed``: ``keep`` passes the candidate on without a critique,
``drop`` removes it. Candidates the budget refused go on without a critique.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import ClassVar

from pydantic import Field, field_validator

from archon.core import Context, State
from archon.core.registry import OPERATORS
from archon.llm.common import LLMParams, Policy, ask, gather_within_budget, question_of, user
from archon.llm.parsing import parse_critique
from archon.llm.templates import CRITIQUE
from archon.retrieval.ops import _template


class CritiqueParams(LLMParams):
    """``critique``: write a critique of each of the first ``k`` candidates."""

    cost_growth: ClassVar[Mapping[str, float]] = {"k": 1.0}
    k: int | None = Field(None, ge=1, description="candidates critiqued (the state's first k; null: all)")
    on_malformed: Policy = "keep"

    @field_validator("template")
    @classmethod
    def _fields(cls, v: str | None) -> str | None:
        return None if v is None else _template(v, {"question", "solution"}, {"solution"})


@OPERATORS.register("critique", CritiqueParams)
async def critique(ctx: Context, state: State, p: CritiqueParams) -> State:
    """Attach a critique to each of the first ``k`` candidates."""
    cands = list(state.candidates)
    todo = cands[: p.k] if p.k is not None else cands
    template = p.template or CRITIQUE
    question = question_of(state)
    asked, refused = await gather_within_budget(
        [
            ask(
                ctx,
                p,
                user(template.format(question=question, solution=c.text.strip())),
                parse_critique,
                seed=ctx.seed + i,
                what=f"candidate {i + 1}",
            )
            for i, c in enumerate(todo)
        ]
    )
    out = []
    malformed: list[dict] = []
    dropped = 0
    for i, c in enumerate(cands):
        a = asked[i] if i < len(asked) else None
        if a is None:
            out.append(c)
            continue
        malformed.extend(a.malformed)
        if a.value is not None:
            out.append(replace(c, metadata={**c.metadata, "critique": a.value}))
        elif p.on_malformed == "keep":
            out.append(c)
        else:
            dropped += 1
    extra = {"stopped_by_budget": True} if refused else {}
    written = sum(a is not None and a.value is not None for a in asked)
    return state.with_candidates(out, node=ctx.node, op="critique", critiqued=written, dropped=dropped,
                                 malformed=malformed, policy=p.on_malformed if malformed else None,
                                 **extra)  # fmt: skip
