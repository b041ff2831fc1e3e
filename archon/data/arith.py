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

from archon.core import Problem
from verifiers.arith import ANSWER_MARK, OPS, PREFIX, Chain, apply, first_wrong_step, parse_question, step_labels

__all__ = [
    "ANSWER_MARK",
    "DIGITS",
    "MAX_VALUE",
    "OPS",
    "PREFIX",
    "STEPS",
    "Chain",
    "apply",
    "difficulty",
    "first_wrong_step",
    "generate",
    "parse_question",
    "random_chain",
    "step_labels",
]

MAX_VALUE = 999
STEPS = (1, 7)
"""Inclusive range of the number of operations of a problem."""
DIGITS = (1, 2)
"""Inclusive range of the number of digits of the operands."""


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
