"""Candidates and the two verifier protocols: outcome scoring and process (step) scoring.

A :class:`Candidate` is one proposed solution. An :class:`OutcomeVerifier` gives each candidate one
score; a :class:`ProcessVerifier` gives a score per step of a partial or whole solution, which
:func:`aggregate` reduces (``last``, ``min``, ``prod`` or ``mean``). Every verifier declares its
``kind`` (``"outcome"`` or ``"process"``: operators read it, never probe methods) and whether a higher
score is better; scores are stored on the candidate under the verifier's name
(:meth:`Candidate.with_score`), never mutated in place. A verifier whose model calls cost compute is
:class:`Chargeable`: the runtime hands each (node, problem) a copy charged to its ledger scope.
Verifier kinds are built from a :class:`VerifierDecl` by the builder registered under their kind.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from archon.core.problem import Problem

if TYPE_CHECKING:
    from archon.core.generation import Engine
    from budgets import Ledger, Scope
    from budgets.hardware import HardwareProfile

Aggregation = Literal["last", "min", "prod", "mean"]
AGGREGATIONS: tuple[Aggregation, ...] = ("last", "min", "prod", "mean")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One proposed solution of a problem.

    Args:
        text: The solution text.
        answer: Its extracted final answer (``None`` when it has none).
        scores: Scores by verifier name.
        logprobs: Per-token log-probabilities of the text under the model that wrote it.
        entropies: Per-token entropies of that model's next-token distributions.
        model: The model that wrote it.
        parent: The candidate it continues (a beam's or particle's previous state).
        metadata: Anything else (finish reason, cost, ...).
    """

    text: str
    answer: str | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    logprobs: tuple[float, ...] | None = None
    entropies: tuple[float, ...] | None = None
    model: str = ""
    parent: Candidate | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def steps(self, delimiter: str = "\n") -> list[str]:
        r"""The solution's steps: its text split at ``delimiter``, empty steps dropped.

        Example:
            >>> Candidate("5 + 8 = 13\n13 - 8 = 5\n#### 5").steps()
            ['5 + 8 = 13', '13 - 8 = 5', '#### 5']
        """
        return [s for s in self.text.split(delimiter) if s.strip()]

    def with_score(self, name: str, value: float) -> Candidate:
        """A copy with ``scores[name] = value``."""
        return replace(self, scores={**self.scores, name: float(value)})

    def with_answer(self, answer: str | None) -> Candidate:
        """A copy with its extracted answer set."""
        return replace(self, answer=answer)


VerifierKind = Literal["outcome", "process"]


@runtime_checkable
class OutcomeVerifier(Protocol):
    """Scores whole candidates: one score each (``kind == "outcome"``)."""

    name: str
    kind: VerifierKind
    higher_is_better: bool

    async def score(self, problem: Problem, candidates: Sequence[Candidate]) -> list[float]:
        """One score per candidate, in order."""
        ...


@runtime_checkable
class ProcessVerifier(Protocol):
    """Scores the steps of (partial or whole) candidates: one score per step (``kind == "process"``).

    It scores whole candidates too (``score``: its own reduction of the steps).
    """

    name: str
    kind: VerifierKind
    higher_is_better: bool

    async def score_steps(self, problem: Problem, candidates: Sequence[Candidate]) -> list[list[float]]:
        """For each candidate, one score per step, in order."""
        ...

    async def score(self, problem: Problem, candidates: Sequence[Candidate]) -> list[float]:
        """One score per candidate, in order."""
        ...


Verifier = OutcomeVerifier | ProcessVerifier
"""Either kind of verifier; its ``kind`` says which."""


@runtime_checkable
class Chargeable(Protocol):
    """A verifier whose model calls are charged: ``charged`` gives the copy that charges one ledger scope."""

    def charged(self, ledger: Ledger, scope: Scope, *, hardware: HardwareProfile | None = None) -> Verifier:
        """The same verifier, every model call charged to ``scope`` of ``ledger`` (latency on ``hardware``)."""
        ...


@dataclass(frozen=True, slots=True)
class VerifierDecl:
    """What a verifier builder gets: the declared name, model, engine (charged to the caller) and options."""

    name: str
    model: str | None = None
    engine: Engine | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def aggregate(step_scores: Sequence[float], how: Aggregation = "min") -> float:
    """Reduce a candidate's step scores to one (``nan`` when it has no step).

    Example:
        >>> [aggregate([0.9, 0.5, 0.8], how) for how in AGGREGATIONS]
        [0.8, 0.5, 0.36000000000000004, 0.7333333333333334]
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {how!r}")
    if not step_scores:
        return math.nan
    if how == "last":
        return float(step_scores[-1])
    if how == "min":
        return float(min(step_scores))
    if how == "prod":
        return float(math.prod(step_scores))
    return float(sum(step_scores) / len(step_scores))


async def score_outcomes(
    verifier: OutcomeVerifier, problem: Problem, candidates: Sequence[Candidate]
) -> list[Candidate]:
    """The candidates with the verifier's scores stored under its name."""
    scores = await verifier.score(problem, candidates)
    return [c.with_score(verifier.name, s) for c, s in zip(candidates, scores, strict=True)]


async def score_processes(
    verifier: ProcessVerifier, problem: Problem, candidates: Sequence[Candidate], how: Aggregation = "min"
) -> list[Candidate]:
    """The candidates with the verifier's aggregated step scores stored under its name."""
    steps = await verifier.score_steps(problem, candidates)
    return [c.with_score(verifier.name, aggregate(s, how)) for c, s in zip(candidates, steps, strict=True)]
