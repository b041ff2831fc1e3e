"""The unit of work: one question with its optional reference answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]
"""A chat message: ``{"role": "user" | "assistant" | "system", "content": str}``."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem of a data set.

    Args:
        id: Unique identifier within its data set.
        question: The question, as plain text or as a list of chat messages.
        answer: The reference final answer, or ``None`` when unknown.
        tests: Unit tests, for code problems (``None`` otherwise).
        metadata: Free-form facts about the problem (difficulty, gold document ids, ...).

    Example:
        >>> p = Problem(id="a1", question="Evaluate left to right: 2 + 3", answer="5")
        >>> p.messages()
        [{'role': 'user', 'content': 'Evaluate left to right: 2 + 3'}]
    """

    id: str
    question: str | list[Message]
    answer: str | None = None
    tests: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def messages(self) -> list[Message]:
        """The question as chat messages (a plain-text question becomes one user turn)."""
        if isinstance(self.question, str):
            return [{"role": "user", "content": self.question}]
        return [dict(m) for m in self.question]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict in the documented JSONL schema."""
        out: dict[str, Any] = {"id": self.id, "question": self.question}
        if self.answer is not None:
            out["answer"] = self.answer
        if self.tests is not None:
            out["tests"] = self.tests
        if self.metadata:
            out["metadata"] = self.metadata
        return out
