"""What flows along the DAG's edges: one :class:`State` per problem, and the operators' :class:`Context`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from archon.core.generation import Engine
from archon.core.problem import Message, Problem
from archon.core.retrieval import Passage, Retriever
from archon.core.verification import Candidate, ProcessVerifier, Verifier

CONTEXT_TEMPLATE = "Context:\n{passages}\n\nQuestion: {question}"
"""How retrieved passages are placed before the question when no ``with_context`` node says otherwise
(the format the embedded models were trained on)."""


@dataclass(frozen=True, slots=True)
class State:
    """A problem, its retrieved context, its candidates and a trace of what was done (never mutated).

    ``context`` holds retrieved passages, best first; ``prompt`` is the prompt generation sends, when a
    node has written one (``with_context``): :meth:`messages` is what generation operators send.
    """

    problem: Problem
    candidates: tuple[Candidate, ...] = ()
    context: tuple[Passage, ...] = ()
    trace: tuple[dict[str, Any], ...] = ()
    prompt: tuple[Message, ...] | None = None

    def with_candidates(self, candidates: Sequence[Candidate], **event: Any) -> State:
        """A new state with ``candidates`` and one more trace event."""
        return replace(self, candidates=tuple(candidates), trace=(*self.trace, event) if event else self.trace)

    def messages(self) -> list[Message]:
        """The prompt to generate from.

        The written ``prompt``, else the question after the retrieved passages (:data:`CONTEXT_TEMPLATE`),
        else the problem's own messages.
        """
        if self.prompt is not None:
            return [dict(m) for m in self.prompt]
        messages = self.problem.messages()
        if self.context:
            passages = "\n".join(p.text for p in self.context)
            last = messages[-1]
            messages[-1] = {**last, "content": CONTEXT_TEMPLATE.format(passages=passages, question=last["content"])}
        return messages

    @staticmethod
    def merge(states: Sequence[State]) -> State:
        """The union of several branches' candidates, passages (by id, first kept) and traces (same problem).

        A written prompt is kept only when every branch wrote the same one.
        """
        first = states[0]
        cands = tuple(c for s in states for c in s.candidates)
        passages: dict[str, Passage] = {}
        for s in states:
            for p in s.context:
                passages.setdefault(p.id, p)
        trace = tuple(e for s in states for e in s.trace)
        prompt = first.prompt if all(s.prompt == first.prompt for s in states) else None
        return State(first.problem, cands, tuple(passages.values()), trace, prompt)


class Context(Protocol):
    """What an operator may use for one (node, problem): charged engines, verifiers, retrievers, a seed.

    Verifiers declare their ``kind`` (``outcome`` or ``process``); an operator that needs step scores
    asks for :meth:`process_verifier`, which refuses an outcome verifier in one line naming both.
    """

    node: str
    seed: int

    def retriever(self, name: str) -> Retriever:
        """The retriever declared as ``name``, every search charged to this node and problem."""
        ...

    def engine(self, name: str) -> Engine:
        """The engine declared as ``name``, every call charged to this node and problem."""
        ...

    def verifier(self, name: str) -> Verifier:
        """The verifier declared as ``name`` (model calls charged to this node and problem)."""
        ...

    def process_verifier(self, name: str) -> ProcessVerifier:
        """The verifier declared as ``name``, which must score steps (``kind == "process"``)."""
        ...
