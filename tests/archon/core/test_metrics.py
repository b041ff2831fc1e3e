import itertools
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archon.core.metrics import majority, pass_at_k, roc_auc


@given(st.integers(1, 60), st.data())
def test_pass_at_k_equals_the_combinatorial_formula(n, draw):
    c = draw.draw(st.integers(0, n))
    k = draw.draw(st.integers(1, n))
    expected = 1 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(4, 1, 5)


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=30))
def test_roc_auc_equals_the_pairwise_definition(pairs):
    scores = [float(s) for s, _ in pairs]
    labels = [lab for _, lab in pairs]
    pos = [s for s, lab in zip(scores, labels, strict=True) if lab]
    neg = [s for s, lab in zip(scores, labels, strict=True) if not lab]
    if not pos or not neg:
        with pytest.raises(ValueError):
            roc_auc(scores, labels)
        return
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    assert roc_auc(scores, labels) == pytest.approx(wins / (len(pos) * len(neg)))


def test_majority_ignores_missing_answers_and_breaks_ties_by_first_seen():
    assert majority([None, "3", "4", "4", None, None]) == "4"
    assert majority(["5", "6", "6", "5"]) == "5"
    assert majority([None, None]) is None


def test_within_problem_auc_counts_pairs_inside_each_problem_only():
    from archon.core.metrics import roc_auc, within_problem_auc

    one = ([0.9, 0.1, 0.5, 0.4], [True, False, True, False])
    assert within_problem_auc([one]) == roc_auc(*one)
    # a verifier that only tells easy problems from hard ones: perfect pooled AUC, chance within problems
    easy = ([0.9, 0.9], [True, False])
    hard = ([0.1, 0.1], [False, True])
    pooled = roc_auc([0.9, 0.9, 0.9, 0.1, 0.1], [True, True, True, False, False])
    assert pooled == 1.0 and within_problem_auc([easy, hard]) == 0.5
    # problems whose solutions are all right or all wrong add no pair
    assert within_problem_auc([one, ([0.0, 1.0], [True, True]), ([0.3], [False])]) == roc_auc(*one)
    with pytest.raises(ValueError, match="no problem"):
        within_problem_auc([([0.2, 0.3], [True, True])])


def test_best_of_and_weighted_majority_skip_missing_scores():
    from archon.core.metrics import best_of

    nan = float("nan")
    assert best_of(["a", "b", "c"], [nan, 0.2, 0.1]) == "b"
    assert best_of(["a", "b"], [nan, nan]) == "a" and best_of([], []) is None
    assert majority(["a", "b", "b", None], [0.6, 0.4, 0.3, 5.0]) == "b"
    assert majority(["a", "b"], [0.5, 0.5]) == "a"  # ties: the answer seen first
    assert majority([None], [1.0]) is None
