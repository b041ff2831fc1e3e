"""The exact step checker of the arith world: which step of a solution is first wrong, if any."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from archon.core import Candidate, Problem
from verifiers.arith import first_wrong_step, parse_question


class ArithStepChecker:
    r"""Exact process and outcome verification of arith solutions.

    As a process verifier each step scores 1.0 while every step up to it is right and 0.0 from the
    first wrong one on; as an outcome verifier a solution scores 1.0 when no step is wrong. Steps are
    the solution's lines; the final ``#### answer`` line is a step.

    Example:
        >>> import asyncio
        >>> from archon.core import Candidate, Problem
        >>> p = Problem("a", "Evaluate left to right: 5 + 8 - 8", answer="5")
        >>> checker = ArithStepChecker()
        >>> checker.first_wrong(p, Candidate("5 + 8 = 13\n13 - 8 = 6\n#### 6"))
        1
        >>> asyncio.run(checker.score_steps(p, [Candidate("5 + 8 = 13\n13 - 8 = 6\n#### 6")]))
        [[1.0, 0.0, 0.0]]
    """

    name = "arith_steps"
    kind: Literal["process"] = "process"
    higher_is_better = True

    def __init__(self, *, delimiter: str = "\n") -> None:
        self.delimiter = delimiter

    def first_wrong(self, problem: Problem, candidate: Candidate) -> int | None:
        """Index of the first wrong step (0-based), or ``None`` when the solution is right."""
        question = problem.question if isinstance(problem.question, str) else problem.messages()[-1]["content"]
        parse_question(question)  # a clear ValueError for a problem of another world
        return first_wrong_step(question, self.delimiter.join(candidate.steps(self.delimiter)))

    async def score_steps(self, problem: Problem, candidates: Sequence[Candidate]) -> list[list[float]]:
        """1.0 for each step before the first wrong one, 0.0 from it on."""
        out = []
        for c in candidates:
            bad = self.first_wrong(problem, c)
            n = len(c.steps(self.delimiter))
            out.append([1.0 if bad is None or i < bad else 0.0 for i in range(n)])
        return out

    async def score(self, problem: Problem, candidates: Sequence[Candidate]) -> list[float]:
        """1.0 for a solution with no wrong step, else 0.0."""
        return [1.0 if self.first_wrong(problem, c) is None else 0.0 for c in candidates]
