"""The retrieval operators: ``retrieve`` (passages into the state's context) and ``with_context`` (the prompt).

``retrieve`` searches a declared retriever with a query written from the problem (``query``: a template
over ``{question}`` and, for interleaved retrieval, ``{answer}``, the current best candidate's answer)
and puts the top ``k`` passages into the state's context (``mode: append`` adds to what an earlier
``retrieve`` found). Generation operators then send the question after the passages, in the format the
embedded models know; ``with_context`` writes that prompt another way: its own template, the passages'
order, and a cap on the tokens the passages may take (counted by the reading engine's tokenizer), which
drops the lowest-ranked passages first. The retrieved tokens are prefill of the model that reads them
and are charged as such; a dense retriever's query encoding is charged to the ``retrieve`` node.

Example spec::

    retrievers:
      bm25: {kind: bm25, corpus: facts}
    pipeline:
      - {id: docs, op: retrieve, params: {retriever: bm25, k: 3}}
      - {id: answer, op: sample, inputs: [docs], params: {engine: reader, temperature: 0}}
"""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from archon.core import Context, EngineRef, OperatorParams, RetrieverRef, State
from archon.core.registry import OPERATORS
from archon.core.retrieval import Passage
from archon.core.state import CONTEXT_TEMPLATE


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


def _template(value: str, allowed: set[str], required: set[str]) -> str:
    try:
        fields = _fields(value)
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc})") from None
    unknown = fields - allowed
    if unknown:
        names = ", ".join("{" + f + "}" for f in sorted(allowed))
        raise ValueError(f"unknown field {{{sorted(unknown)[0]}}}; fields: {names}")
    missing = required - fields
    if missing:
        raise ValueError(f"the template must contain {{{sorted(missing)[0]}}}")
    return value


class RetrieveParams(OperatorParams):
    """``retrieve``: the top ``k`` passages of ``retriever`` for the query into the state's context."""

    retriever: RetrieverRef
    k: int = Field(5, ge=1, le=200, description="passages retrieved")
    query: str = Field("{question}", description="the query: a template over {question} and {answer}")
    mode: Literal["replace", "append"] = Field("replace", description="replace the context, or add new passages")

    @field_validator("query")
    @classmethod
    def _query(cls, v: str) -> str:
        return _template(v, {"question", "answer"}, set())


@OPERATORS.register("retrieve", RetrieveParams)
async def retrieve(ctx: Context, state: State, p: RetrieveParams) -> State:
    """Retrieve the top ``k`` passages for the problem's query into the state's context."""
    question = state.problem.messages()[-1]["content"]
    answer = state.candidates[0].answer if state.candidates and state.candidates[0].answer else ""
    query = p.query.format(question=question, answer=answer).strip() or question
    found = await ctx.retriever(p.retriever).search(query, p.k)
    if p.mode == "append":
        seen = {x.id for x in state.context}
        context = (*state.context, *(x for x in found if x.id not in seen))
    else:
        context = tuple(found)
    event = {"node": ctx.node, "op": "retrieve", "retriever": p.retriever, "query": query,
             "passages": [x.to_dict() for x in found]}  # fmt: skip
    return State(state.problem, state.candidates, context, (*state.trace, event), None)


class WithContextParams(OperatorParams):
    """``with_context``: the prompt that places the retrieved passages before the question."""

    template: str = Field(CONTEXT_TEMPLATE, description="the user turn: a template over {passages} and {question}")
    passage: str = Field("{text}", description="one passage: a template over {title}, {text}, {id}, {rank}")
    separator: str = Field("\n", description="between passages")
    order: Literal["best_first", "best_last"] = Field(
        "best_first", description="best_last: the best passage nearest the question"
    )
    max_passages: int | None = Field(None, ge=0, description="most passages placed")
    max_context_tokens: int | None = Field(None, ge=0, description="most tokens the passages take (needs engine)")
    engine: EngineRef | None = Field(None, description="the reading engine, whose tokenizer counts the cap")

    @field_validator("template")
    @classmethod
    def _template_fields(cls, v: str) -> str:
        return _template(v, {"passages", "question"}, {"question"})

    @field_validator("passage")
    @classmethod
    def _passage_fields(cls, v: str) -> str:
        return _template(v, {"title", "text", "id", "rank"}, set())

    @model_validator(mode="after")
    def _cap_has_engine(self) -> WithContextParams:
        if self.max_context_tokens is not None and self.engine is None:
            raise ValueError("max_context_tokens needs engine (the reading engine, whose tokenizer counts tokens)")
        return self


def _tokens(ctx: Context, engine: str, text: str) -> int:
    ids = ctx.engine(engine).encode(text)
    return len(ids) if ids is not None else len(text)


@OPERATORS.register("with_context", WithContextParams)
async def with_context(ctx: Context, state: State, p: WithContextParams) -> State:
    """Write the prompt: the passages (best first, capped) and the question, by ``template``."""
    passages: list[Passage] = list(state.context[: p.max_passages] if p.max_passages is not None else state.context)
    texts = [p.passage.format(title=x.title, text=x.text, id=x.id, rank=x.rank + 1) for x in passages]
    placed = len(texts)
    if p.max_context_tokens is not None and p.engine is not None:
        used, placed = 0, 0
        for t in texts:  # best first: the lowest-ranked passages are the ones dropped
            used += _tokens(ctx, p.engine, t + p.separator)
            if used > p.max_context_tokens:
                break
            placed += 1
    kept = texts[:placed]
    if p.order == "best_last":
        kept = kept[::-1]
    messages = state.problem.messages()
    question = messages[-1]["content"]
    if kept:
        content = p.template.format(passages=p.separator.join(kept), question=question)
        messages[-1] = {**messages[-1], "content": content}
    event = {"node": ctx.node, "op": "with_context", "placed": [x.id for x in passages[:placed]],
             "dropped": [x.id for x in passages[placed:]]}  # fmt: skip
    return State(state.problem, state.candidates, state.context, (*state.trace, event), tuple(messages))
