"""Evaluation metrics that are pure math: unbiased pass@k, voting, and how well a verifier selects."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al., 2021).

    ``1 - C(n-c, k) / C(n, k)``, computed stably as ``1 - prod_{i=n-c+1..n} (1 - k/i)``.

    Example:
        >>> pass_at_k(4, 1, 1)
        0.25
        >>> pass_at_k(4, 1, 4)
        1.0
    """
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def tally(answers: Sequence[Hashable | None], weights: Sequence[float] | None = None) -> dict[Hashable, float]:
    """Votes per answer, in the order answers are first seen: one each, or the answer's summed ``weights``.

    ``None`` answers do not vote, nor do ``nan`` weights.

    Example:
        >>> tally(["1", None, "2", "1"]), tally(["1", "2", "2"], [0.9, 0.5, float("nan")])
        ({'1': 2.0, '2': 1.0}, {'1': 0.9, '2': 0.5})
    """
    if weights is not None and len(weights) != len(answers):
        raise ValueError(f"tally: {len(answers)} answers but {len(weights)} weights")
    out: dict[Hashable, float] = {}
    for i, a in enumerate(answers):
        w = 1.0 if weights is None else float(weights[i])
        if a is not None and not math.isnan(w):
            out[a] = out.get(a, 0.0) + w
    return out


def majority(answers: Sequence[Hashable | None], weights: Sequence[float] | None = None) -> Hashable | None:
    """The answer with the most votes (:func:`tally`; with ``weights``, a weighted vote); ties: seen first.

    Example:
        >>> majority(["1", "2", "2", None]), majority(["1", "2", "2"], [0.9, 0.4, 0.4])
        ('2', '1')
    """
    votes = tally(answers, weights)
    if not votes:
        return None
    top = max(votes.values())
    return next(a for a, v in votes.items() if v == top)


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random negative.

    Ties count one half (the Mann-Whitney U statistic). Raises ``ValueError``
    when either class is empty.

    Example:
        >>> roc_auc([0.9, 0.2, 0.6], [True, False, False])
        1.0
    """
    if len(scores) != len(labels):
        raise ValueError(f"roc_auc: {len(scores)} scores but {len(labels)} labels")
    pos = sum(1 for x in labels if x)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        raise ValueError("roc_auc: need at least one positive and one negative label")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum = 0.0
    i = 0
    while i < len(order):  # average ranks over ties
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1
        rank_sum += sum(avg for k in range(i, j + 1) if labels[order[k]])
        i = j + 1
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def within_problem_auc(groups: Sequence[tuple[Sequence[float], Sequence[bool]]]) -> float:
    """Pairwise AUC over pairs of one correct and one wrong solution *of the same problem*.

    ``groups`` holds, per problem, its solutions' scores and correctness. Every (correct, wrong)
    pair within a problem counts once (ties one half), pooled over problems; problems whose
    solutions are all right or all wrong contribute no pair. This is what a verifier used for
    selection must be good at; an AUC over all solutions pooled also rewards telling easy problems
    from hard ones. Raises ``ValueError`` when no problem has a pair.

    Example:
        >>> within_problem_auc([([0.9, 0.2], [True, False]), ([0.1, 0.5, 0.5], [True, False, True])])
        0.5
    """
    wins = pairs = 0.0
    for scores, labels in groups:
        pos = [s for s, ok in zip(scores, labels, strict=True) if ok]
        neg = [s for s, ok in zip(scores, labels, strict=True) if not ok]
        for p in pos:
            for q in neg:
                wins += 1.0 if p > q else 0.5 if p == q else 0.0
        pairs += len(pos) * len(neg)
    if not pairs:
        raise ValueError("within_problem_auc: no problem has both a correct and a wrong solution")
    return wins / pairs


def best_of(answers: Sequence[Hashable | None], scores: Sequence[float]) -> Hashable | None:
    """The answer of the highest-scoring solution (ties: the first; ``nan`` scores lose).

    Example:
        >>> best_of(["1", "2", "3"], [0.2, 0.9, 0.9])
        '2'
    """
    valid = [i for i, s in enumerate(scores) if not math.isnan(s)]
    if not valid:
        return answers[0] if answers else None
    return answers[max(valid, key=lambda i: (scores[i], -i))]
