r"""The step primitive every search operator shares: extend partial solutions of one problem by one step.

A :class:`Partial` holds the token ids of the prompt followed by every token generated so far, so the
next step is requested *from those ids*: the transformers engine finds them in its prefix cache (it
caches a prompt and, for a completion that ended at a stop string, the prompt plus that step) and
computes only the new tokens, and the ledger credits the reuse (within the problem: see
:mod:`archon.core.prefixes`). vLLM with prefix caching on does the same on its side; an
OpenAI-compatible server is sent the ids (``/v1/completions`` takes token ids) and reuses what its own
prefix cache holds, and its reported cached tokens are what is credited.

Generation stops at the step delimiter (kept in the text and in the ids, so that a continuation starts
after it). A step containing the final-answer marker (``####`` for the embedded models) finishes the
solution; so does a completion that ends for any other reason than the delimiter (end of sequence, or
the context is full). Every call is charged to the caller's ledger; a refused call extends nothing
(the caller keeps what it has: the operators are anytime).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

from archon.core import Candidate, Completion, Engine, GenRequest, Prompt
from budgets import BudgetExhausted
from verifiers.answers import extract_answer

DELIMITER = "\n"
"""The embedded models end each step with a newline."""
ANSWER_MARKER = "####"
"""The embedded models write the final answer after ``####``."""


@dataclass(frozen=True, slots=True)
class Partial:
    """A partial solution: the prompt's token ids and the steps generated after them."""

    ids: tuple[int, ...]
    steps: tuple[str, ...] = ()
    finished: bool = False
    finish_reason: str = ""
    logprob: float = 0.0
    """Summed log-probability of the generated tokens (when ``extend`` asked for log-probabilities)."""
    generated: int = 0
    """Tokens generated after the prompt."""

    @property
    def mean_logprob(self) -> float:
        """The policy's mean log-probability per generated token (its self-certainty; 0 before any token)."""
        return self.logprob / self.generated if self.generated else 0.0

    @property
    def text(self) -> str:
        """The steps so far, as one text (each ends with its delimiter)."""
        return "".join(self.steps)

    def candidate(self, model: str = "", **metadata: object) -> Candidate:
        """The partial as a :class:`~archon.core.Candidate` (its answer extracted when finished)."""
        text = self.text.rstrip("\n")
        answer = extract_answer(text) if self.finished else None
        flags = {} if self.finished else {"partial": True}  # a reward model reads it as going on (no end)
        return Candidate(text, answer=answer, model=model, metadata={"steps": len(self.steps), **flags, **metadata})


def root(engine: Engine, prompt: Prompt) -> Partial:
    """The empty partial solution of ``prompt`` (its token ids, as the engine tokenizes it)."""
    ids = engine.encode(prompt)
    if ids is None:
        raise ValueError(f"engine {engine.name!r} cannot tokenize; step search needs token ids")
    return Partial(tuple(ids))


def _continued(partial: Partial, completion: Completion, delimiter: str, marker: str) -> Partial:
    step = completion.text
    ended_at_delimiter = completion.finish_reason == "stop" and step.endswith(delimiter)
    finished = marker in step or not ended_at_delimiter
    return replace(
        partial,
        ids=partial.ids + tuple(completion.token_ids),
        steps=(*partial.steps, step),
        finished=finished,
        finish_reason=completion.finish_reason,
        logprob=partial.logprob + sum(completion.logprobs or ()),
        generated=partial.generated + len(completion.token_ids),
    )


async def extend(
    engine: Engine,
    partials: Sequence[Partial],
    k: int | Sequence[int] = 1,
    *,
    delimiter: str = DELIMITER,
    answer_marker: str = ANSWER_MARKER,
    max_step_tokens: int = 64,
    temperature: float = 1.0,
    seed: int | None = None,
    logprobs: bool = False,
) -> list[list[Partial]]:
    """``k`` one-step continuations of each partial (``[]`` for a finished one, or one the budget refused).

    All requests go out at once, so the engine batches them (with those of other problems). Partial
    ``i`` gets the seed ``seed + i``, so a search is reproducible.

    Args:
        engine: The (charged) engine.
        partials: Partial solutions of one problem.
        k: Continuations per partial (one number for all, or one per partial).
        delimiter: The string that ends a step.
        answer_marker: The string whose step finishes a solution.
        max_step_tokens: Most tokens of one step.
        temperature: Sampling temperature of the steps.
        seed: Seed of the first partial's stream.
        logprobs: Ask for the tokens' log-probabilities (summed into :attr:`Partial.logprob`).
    """
    counts = [k] * len(partials) if isinstance(k, int) else list(k)
    if len(counts) != len(partials):
        raise ValueError(f"extend: {len(counts)} counts for {len(partials)} partials")

    async def one(i: int, partial: Partial, n: int) -> list[Partial]:
        if partial.finished or n < 1:
            return []
        request = GenRequest(
            list(partial.ids),
            n=n,
            max_tokens=max_step_tokens,
            temperature=temperature,
            stop=(delimiter,),
            include_stop=True,
            seed=None if seed is None else seed + i,
            logprobs=logprobs,
        )
        try:
            result = await engine.generate(request)
        except BudgetExhausted:
            return []
        return [_continued(partial, c, delimiter, answer_marker) for c in result.completions]

    return list(await asyncio.gather(*(one(i, p, n) for i, (p, n) in enumerate(zip(partials, counts, strict=True)))))


async def look_ahead(
    engine: Engine,
    partials: Sequence[Partial],
    steps: int,
    *,
    delimiter: str = DELIMITER,
    answer_marker: str = ANSWER_MARKER,
    max_step_tokens: int = 64,
) -> list[Partial]:
    """Each partial continued greedily (temperature 0) by up to ``steps`` steps, or until it finishes.

    What a beam leads to, for judging it (lookahead search): each round sends one request per partial
    still going, all at once (the engine batches them). A partial whose next step the budget refuses
    stays where it got to.
    """
    out = list(partials)
    for _ in range(steps):
        going = [i for i, x in enumerate(out) if not x.finished]
        if not going:
            break
        grown = await extend(
            engine, [out[i] for i in going], 1, delimiter=delimiter, answer_marker=answer_marker,
            max_step_tokens=max_step_tokens, temperature=0.0,
        )  # fmt: skip
        stopped = 0
        for i, g in zip(going, grown, strict=True):
            if g:
                out[i] = g[0]
            else:
                stopped += 1
        if stopped == len(going):
            break
    return out
