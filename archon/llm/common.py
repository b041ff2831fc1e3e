"""What the LLM operators share: their common params, the prompt, and asking with the retry policy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import Field

from archon.core import Candidate, Context, EngineRef, GenRequest, Message, OperatorParams, State
from archon.llm.parsing import MalformedOutput
from budgets import BudgetExhausted

T = TypeVar("T")

Policy = Literal["keep", "drop"]


class LLMParams(OperatorParams):
    """Params every LLM operator has: the engine, sampling, and the malformed-output policy."""

    engine: EngineRef
    template: str | None = Field(None, description="the prompt (null: the operator's shipped template)")
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0)
    retries: int = Field(1, ge=0, le=8, description="asks again this many times when the output does not parse")
    retry_temperature: float = Field(0.7, gt=0, description="the temperature of a retry after a greedy ask")


def question_of(state: State) -> str:
    """The problem's last user turn (what the templates call ``{question}``)."""
    return str(state.problem.messages()[-1]["content"])


def numbered(candidates: Sequence[Candidate]) -> str:
    """The candidates as ``[1]``, ``[2]`` ... blocks, each with its critique when it has one."""
    blocks = []
    for i, c in enumerate(candidates, 1):
        block = f"[{i}]\n{c.text.strip()}"
        critique = c.metadata.get("critique")
        if critique:
            block += f"\nCritique of [{i}]: {critique}"
        blocks.append(block)
    return "\n\n".join(blocks)


def user(content: str) -> list[Message]:
    """One user turn."""
    return [{"role": "user", "content": content}]


@dataclass
class Asked(Generic[T]):
    """What one ask came to: the parsed value (``None`` when every attempt was malformed) and the failures."""

    value: T | None
    malformed: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0


async def ask(
    ctx: Context,
    p: LLMParams,
    messages: list[Message],
    parse: Callable[[str], T],
    *,
    seed: int,
    what: str,
    stop: tuple[str, ...] = (),
) -> Asked[T]:
    """Ask the engine, parse strictly, re-ask up to ``p.retries`` times; every malformed output is kept.

    ``what`` names the item in the trace (``"candidate 2"``, ``"pair 1-3"``). A retry after a greedy ask
    samples at ``p.retry_temperature`` (the same greedy ask would give the same output again).
    """
    engine = ctx.engine(p.engine)
    out: Asked[T] = Asked(None)
    for attempt in range(p.retries + 1):
        temperature = p.temperature if attempt == 0 or p.temperature > 0 else p.retry_temperature
        request = GenRequest(messages, max_tokens=p.max_tokens, temperature=temperature, stop=stop,
                             seed=seed + 7919 * attempt)  # fmt: skip
        completion = (await engine.generate(request)).completions[0]
        out.attempts += 1
        try:
            out.value = parse(completion.text)
            return out
        except MalformedOutput as exc:
            failure = {"item": what, "attempt": attempt, "reason": str(exc), "output": completion.text[:400]}
            out.malformed.append(failure)
    return out


async def gather_within_budget(calls: Sequence[Awaitable[T]]) -> tuple[list[T | None], bool]:
    """Run the calls together; those the budget refused come back ``None``, and whether any was refused.

    Every other exception propagates. What the other calls spent stays charged (nothing is lost).
    """
    results = await asyncio.gather(*calls, return_exceptions=True)
    out: list[T | None] = []
    refused = False
    for r in results:
        if isinstance(r, BudgetExhausted):
            out.append(None)
            refused = True
        elif isinstance(r, BaseException):
            raise r
        else:
            out.append(r)
    return out, refused
