"""The arith world's exact checker: parse a question, compute its steps, find the first wrong one.

The arith data set (:mod:`archon.data.arith`) builds its problems from these definitions; verifiers
use them to label solutions step by step (:class:`verifiers.steps.ArithStepChecker`).
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "Evaluate left to right: "
ANSWER_MARK = "#### "
OPS = ("+", "-", "*")


@dataclass(frozen=True, slots=True)
class Chain:
    """A start value and its operations, ``ops[i]`` applied with ``operands[i]``."""

    start: int
    ops: tuple[str, ...]
    operands: tuple[int, ...]

    @property
    def question(self) -> str:
        """The question text."""
        parts = [str(self.start)]
        for op, x in zip(self.ops, self.operands, strict=True):
            parts.append(f"{op} {x}")
        return PREFIX + " ".join(parts)

    def values(self) -> list[int]:
        """The running values: the start, then the value after each operation."""
        vals = [self.start]
        for op, x in zip(self.ops, self.operands, strict=True):
            vals.append(apply(vals[-1], op, x))
        return vals

    @property
    def answer(self) -> int:
        """The final value."""
        return self.values()[-1]

    def step_lines(self) -> list[str]:
        """The reference solution's lines, the final ``#### answer`` line included."""
        vals = self.values()
        lines = [
            f"{vals[i]} {op} {x} = {vals[i + 1]}" for i, (op, x) in enumerate(zip(self.ops, self.operands, strict=True))
        ]
        return [*lines, f"{ANSWER_MARK}{vals[-1]}"]

    @property
    def solution(self) -> str:
        """The reference solution text."""
        return "\n".join(self.step_lines())


def apply(value: int, op: str, x: int) -> int:
    """Apply one operation."""
    if op == "+":
        return value + x
    if op == "-":
        return value - x
    if op == "*":
        return value * x
    raise ValueError(f"unknown operation {op!r}")


def parse_question(question: str) -> Chain:
    """Recover the chain from a question text (raises ``ValueError`` if it is not one)."""
    if not question.startswith(PREFIX):
        raise ValueError(f"not an arith question: {question[:40]!r}")
    tokens = question[len(PREFIX) :].split()
    if len(tokens) % 2 != 1:
        raise ValueError(f"malformed arith question: {question!r}")
    start = int(tokens[0])
    ops = tuple(tokens[1::2])
    if any(op not in OPS for op in ops):
        raise ValueError(f"unknown operation in {question!r}")
    return Chain(start, ops, tuple(int(t) for t in tokens[2::2]))


def first_wrong_step(question: str, solution: str) -> int | None:
    """Index (0-based) of the first wrong line of ``solution``, or ``None`` if all are right.

    Lines are compared with the reference lines after whitespace normalisation;
    the final ``#### answer`` line counts as a step. A missing line is wrong at
    the index where it is missing; extra lines after a correct answer are wrong.
    """
    ref = parse_question(question).step_lines()
    got = [" ".join(line.split()) for line in solution.strip().split("\n")]
    for i, want in enumerate(ref):
        if i >= len(got) or got[i] != want:
            return i
    if len(got) > len(ref):
        return len(ref)
    return None


def step_labels(question: str, solution: str) -> list[bool]:
    """Prefix-correctness of each line of ``solution``: True until the first wrong line."""
    lines = solution.strip().split("\n")
    bad = first_wrong_step(question, solution)
    return [bad is None or i < bad for i in range(len(lines))]
