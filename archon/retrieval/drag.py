"""``demonstrations``: DRAG-style many-shot prompts, ``m`` solved examples each with its own retrieved documents.

Demonstration-based RAG (Yue et al., "Inference Scaling for Long-Context Retrieval Augmented
Generation") spends more of the context on in-context examples: before the question (and its
passages), ``m`` solved problems from a demonstration pool are placed as earlier chat turns, each
user turn with the top ``k`` passages the retriever finds for *that* example's question, each
assistant turn with its reference solution. ``m`` and ``k`` are the two knobs whose product the paper
scales (with the test question's own ``k`` from its ``retrieve`` node).

The pool is a data set split (``dataset``, ``split``; by default facts dev) or a JSONL file; a
problem never gets itself (same id or same question) as a demonstration. Examples are chosen per
problem (``select: random``, seeded by the run's seed and the problem, or ``first``). An example's
assistant turn is its ``metadata["solution"]`` when the pool has one, else ``#### answer``. Every
demonstration token is prefill of the model that reads the prompt and is charged to it there; the
demonstrations' searches are charged to this node (a dense retriever's query encoding).

    pipeline:
      - {id: docs, op: retrieve, params: {retriever: bm25, k: 1}}
      - {id: shots, op: demonstrations, inputs: [docs], params: {m: 2, k: 1, retriever: bm25}}
      - {id: answer, op: sample, inputs: [shots], params: {engine: reader, temperature: 0}}
"""

from __future__ import annotations

import random
from functools import cache
from typing import Literal

from pydantic import Field, model_validator

from archon.core import Context, OperatorParams, Problem, RetrieverRef, State
from archon.core.registry import OPERATORS
from archon.core.state import CONTEXT_TEMPLATE


class DemonstrationsParams(OperatorParams):
    """``demonstrations``: ``m`` solved examples, each with its own ``k`` retrieved passages, before the question."""

    m: int = Field(2, ge=0, le=64, description="in-context examples")
    k: int = Field(1, ge=0, le=50, description="passages retrieved for each example (0: none)")
    retriever: RetrieverRef | None = Field(None, description="finds each example's passages (needed when k > 0)")
    dataset: str = Field("facts", description="the demonstration pool: a data set name or a JSONL file")
    split: str = Field("dev", description="the pool's split (for a data set name)")
    select: Literal["random", "first"] = Field("random", description="random (seeded per problem) or the first m")

    @model_validator(mode="after")
    def _check(self) -> DemonstrationsParams:
        if self.m and self.k and self.retriever is None:
            raise ValueError("k > 0 needs retriever (the retriever that finds each example's passages)")
        if self.m:
            from archon.core import DataError

            try:
                _pool(self.dataset, self.split)
            except DataError as exc:
                raise ValueError(f"the demonstration pool: {exc}") from None
        return self


@cache
def _pool(dataset: str, split: str) -> tuple[Problem, ...]:
    from archon import data

    return tuple(p for p in data.load(dataset, split) if p.answer is not None)


def _solution(p: Problem) -> str:
    solution = p.metadata.get("solution")
    return solution if isinstance(solution, str) and solution.strip() else f"#### {p.answer}"


def _question(p: Problem) -> str:
    return p.messages()[-1]["content"]


@OPERATORS.register("demonstrations", DemonstrationsParams)
async def demonstrations(ctx: Context, state: State, p: DemonstrationsParams) -> State:
    """Put ``m`` solved examples, each after its own retrieved passages, as chat turns before the prompt."""
    question = _question(state.problem)
    pool = [x for x in _pool(p.dataset, p.split) if x.id != state.problem.id and _question(x) != question]
    if p.select == "random":
        rng = random.Random(f"{ctx.seed}:{state.problem.id}")
        shots = rng.sample(pool, min(p.m, len(pool)))
    else:
        shots = pool[: p.m]
    found: list[list[object]] = [[] for _ in shots]
    if shots and p.k > 0 and p.retriever is not None:
        found = await ctx.retriever(p.retriever).search_many([_question(x) for x in shots], p.k)  # type: ignore[assignment]
    turns = []
    for shot, passages in zip(shots, found, strict=True):
        text = "\n".join(x.text for x in passages)  # type: ignore[attr-defined]
        user = CONTEXT_TEMPLATE.format(passages=text, question=_question(shot)) if text else _question(shot)
        turns += [{"role": "user", "content": user}, {"role": "assistant", "content": _solution(shot)}]
    messages = state.messages()
    prompt = (*turns, *messages) if turns else None
    event = {"node": ctx.node, "op": "demonstrations", "examples": [x.id for x in shots],
             "passages": [[x.id for x in ps] for ps in found]}  # type: ignore[attr-defined]  # fmt: skip
    return State(state.problem, state.candidates, state.context, (*state.trace, event),
                 tuple(prompt) if prompt else state.prompt)  # fmt: skip
