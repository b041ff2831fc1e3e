"""LLM judges: a language model asked whether a candidate is correct.

Two ways, as in the field:

- :class:`YesNoJudge` reads the probability of "Yes" against "No" after "Is this solution correct?"
  by teacher forcing (``engine.score``): one forward pass per candidate, no sampling.
- :class:`GenerativeVerifier` lets the model reason, then give a verdict (Archon's verifier); the
  score is the share of ``samples`` verdicts that say correct.

Both work with any engine; their calls batch with everything else the engine serves, and a
:class:`~archon.core.charging.ChargedEngine` charges them to the ledger.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence
from typing import Literal

from archon.core import Candidate, Engine, GenRequest, Message, Problem

YES_NO_TEMPLATE = "{question}\n\nProposed solution:\n{solution}\n\nIs this solution correct? Answer Yes or No."
VERIFY_TEMPLATE = (
    "{question}\n\nProposed solution:\n{solution}\n\n"
    "Check the solution step by step. Then write 'Verdict: correct' or 'Verdict: incorrect' on the last line."
)
_VERDICT = re.compile(r"verdict\s*[:\-]?\s*\**\s*(correct|incorrect|right|wrong|yes|no)\b", re.IGNORECASE)


def judge_messages(template: str, problem: Problem, candidate: Candidate) -> list[Message]:
    """The judge's prompt: the problem's last user turn and the candidate, through ``template``."""
    question = problem.messages()[-1]["content"]
    return [{"role": "user", "content": template.format(question=question, solution=candidate.text)}]


def parse_verdict(text: str) -> bool | None:
    r"""The last verdict in a verifier's output: ``True`` (correct), ``False`` (incorrect) or ``None``.

    Example:
        >>> parse_verdict("Step 2 is wrong.\nVerdict: incorrect"), parse_verdict("**Verdict:** Correct")
        (False, True)
        >>> parse_verdict("I am not sure") is None
        True
    """
    found = _VERDICT.findall(text)
    if not found:
        return None
    return found[-1].lower() in ("correct", "right", "yes")


class YesNoJudge:
    """P("Yes") to "Is this solution correct?", normalised against "No", read by teacher forcing.

    Args:
        engine: Any engine with ``score`` (transformers, vLLM, a server with prompt logprobs).
        template: The question to the judge (``{question}``, ``{solution}``).
        yes: The continuation read as yes.
        no: The continuation read as no.
        name: Scores are stored under it.
    """

    kind: Literal["outcome"] = "outcome"
    higher_is_better = True

    def __init__(
        self,
        engine: Engine,
        *,
        template: str = YES_NO_TEMPLATE,
        yes: str = "Yes",
        no: str = "No",
        name: str = "judge_yes",
    ) -> None:
        self.engine, self.template, self.yes, self.no, self.name = engine, template, yes, no, name

    async def score(self, problem: Problem, candidates: Sequence[Candidate]) -> list[float]:
        """P(yes) / (P(yes) + P(no)) for each candidate."""
        results = await asyncio.gather(
            *(self.engine.score(judge_messages(self.template, problem, c), [self.yes, self.no]) for c in candidates)
        )
        return [_normalised(r.total(0), r.total(1)) for r in results]


class GenerativeVerifier:
    """The model checks the solution in writing, then gives a verdict; the score is the share saying correct.

    Args:
        engine: Any engine.
        samples: Verdicts drawn per candidate (their share is the score).
        max_tokens: Length of the written check.
        temperature: Sampling temperature of the checks.
        template: The instruction (``{question}``, ``{solution}``); it must ask for a ``Verdict:`` line.
        name: Scores are stored under it.
    """

    kind: Literal["outcome"] = "outcome"
    higher_is_better = True

    def __init__(
        self,
        engine: Engine,
        *,
        samples: int = 1,
        max_tokens: int = 256,
        temperature: float = 0.7,
        template: str = VERIFY_TEMPLATE,
        name: str = "verify",
    ) -> None:
        self.engine, self.samples, self.max_tokens = engine, samples, max_tokens
        self.temperature, self.template, self.name = temperature, template, name

    async def score(self, problem: Problem, candidates: Sequence[Candidate]) -> list[float]:
        """The share of verdicts saying correct (a check without a verdict counts as not correct)."""
        requests = [
            GenRequest(
                judge_messages(self.template, problem, c),
                n=self.samples,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
            )
            for c in candidates
        ]
        results = await asyncio.gather(*(self.engine.generate(r) for r in requests))
        return [sum(parse_verdict(t) is True for t in r.texts) / self.samples for r in results]


def _normalised(lp_yes: float, lp_no: float) -> float:
    top = max(lp_yes, lp_no)
    if top == -math.inf:
        return 0.5
    a, b = math.exp(lp_yes - top), math.exp(lp_no - top)
    return a / (a + b)
