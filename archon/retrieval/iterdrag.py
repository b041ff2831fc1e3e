"""``iterdrag``: IterDRAG-style interleaved retrieval and generation for questions that need several facts.

Iterative demonstration-based RAG (Yue et al.) decomposes a multi-hop question into sub-queries and
answers them in turn, retrieving for each, before the final answer. The model writes one line at a
time after the question (and whatever passages the state already holds):

- ``Follow up: <sub-query>`` -- the retriever's top ``k`` passages for the sub-query are inserted
  (``passages`` template), then the model writes ``Intermediate answer: <answer>``;
- ``So the final answer is: <answer>`` -- done.

After ``iterations`` follow-ups the final-answer prefix is written for the model, which must then
answer. Generation continues one token sequence (the prompt's token ids, then exactly the tokens the
model wrote and the inserted text's), so each call extends the last and the engine's prefix cache
computes only the new tokens; every call is charged to the engine, every search to this node. The
candidate's text is the transcript with a ``#### <answer>`` line, so answer extraction works as
everywhere.

Output is parsed strictly: a line that starts with neither prefix is *malformed*; it is recorded in
the trace and handled by ``on_malformed``: ``final`` takes the line as the final answer, ``force``
writes the final-answer prefix and asks again, ``drop`` leaves the problem without a candidate.

tiny-l's last training phase included transcripts of this format for training-world two-hop
questions, so on the embedded world it writes the follow-ups and answers some two-hop questions that
one retrieval cannot (figures in ``BENCHMARKS.md`` "Retrieval"); tiny-s was never trained on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, field_validator

from archon.core import Candidate, Context, EngineRef, GenRequest, OperatorParams, RequestError, RetrieverRef, State
from archon.core.registry import OPERATORS
from archon.retrieval.ops import _template
from verifiers.answers import extract_answer

INSTRUCTIONS = (
    "Answer step by step. To look something up, write 'Follow up:' and a question; when you know the "
    "answer, write 'So the final answer is:' and the answer."
)


class IterDragParams(OperatorParams):
    """``iterdrag``: follow-up sub-queries, each answered after its own retrieved passages, then the answer."""

    engine: EngineRef
    retriever: RetrieverRef
    k: int = Field(1, ge=1, le=50, description="passages retrieved for each follow-up")
    iterations: int = Field(2, ge=0, le=16, description="most follow-ups before the answer is asked for")
    instructions: str | None = Field(INSTRUCTIONS, description="appended to the question (null: none)")
    follow_up: str = Field("Follow up:", min_length=1)
    intermediate: str = Field("Intermediate answer:", min_length=1)
    final: str = Field("So the final answer is:", min_length=1)
    passages: str = Field("Context:\n{passages}\n", description="the inserted passages: a template over {passages}")
    on_malformed: Literal["final", "force", "drop"] = "final"
    max_tokens: int = Field(48, ge=1, description="most tokens of one line")
    temperature: float = Field(0.0, ge=0)

    @field_validator("passages")
    @classmethod
    def _passages(cls, v: str) -> str:
        return _template(v, {"passages"}, {"passages"})


class _Transcript:
    """The token sequence generation continues, and its text."""

    def __init__(self, engine: Any, prompt: Sequence[int]) -> None:
        self.engine, self.ids, self.text = engine, list(prompt), ""
        tokenizer = engine.tokenizer
        if tokenizer is None:
            raise RequestError(f"iterdrag: engine {engine.name!r} cannot tokenize locally (it needs token-id prompts)")
        self.tokenizer = tokenizer

    def insert(self, text: str) -> None:
        self.ids += self.tokenizer(text, add_special_tokens=False).input_ids
        self.text += text

    async def line(self, p: IterDragParams, seed: int) -> str:
        """The model's next line (the newline that ends it kept in the sequence)."""
        request = GenRequest(tuple(self.ids), max_tokens=p.max_tokens, temperature=p.temperature, stop=("\n",),
                             seed=seed)  # fmt: skip
        c = (await self.engine.generate(request)).completions[0]
        self.ids += c.token_ids
        self.text += c.text
        if c.finish_reason == "stop":
            self.text += "\n"
        else:  # it ended without a newline: write one
            self.insert("\n")
        return c.text.strip()


@OPERATORS.register("iterdrag", IterDragParams)
async def iterdrag(ctx: Context, state: State, p: IterDragParams) -> State:
    """Answer with interleaved follow-up retrieval; one candidate whose text is the transcript."""
    engine = ctx.engine(p.engine)
    messages = state.messages()
    if p.instructions:
        messages[-1] = {**messages[-1], "content": f"{messages[-1]['content']}\n{p.instructions}"}
    prompt = engine.encode(messages)
    if prompt is None:
        raise RequestError(f"iterdrag: engine {p.engine!r} cannot tokenize locally (it needs token-id prompts)")
    t = _Transcript(engine, prompt)
    hops: list[dict[str, Any]] = []
    malformed: list[str] = []
    answer: str | None = None
    forced = False
    for turn in range(p.iterations + 2):
        line = await t.line(p, ctx.seed + turn)
        if line.startswith(p.final):
            answer = line[len(p.final) :].strip()
            break
        if line.startswith(p.follow_up) and len(hops) < p.iterations:
            query = line[len(p.follow_up) :].strip() or state.problem.messages()[-1]["content"]
            found = await ctx.retriever(p.retriever).search(query, p.k)
            t.insert(p.passages.format(passages="\n".join(x.text for x in found)) + p.intermediate)
            middle = await t.line(p, ctx.seed + 100 + turn)
            hops.append({"query": query, "passages": [x.id for x in found], "answer": middle})
            continue
        if not line.startswith(p.follow_up):
            malformed.append(line)
            if p.on_malformed == "final" or forced:
                answer = line
                break
            if p.on_malformed == "drop":
                break
        if forced:  # a follow-up after the forced prefix: no answer
            break
        t.insert(p.final)  # out of follow-ups (or malformed, on_malformed: force): ask for the answer
        forced = True
        answer_line = await t.line(p, ctx.seed + 200 + turn)
        answer = answer_line.strip()
        break
    event = {"node": ctx.node, "op": "iterdrag", "hops": hops, "malformed": malformed, "forced": forced,
             "answer": answer}  # fmt: skip
    if answer is None:
        return state.with_candidates(list(state.candidates), **event)
    text = f"{t.text.rstrip()}\n#### {answer}"
    new = Candidate(text, answer=extract_answer(text), model=p.engine, metadata={"hops": len(hops)})
    return state.with_candidates([new, *state.candidates], **event)
