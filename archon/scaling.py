"""Coverage and majority voting as functions of the number of samples, from a run's records.

For every problem whose final candidates are ``n`` samples, unbiased pass@k (the chance that at least
one of ``k`` samples drawn from them is correct: coverage, Chen et al.) and majority@k (the chance that
the majority answer of ``k`` of them is correct, estimated over ``draws`` random subsets, ties to the
answer drawn first) for ``k = 1, 2, 4, ...`` up to ``n`` (and ``n`` itself); each figure is averaged
over the graded problems with at least ``k`` samples. This is the curve of "Large Language Monkeys":
coverage keeps growing with samples while majority voting levels off. Code problems (graded by their
tests, no reference answer) have pass@k from each candidate's ``passed``, and no majority@k.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from archon.core.metrics import pass_at_k
from verifiers.answers import answers_equal, normalize_answer

DRAWS = 32
"""Random subsets per problem and k for majority@k."""


def ks_for(n: int) -> list[int]:
    """``1, 2, 4, ...`` up to ``n``, and ``n``.

    Example:
        >>> ks_for(12)
        [1, 2, 4, 8, 12]
    """
    out = []
    k = 1
    while k <= n:
        out.append(k)
        k *= 2
    if out and out[-1] != n:
        out.append(n)
    return out


def _majority_correct(
    keys: Sequence[str | None], right: dict[str, bool], k: int, rng: random.Random, draws: int
) -> float:
    n = len(keys)
    if k == 1:  # one sample: its own correctness, exactly
        return sum(right[key] for key in keys if key is not None) / n
    if k == n:
        draws = 1
    hits = 0.0
    for _ in range(draws):
        chosen = rng.sample(range(n), k) if k < n else list(range(n))
        counts: dict[str, int] = {}
        for i in chosen:
            if keys[i] is not None:
                counts[keys[i]] = counts.get(keys[i], 0) + 1  # type: ignore[index]
        if counts:
            top = max(counts.values())
            winner = next(key for key in counts if counts[key] == top)  # the first drawn among the tied
            hits += right[winner]
    return hits / draws


def curves(records: Sequence[dict[str, Any]], *, draws: int = DRAWS, seed: int = 0) -> dict[str, Any] | None:
    """pass@k and majority@k over the records (``None`` when no graded problem has two samples or more).

    Example:
        >>> recs = [{"id": "a", "reference": "5", "candidates": [{"answer": "5"}, {"answer": "6"}]},
        ...         {"id": "b", "reference": "1", "candidates": [{"answer": "2"}, {"answer": "2"}]}]
        >>> c = curves(recs)
        >>> c["k"], c["pass@k"]
        ([1, 2], [0.25, 0.5])
    """
    graded = [r for r in records if r.get("candidates") and (r.get("reference") is not None or _code(r))]
    if not graded or max(len(r["candidates"]) for r in graded) < 2:
        return None
    ks = ks_for(max(len(r["candidates"]) for r in graded))
    sums = {k: [0.0, 0.0, 0] for k in ks}
    code = all(_code(r) for r in graded)
    for r in graded:
        n = len(r["candidates"])
        rng = random.Random(f"{seed}:{r['id']}")
        if _code(r):  # a code problem: each candidate passed its tests or not; no answer to vote on
            c = sum(bool(x.get("passed")) for x in r["candidates"])
            for k in ks:
                if k <= n:
                    sums[k][0] += pass_at_k(n, c, k)
                    sums[k][2] += 1
            continue
        answers = [c.get("answer") for c in r["candidates"]]
        keys = [None if a is None else normalize_answer(a) for a in answers]
        right = {key: answers_equal(a, r["reference"]) for key, a in zip(keys, answers, strict=True) if key is not None}
        c = sum(right[key] for key in keys if key is not None)
        for k in ks:
            if k > n:
                continue
            sums[k][0] += pass_at_k(n, c, k)
            sums[k][1] += _majority_correct(keys, right, k, rng, draws)
            sums[k][2] += 1
    used = [k for k in ks if sums[k][2]]
    return {
        "k": used,
        "pass@k": [sums[k][0] / sums[k][2] for k in used],
        "majority@k": None if code else [sums[k][1] / sums[k][2] for k in used],
        "problems": [sums[k][2] for k in used],
    }


def _code(record: dict[str, Any]) -> bool:
    """A code problem's record: graded by its tests (each candidate has ``passed``), no reference answer."""
    return record.get("reference") is None and all("passed" in c for c in record.get("candidates", ()))
