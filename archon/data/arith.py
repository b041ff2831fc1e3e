"""The arith world: multi-step arithmetic evaluated left to right, one step per line.

A problem is a start value and a chain of operations::

    Evaluate left to right: 47 + 38 * 3 - 59

and its reference solution writes one operation per line, then the answer::

    47 + 38 = 85
    85 * 3 = 255
    255 - 59 = 196
    #### 196

Difficulty varies per problem by the number of operations (``steps``, 1 to 7)
and the size of the operands (``digits``, 1 or 2); both are recorded in the
problem's metadata. Multiplication is by a single digit, subtraction never goes
below zero, and running values stay at most :data:`MAX_VALUE`, so every step is
a short, checkable computation that a small character-level model can learn,
imperfectly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from archon.core import Problem

PREFIX = "Evaluate left to right: "
ANSWER_MARK = "#### "
MAX_VALUE = 999
OPS = ("+", "-", "*")
STEPS = (1, 7)
"""Inclusive range of the number of operations of a problem."""
DIGITS = (1, 2)
"""Inclusive range of the number of digits of the operands."""


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


def random_chain(rng: random.Random, steps: int, digits: int) -> Chain:
    """Draw a chain with ``steps`` operations on numbers of up to ``digits`` digits."""
    hi = 10**digits - 1
    lo = 10 ** (digits - 1) if digits > 1 else 1
    value = rng.randint(lo, hi)
    start = value
    ops: list[str] = []
    operands: list[int] = []
    for _ in range(steps):
        choices = ["+", "-", "*"]
        op = rng.choice(choices)
        if op == "*" and (value * 2 > MAX_VALUE or value == 0):
            op = rng.choice(["+", "-"])
        if op == "-" and value < 1:
            op = "+"
        if op == "+" and value + lo > MAX_VALUE:
            op = "-"
        if op == "*":
            x = rng.randint(2, min(9, MAX_VALUE // value))
        elif op == "-":
            x = rng.randint(min(lo, value), min(hi, value))
        else:
            x = rng.randint(lo, min(hi, MAX_VALUE - value))
        ops.append(op)
        operands.append(x)
        value = apply(value, op, x)
    return Chain(start, tuple(ops), tuple(operands))


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


def difficulty(steps: int, digits: int) -> int:
    """A difficulty level: the number of operations, counting a 2-digit operation as two."""
    return steps * digits


def generate(
    count: int,
    *,
    seed: int,
    steps: tuple[int, int] = STEPS,
    digits: tuple[int, int] = DIGITS,
    exclude: set[str] | None = None,
    id_prefix: str = "arith",
) -> Iterator[Problem]:
    """Yield ``count`` distinct problems, deterministically for a seed.

    Args:
        count: Number of problems.
        seed: Random seed; the same seed gives the same problems.
        steps: Inclusive range of the number of operations.
        digits: Inclusive range of the number of digits of the numbers.
        exclude: Question texts never to produce (keeps splits disjoint).
        id_prefix: Prefix of the problem ids.
    """
    rng = random.Random(seed)
    seen = set(exclude or ())
    made = 0
    while made < count:
        s = rng.randint(*steps)
        d = rng.randint(*digits)
        chain = random_chain(rng, s, d)
        q = chain.question
        if q in seen:
            continue
        seen.add(q)
        yield Problem(
            id=f"{id_prefix}-{made:05d}",
            question=q,
            answer=str(chain.answer),
            metadata={
                "steps": s,
                "digits": d,
                "difficulty": difficulty(s, d),
                "solution": chain.solution,
            },
        )
        made += 1
