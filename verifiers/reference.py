"""The oracle outcome verifier: 1.0 when a candidate's answer is the problem's reference answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from archon.core import Candidate, Problem
from verifiers.answers import answers_equal


class ReferenceAnswer:
    """An oracle outcome verifier: 1.0 when a candidate's answer equals the problem's reference.

    Example:
        >>> import asyncio
        >>> from archon.core import Candidate, Problem
        >>> asyncio.run(ReferenceAnswer().score(Problem("p", "2 + 2?", answer="4"), [Candidate("4", answer="4")]))
        [1.0]
    """

    kind: Literal["outcome"] = "outcome"
    higher_is_better = True

    def __init__(self, name: str = "answer") -> None:
        self.name = name

    async def score(self, problem: Problem, candidates: Sequence[Candidate]) -> list[float]:
        """1.0 for a right answer, 0.0 otherwise (and for a problem without a reference)."""
        return [float(problem.answer is not None and answers_equal(c.answer, problem.answer)) for c in candidates]
