r"""Strict parsers of the LLM operators' outputs: a value, or :class:`MalformedOutput` saying why not.

Example:
    >>> parse_ranking("I compared them.\nRanking: [2] > [3] > [1]", 3)
    [1, 2, 0]
    >>> parse_ranking("Ranking: [2] > [2] > [1]", 3)
    Traceback (most recent call last):
    ...
    archon.llm.parsing.MalformedOutput: the ranking names [2] twice
    >>> parse_choice("B is clearer.\nBetter: B")
    'B'
"""

from __future__ import annotations

import ast
import re

from verifiers.code import extract_code

_RANKING = re.compile(r"ranking\s*:\s*(.*)", re.IGNORECASE)
_ID = re.compile(r"\[(\d+)\]")
_CHOICE = re.compile(r"better\s*:\s*\**\s*(?:solution\s+)?([AB])\b", re.IGNORECASE)


class MalformedOutput(ValueError):
    """Model output that does not have the form the operator asked for (the message says how)."""


def parse_ranking(text: str, count: int) -> list[int]:
    """The 0-based order of a listwise ranking: the last ``Ranking:`` line, naming each of ``[1]..[count]`` once."""
    lines = [m.group(1) for m in map(_RANKING.search, text.splitlines()) if m]
    if not lines:
        raise MalformedOutput("no 'Ranking:' line")
    ids = [int(x) for x in _ID.findall(lines[-1])]
    if not ids:
        raise MalformedOutput("the 'Ranking:' line names no solution as [i]")
    seen: set[int] = set()
    for i in ids:
        if not 1 <= i <= count:
            raise MalformedOutput(f"the ranking names [{i}], not one of [1]..[{count}]")
        if i in seen:
            raise MalformedOutput(f"the ranking names [{i}] twice")
        seen.add(i)
    if len(ids) != count:
        missing = ", ".join(f"[{i}]" for i in range(1, count + 1) if i not in seen)
        raise MalformedOutput(f"the ranking leaves out {missing}")
    return [i - 1 for i in ids]


def parse_choice(text: str) -> str:
    """``"A"`` or ``"B"``: the last ``Better:`` line of a pairwise comparison."""
    found = _CHOICE.findall(text)
    if not found:
        raise MalformedOutput("no 'Better: A' or 'Better: B' line")
    return found[-1].upper()


def parse_critique(text: str) -> str:
    """The critique's text (a leading ``Critique:`` dropped); empty output is malformed."""
    body = re.sub(r"^\s*critique\s*:\s*", "", text, flags=re.IGNORECASE).strip()
    if not body:
        raise MalformedOutput("an empty critique")
    return body


def parse_tests(text: str, limit: int = 64) -> list[str]:
    r"""The top-level ``assert`` statements of generated test code, each as its own source, deduplicated.

    The code must parse as Python; at most ``limit`` asserts are kept.

    Example:
        >>> parse_tests("```python\nassert f(1) == 2\nassert f(0) == 1\nassert f(1) == 2\n```")
        ['assert f(1) == 2', 'assert f(0) == 1']
    """
    code = extract_code(text)
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise MalformedOutput(f"the tests are not valid Python (line {exc.lineno}: {exc.msg})") from None
    tests: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assert):
            source = ast.unparse(node)
            if source not in tests:
                tests.append(source)
    if not tests:
        raise MalformedOutput("no top-level assert statement")
    return tests[:limit]
