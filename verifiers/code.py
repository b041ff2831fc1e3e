r"""Code problems: the program a completion stands for, and running it against tests in the sandbox.

A code problem (HumanEval's form) has the function's signature and docstring as ``metadata["prompt"]``,
its name as ``metadata["entry_point"]`` and a ``def check(candidate)`` as ``tests``. A model's
completion is either the function's body (it continues the prompt) or a whole program that defines
the function, fenced in a ```` ```python ```` block or not: :func:`program` tells which.

:func:`run_asserts` runs one program against many generated ``assert`` statements in ONE sandboxed
child (:func:`verifiers.sandbox.run_unit_tests`) and says which passed, each under its own time limit.
The results come back on the child's standard output after a random token; the tests are model output
about model output, not a security boundary (the sandbox is).

Example:
    >>> from archon.core import Problem
    >>> p = Problem("add", "...", tests="def check(f):\n    assert f(2, 3) == 5\n",
    ...             metadata={"prompt": "def add(a, b):\n", "entry_point": "add"})
    >>> program(p, "    return a + b\n")
    'def add(a, b):\n    return a + b\n'
    >>> passes(p, "```python\ndef add(a, b):\n    return a + b\n```").passed
    True
    >>> run_asserts("def add(a, b):\n    return a - b\n", ["assert add(2, 2) == 0", "assert add(2, 3) == 5"]).passed
    [True, False]
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from archon.core import Problem
from verifiers.sandbox import TestOutcome, run_unit_tests

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str:
    """The Python code in model output: its fenced blocks joined, or the whole text when it has none."""
    blocks = _FENCE.findall(text)
    return "\n".join(blocks) if blocks else text


def program(problem: Problem, text: str) -> str:
    """The program a completion stands for: the code itself when it defines the entry point, else prompt + code."""
    code = extract_code(text)
    entry = problem.metadata.get("entry_point")
    prompt = problem.metadata.get("prompt")
    if entry and prompt and not re.search(rf"^\s*(async\s+)?def\s+{re.escape(entry)}\s*\(", code, re.MULTILINE):
        return prompt + code
    return code


def passes(problem: Problem, text: str, *, timeout: float = 10.0) -> TestOutcome:
    """Run the completion's program against the problem's own tests (``check(entry_point)``)."""
    if problem.tests is None:
        raise ValueError(f"problem {problem.id!r} has no tests")
    return run_unit_tests(program(problem, text), problem.tests, timeout=timeout,
                          entry_point=problem.metadata.get("entry_point"))  # fmt: skip


@dataclass(frozen=True)
class AssertResults:
    """Which asserts a program passed, and the sandbox run's one-line reason (``passed`` when it completed)."""

    passed: list[bool]
    reason: str


_HARNESS = """
import signal as _archon_signal, sys as _archon_sys

def _archon_alarm(signum, frame):
    raise TimeoutError("the test took longer than %(per_test)s s")

_archon_signal.signal(_archon_signal.SIGALRM, _archon_alarm)
for _archon_i, _archon_src in enumerate(%(tests)s):
    try:
        _archon_signal.setitimer(_archon_signal.ITIMER_REAL, %(per_test)s)
        exec(compile(_archon_src, "<assert>", "exec"), globals())
        _archon_ok = 1
    except BaseException:
        _archon_ok = 0
    finally:
        _archon_signal.setitimer(_archon_signal.ITIMER_REAL, 0)
    _archon_sys.stdout.write("\\n%(token)s%%d:%%d\\n" %% (_archon_i, _archon_ok))
    _archon_sys.stdout.flush()
"""


def run_asserts(code: str, tests: list[str], *, per_test: float = 2.0, timeout: float = 20.0) -> AssertResults:
    """Run ``code`` once, then each assert of ``tests`` on it (each under ``per_test`` seconds), in one child.

    Each result is reported as soon as its test ends, so when the child is stopped (a forbidden call, the
    whole run's ``timeout``) the tests before pass or fail as they did and the rest count as failed;
    a program that does not load passes none.
    """
    if not tests:
        return AssertResults([], "no tests")
    token = "ARCHON-RESULTS-" + secrets.token_hex(8) + ":"
    harness = _HARNESS % {"tests": repr(list(tests)), "per_test": float(per_test), "token": token}
    outcome = run_unit_tests(code, harness, timeout=timeout)
    results = [False] * len(tests)
    reported = 0
    for line in outcome.stdout.splitlines():
        if line.startswith(token):
            index, _, ok = line[len(token) :].partition(":")
            if index.isdigit() and int(index) < len(tests):
                results[int(index)] = ok == "1"
                reported += 1
    reason = outcome.reason if outcome.passed or reported < len(tests) else "passed"
    return AssertResults(results, reason)
