"""The prompt templates of the LLM operators (each overridable with the operator's ``template`` param).

Fields: ``{question}`` (the problem's last user turn), ``{candidates}`` (numbered ``[1]``, ``[2]`` ...,
each followed by its critique when a ``critique`` node wrote one), ``{solution}`` (one candidate),
``{a}`` and ``{b}`` (the two candidates of a pairwise comparison), ``{count}`` (how many candidates).
"""

from __future__ import annotations

FUSE = (
    "{question}\n\nHere are {count} proposed solutions, some of which may be wrong:\n\n{candidates}\n\n"
    "Using what is right in them and correcting what is wrong, write one complete solution. "
    "End with a line '#### <answer>'."
)
RANK_LISTWISE = (
    "{question}\n\nHere are {count} proposed solutions:\n\n{candidates}\n\n"
    "Rank all of them from best to worst. Answer with one line in the form "
    "'Ranking: [2] > [1] > [3]' that names every solution exactly once."
)
RANK_PAIRWISE = (
    "{question}\n\nSolution A:\n{a}\n\nSolution B:\n{b}\n\n"
    "Which solution is better? Answer with one line: 'Better: A' or 'Better: B'."
)
CRITIQUE = (
    "{question}\n\nProposed solution:\n{solution}\n\n"
    "Write a short critique of this solution: its strengths, and every mistake you find."
)
VERIFY = (
    "{question}\n\nProposed solution:\n{solution}\n\n"
    "Check the solution step by step. Then write 'Verdict: correct' or 'Verdict: incorrect' on the last line."
)
UNIT_TESTS = (
    "Write unit tests for the following Python function as plain assert statements, one per line, "
    "in a ```python block. Do not repeat the function.\n\n```python\n{question}\n```"
)

TEMPLATES: dict[str, str] = {
    "fuse": FUSE,
    "rank_listwise": RANK_LISTWISE,
    "rank_pairwise": RANK_PAIRWISE,
    "critique": CRITIQUE,
    "verify": VERIFY,
    "unit_test_gen": UNIT_TESTS,
}
"""Every default template by name (``rank`` has one per mode)."""
