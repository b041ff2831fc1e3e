"""What flows along the DAG's edges: one :class:`State` per problem, and the operators' :class:`Context`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from archon.core.generation import Engine
from archon.core.problem import Problem
from archon.core.verification import Candidate, ProcessVerifier, Verifier


@dataclass(frozen=True, slots=True)
class State:
    """A problem, its retrieved context, its candidates and a trace of what was done (never mutated)."""

    problem: Problem
    candidates: tuple[Candidate, ...] = ()
    context: tuple[str, ...] = ()
    trace: tuple[dict[str, Any], ...] = ()

    def with_candidates(self, candidates: Sequence[Candidate], **event: Any) -> State:
        """A new state with ``candidates`` and one more trace event."""
        return replace(self, candidates=tuple(candidates), trace=(*self.trace, event) if event else self.trace)

    @staticmethod
    def merge(states: Sequence[State]) -> State:
        """The union of several branches' candidates and traces (same problem)."""
        first = states[0]
        cands = tuple(c for s in states for c in s.candidates)
        ctx = tuple(dict.fromkeys(x for s in states for x in s.context))
        trace = tuple(e for s in states for e in s.trace)
        return State(first.problem, cands, ctx, trace)


class Context(Protocol):
    """What an operator may use for one (node, problem): charged engines, verifiers, a seed.

    Verifiers declare their ``kind`` (``outcome`` or ``process``); an operator that needs step scores
    asks for :meth:`process_verifier`, which refuses an outcome verifier in one line naming both.
    """

    node: str
    seed: int

    def engine(self, name: str) -> Engine:
        """The engine declared as ``name``, every call charged to this node and problem."""
        ...

    def verifier(self, name: str) -> Verifier:
        """The verifier declared as ``name`` (model calls charged to this node and problem)."""
        ...

    def process_verifier(self, name: str) -> ProcessVerifier:
        """The verifier declared as ``name``, which must score steps (``kind == "process"``)."""
        ...
