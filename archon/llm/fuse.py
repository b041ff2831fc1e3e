"""``fuse``: one answer written from k candidates (Archon's fuser).

The model reads the problem and the first ``k`` candidates (with their critiques when a ``critique``
node wrote them) and writes ``n`` fused solutions. A fused solution must carry an answer the world
can extract (``require_answer``; off for code, whose answer is the program); one that does not is
malformed: re-asked ``retries`` times, then ``on_malformed``: ``keep`` passes the k candidates on
unfused when no fusion succeeded, ``drop`` leaves no candidate from a failed ask. When the budget
refuses the fusions, the candidates read go on unfused (``stopped_by_budget`` in the trace).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, field_validator

from archon.core import Candidate, Context, State
from archon.core.registry import OPERATORS
from archon.llm.common import LLMParams, Policy, ask, gather_within_budget, numbered, question_of, user
from archon.llm.parsing import MalformedOutput
from archon.llm.templates import FUSE
from archon.retrieval.ops import _template
from verifiers.answers import extract_answer


class FuseParams(LLMParams):
    """``fuse``: write ``n`` solutions from the first ``k`` candidates."""

    cost_growth: ClassVar[Mapping[str, float]] = {"n": 1.0}
    k: int = Field(4, ge=1, le=64, description="candidates read (the state's first k)")
    n: int = Field(1, ge=1, le=16, description="fused solutions written")
    require_answer: bool = Field(True, description="a fused solution without an extractable answer is malformed")
    keep_inputs: bool = Field(False, description="pass the candidates read on after the fused ones")
    on_malformed: Policy = "keep"

    @field_validator("template")
    @classmethod
    def _fields(cls, v: str | None) -> str | None:
        return None if v is None else _template(v, {"question", "candidates", "count"}, {"candidates"})


@OPERATORS.register("fuse", FuseParams)
async def fuse(ctx: Context, state: State, p: FuseParams) -> State:
    """Fuse the first ``k`` candidates into ``n`` new ones (first in the new state)."""
    read = list(state.candidates[: p.k])
    if not read:
        return state.with_candidates([], node=ctx.node, op="fuse", fused=0, read=0, malformed=[])
    prompt = (p.template or FUSE).format(question=question_of(state), candidates=numbered(read), count=len(read))

    def parse(text: str) -> Candidate:
        answer = extract_answer(text)
        if p.require_answer and answer is None:
            raise MalformedOutput("no final answer ('#### <answer>') in the fused solution")
        if not text.strip():
            raise MalformedOutput("an empty solution")
        return Candidate(text, answer=answer, model=p.engine, metadata={"fused_from": len(read)})

    asked, refused = await gather_within_budget(
        [ask(ctx, p, user(prompt), parse, seed=ctx.seed + i, what=f"fusion {i + 1}") for i in range(p.n)]
    )
    done = [a for a in asked if a is not None]
    fused = [a.value for a in done if a.value is not None]
    malformed = [m for a in done for m in a.malformed]
    failed = sum(a.value is None for a in done)
    policy = None
    out = fused
    if not fused and (refused or (failed and p.on_malformed == "keep")):
        out = read  # nothing fused: the candidates read go on unfused
        policy = "keep" if failed and not refused else None
    elif failed:
        policy = p.on_malformed if not fused else "drop"
    if p.keep_inputs and out is not read:
        out = [*out, *read]
    extra = {"stopped_by_budget": True} if refused else {}
    return state.with_candidates(out, node=ctx.node, op="fuse", read=len(read), fused=len(fused), malformed=malformed,
                                 policy=policy, **extra)  # fmt: skip
