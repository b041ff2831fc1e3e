"""``adaptive_sc``: self-consistency that stops sampling once the answer is settled.

Samples are drawn in rounds (``start`` samples, then the round size grows by ``growth`` up to
``n_max`` in all: its_hub's 2 → 4 → 8 ...). Within a round every sample is its own request, all of them
submitted at once (the engine batches them); as each one finishes the vote is updated, and as soon as
the stopping rule holds, the requests still pending are cancelled: a cancelled request that had not
run is never computed and never charged (its reservation is released), so the ledger holds only what
ran. The rules:

- ``share``: the leading answer holds at least ``threshold`` of the votes (after ``min_samples``);
- ``posterior``: with a uniform Dirichlet prior on the answers' shares, the probability that the
  leader's share exceeds the runner-up's — ``P(X > Y)`` for ``X / (X + Y) ~ Beta(a + 1, b + 1)`` with
  ``a``, ``b`` their votes — is at least ``threshold`` (Aggarwal et al.'s adaptive-consistency
  criterion, in its Beta form).

Samples without an answer vote for nothing. The result is :func:`~verifiers.ops.majority` of the drawn
samples (the winner first, its share as ``scores["vote"]``); the trace says how many were drawn, how
many were cancelled, and why it stopped (``settled``, ``n_max`` or ``budget``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, model_validator
from scipy.special import betainc

from archon.core import Candidate, Context, EngineRef, GenRequest, OperatorParams, State
from archon.core.generation import MAX_N
from archon.core.registry import OPERATORS
from budgets import BudgetExhausted
from verifiers.answers import extract_answer, normalize_answer
from verifiers.ops import majority


class AdaptiveSCParams(OperatorParams):
    """``adaptive_sc``: sample in growing rounds until the majority answer is settled, then vote."""

    cost_growth: ClassVar[Mapping[str, float]] = {"n_max": 1.0}
    engine: EngineRef
    n_max: int = Field(32, ge=1, le=MAX_N, description="most samples in all")
    start: int = Field(2, ge=1, description="samples of the first round")
    growth: float = Field(2.0, ge=1.0, description="each round's size is the last one's times this")
    rule: Literal["share", "posterior"] = Field("posterior", description="share or posterior")
    threshold: float = Field(0.95, gt=0, le=1, description="the share or probability that stops sampling")
    min_samples: int = Field(2, ge=1, description="never stop before this many samples")
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, ge=1)
    stop: list[str] = Field(default_factory=list)
    logprobs: bool = False

    @model_validator(mode="after")
    def _sizes(self) -> AdaptiveSCParams:
        if self.start > self.n_max:
            raise ValueError(f"start ({self.start}) is more than n_max ({self.n_max})")
        return self


def leader_probability(votes: Counter[str]) -> float:
    """``P(leader's share > runner-up's)`` under a uniform Dirichlet prior (Beta form); 0 without votes.

    Example:
        >>> round(leader_probability(Counter({"5": 4})), 4)
        0.9688
        >>> round(leader_probability(Counter({"5": 3, "6": 3})), 2)
        0.5
    """
    if not votes:
        return 0.0
    top = votes.most_common(2)
    a = top[0][1]
    b = top[1][1] if len(top) > 1 else 0
    return float(1.0 - betainc(a + 1, b + 1, 0.5))


def settled(votes: Counter[str], drawn: int, p: AdaptiveSCParams) -> bool:
    """Whether the stopping rule holds after ``drawn`` samples with these votes."""
    if drawn < p.min_samples or not votes:
        return False
    if p.rule == "share":
        return votes.most_common(1)[0][1] / drawn >= p.threshold
    return leader_probability(votes) >= p.threshold


def rounds(p: AdaptiveSCParams) -> list[int]:
    """The round sizes: ``start``, then growing by ``growth``, summing to ``n_max``.

    Example:
        >>> rounds(AdaptiveSCParams(engine="e", n_max=20, start=2, growth=2))
        [2, 4, 8, 6]
    """
    out: list[int] = []
    size = p.start
    while sum(out) < p.n_max:
        out.append(min(int(size), p.n_max - sum(out)))
        size = max(size + 1, size * p.growth) if p.growth > 1 else size
    return out


@OPERATORS.register("adaptive_sc", AdaptiveSCParams)
async def adaptive_sc(ctx: Context, state: State, p: AdaptiveSCParams) -> State:
    """Sample until the leading answer is settled (or ``n_max``), cancel what is pending, vote."""
    engine = ctx.engine(p.engine)
    prompt = state.messages()
    drawn: list[Candidate] = []
    votes: Counter[str] = Counter()
    cancelled = 0
    why = "n_max"
    index = 0

    async def one(i: int) -> Candidate:
        request = GenRequest(prompt, n=1, temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_tokens,
                             stop=tuple(p.stop), logprobs=p.logprobs, seed=ctx.seed + i)  # fmt: skip
        c = (await engine.generate(request)).completions[0]
        return Candidate(c.text, answer=extract_answer(c.text), logprobs=c.logprobs, model=p.engine,
                         metadata={"finish_reason": c.finish_reason, "tokens": c.num_tokens})  # fmt: skip

    for size in rounds(p):
        tasks = {asyncio.ensure_future(one(index + j)): index + j for j in range(size)}
        index += size
        stop = False
        pending = set(tasks)
        while pending and not stop:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for t in sorted(done, key=tasks.__getitem__):  # every finished sample ran and was charged: it votes
                if isinstance(t.exception(), BudgetExhausted):
                    why, stop = "budget", True
                    continue
                cand = t.result()
                drawn.append(cand)
                if cand.answer is not None:
                    votes[normalize_answer(cand.answer)] += 1
                if not stop and settled(votes, len(drawn), p):
                    why, stop = "settled", True
        for t in pending:
            t.cancel()
        if pending:
            results = await asyncio.gather(*pending, return_exceptions=True)
            cancelled += sum(isinstance(r, asyncio.CancelledError) for r in results)
            drawn += [r for r in results if isinstance(r, Candidate)]  # finished while being cancelled: it ran
        if stop:
            break
    event = {"node": ctx.node, "op": "adaptive_sc", "drawn": len(drawn), "cancelled": cancelled, "stopped": why,
             "leader_probability": leader_probability(votes)}  # fmt: skip
    return state.with_candidates(majority([*state.candidates, *drawn]), **event)
