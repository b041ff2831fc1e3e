"""``entropy_switch``: sample with token-level switching between a small and a large model (EAD).

The operator form of :class:`~samplers.switching.EntropySwitch`: ``n`` completions of the problem,
each written by ``small`` until its rolling mean entropy over ``window`` steps exceeds ``tau``, then by
``large`` until its own entropy stays below ``tau_large`` (default ``tau``) for ``dwell`` tokens, and so
on. Every turn is charged to the engine that ran it (the incoming model's catch-up prefill included).
Each candidate's metadata says who wrote what (``segments``: ``[model, tokens, text]``; the engine
names are those of the spec), ``large_share`` (the large model's share of its tokens) and ``switches``;
the trace event sums the counts over the node's candidates and lists each candidate's segments.

``tau: 0`` hands every token to the large model (after its first step the small model never writes);
a ``tau`` above the largest possible entropy (``ln`` of the vocabulary size) is the small model alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field

from archon.core import Candidate, Context, EngineRef, OperatorParams, State
from archon.core.anytime import draw_within_budget
from archon.core.generation import MAX_N, GenRequest
from archon.core.registry import OPERATORS
from samplers.switching import EntropySwitch, SwitchedCompletion
from verifiers.answers import extract_answer


class EntropySwitchParams(OperatorParams):
    """``entropy_switch``: ``n`` completions written by ``small`` and ``large`` in turns, by entropy."""

    cost_growth: ClassVar[Mapping[str, float]] = {"n": 1.0}
    small: EngineRef
    large: EngineRef
    tau: float = Field(1.0, ge=0, description="the small model hands over when its rolling mean entropy exceeds it")
    window: int = Field(5, ge=1, le=256, description="steps of the small model's rolling mean")
    dwell: int = Field(4, ge=1, le=256, description="large-model tokens below tau_large before it hands back")
    tau_large: float | None = Field(None, ge=0, description="the large model's threshold (default: tau)")
    n: int = Field(1, ge=1, le=MAX_N)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    max_tokens: int = Field(256, ge=1)
    stop: list[str] = Field(default_factory=list)
    logprobs: bool = False


@OPERATORS.register("entropy_switch", EntropySwitchParams)
async def entropy_switch(ctx: Context, state: State, p: EntropySwitchParams) -> State:
    """Sample ``n`` completions with entropy-adaptive switching (fewer when the budget refuses more)."""
    switch = EntropySwitch(
        ctx.engine(p.small), ctx.engine(p.large), tau=p.tau, window=p.window, dwell=p.dwell, tau_large=p.tau_large
    )
    prompt = state.messages()

    async def draw(first: int, count: int) -> list[SwitchedCompletion]:
        request = GenRequest(
            prompt, n=count, max_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k,
            stop=tuple(p.stop), logprobs=p.logprobs, entropies=True, seed=ctx.seed + first,
        )  # fmt: skip
        return await switch.complete(request)

    drawn = await draw_within_budget(p.n, draw)
    new = [_candidate(d, p) for d in drawn]
    large = sum(d.large_tokens for d in drawn)
    total = large + sum(d.small_tokens for d in drawn)
    event = {"node": ctx.node, "op": "entropy_switch", "added": len(new), "small": p.small, "large": p.large,
             "small_tokens": total - large, "large_tokens": large, "large_share": large / total if total else 0.0,
             "switches": sum(d.switches for d in drawn),
             "segments": [c.metadata["segments"] for c in new]}  # fmt: skip
    return state.with_candidates([*state.candidates, *new], **event)


def _candidate(d: SwitchedCompletion, p: EntropySwitchParams) -> Candidate:
    c = d.completion
    trace = d.trace()
    names = {"small": p.small, "large": p.large}
    trace["segments"] = [[names[m], k, text] for m, k, text in trace["segments"]]
    total = d.small_tokens + d.large_tokens
    metadata = {"finish_reason": c.finish_reason, "tokens": c.num_tokens, **trace,
                "large_share": d.large_tokens / total if total else 0.0}  # fmt: skip
    return Candidate(
        c.text,
        answer=extract_answer(c.text),
        logprobs=c.logprobs,
        entropies=c.entropies,
        model=p.small if not d.large_tokens else p.large if not d.small_tokens else f"{p.small}+{p.large}",
        metadata=metadata,
    )
