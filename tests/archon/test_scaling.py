"""Coverage (unbiased pass@k) and majority@k curves from a run's records."""

from __future__ import annotations

import random

from archon.core.metrics import pass_at_k
from archon.scaling import curves, ks_for


def records(seed: int = 0, problems: int = 40, n: int = 16) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(problems):
        p = rng.random()
        answers = ["7" if rng.random() < p else str(rng.choice([1, 2, 3])) for _ in range(n)]
        out.append({"id": f"p{i}", "reference": "7", "candidates": [{"answer": a} for a in answers]})
    return out


def test_pass_at_k_is_the_unbiased_estimator_and_majority_at_n_is_the_vote_of_all() -> None:
    recs = records()
    c = curves(recs)
    assert c is not None and c["k"] == ks_for(16) == [1, 2, 4, 8, 16] and c["problems"] == [40] * 5
    for k, value in zip(c["k"], c["pass@k"], strict=True):
        expected = sum(pass_at_k(16, sum(x["answer"] == "7" for x in r["candidates"]), k) for r in recs) / 40
        assert abs(value - expected) < 1e-12
    assert c["pass@k"] == sorted(c["pass@k"])  # coverage grows with samples
    assert c["majority@k"][0] == c["pass@k"][0]  # one sample: both are its correctness
    full = 0
    for r in recs:
        votes: dict[str, int] = {}
        for x in r["candidates"]:
            votes[x["answer"]] = votes.get(x["answer"], 0) + 1
        top = max(votes.values())
        full += next(a for a in votes if votes[a] == top) == "7"
    assert c["majority@k"][-1] == full / 40
    assert c["majority@k"][-1] < c["pass@k"][-1]  # voting levels off below coverage


def test_answers_are_compared_as_answers_and_runs_without_samples_have_no_curve() -> None:
    recs = [{"id": "a", "reference": "0.5", "candidates": [{"answer": "1/2"}, {"answer": None}, {"answer": "3"}]}]
    c = curves(recs)
    assert abs(c["pass@k"][0] - 1 / 3) < 1e-12 and c["k"] == [1, 2, 3]  # "1/2" is 0.5
    assert curves([{"id": "a", "reference": "1", "candidates": [{"answer": "1"}]}]) is None
    assert curves([{"id": "a", "reference": None, "candidates": [{"answer": "1"}, {"answer": "2"}]}]) is None
    mixed = [*records(problems=3, n=4), *records(seed=1, problems=2, n=8)]
    c = curves(mixed)
    assert c["k"] == [1, 2, 4, 8] and c["problems"] == [5, 5, 5, 2]
