"""The judgement operators on their own: score, select, vote (pure logic, with stand-in verifiers)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

from archon.core import Candidate, Problem, State
from verifiers.ops import ScoreParams, SelectParams, VoteParams, majority, rank, score, select, vote

PROBLEM = Problem("p", "2 + 2?", answer="4")


class Lengths:
    """An outcome verifier whose score is the text's length; lower is better."""

    name, kind, higher_is_better = "len", "outcome", False

    async def score(self, problem: Problem, candidates: Sequence[Candidate]) -> list[float]:
        return [float(len(c.text)) for c in candidates]


class Steps:
    """A process verifier scoring each step 1.0, except steps containing 'x' (0.0)."""

    name, kind, higher_is_better = "steps", "process", True

    async def score_steps(self, problem: Problem, candidates: Sequence[Candidate]) -> list[list[float]]:
        return [[0.0 if "x" in s else 1.0 for s in c.steps()] for c in candidates]

    async def score(self, problem: Problem, candidates: Sequence[Candidate]) -> list[float]:
        raise AssertionError("score() of a process verifier is not what the score op uses")


class Ctx:
    node, seed = "n", 0

    def __init__(self, **verifiers: object) -> None:
        self.verifiers = verifiers

    def verifier(self, name: str) -> object:
        return self.verifiers[name]


def run(coro):
    return asyncio.run(coro)


def test_select_respects_a_lower_is_better_verifier_and_puts_unscored_last():
    cands = [Candidate("ccc", scores={"len": 3}), Candidate("a"), Candidate("bb", scores={"len": 2})]
    ctx = Ctx(len=Lengths())
    out = run(select(ctx, State(PROBLEM, tuple(cands)), SelectParams(by="len", k=2)))
    assert [c.text for c in out.candidates] == ["bb", "ccc"]
    assert out.trace[-1] == {"node": "n", "op": "select", "kept": 2}
    nan_last = rank(
        [Candidate("n", scores={"len": math.nan}), Candidate("z", scores={"len": 9})], "len", higher_is_better=False
    )
    assert [c.text for c in nan_last] == ["z", "n"]


def test_score_uses_the_declared_kind_and_the_nodes_aggregation():
    cands = (Candidate("1\n2\n#### 3"), Candidate("1\nx\n#### 3"))
    ctx = Ctx(steps=Steps(), len=Lengths())
    by_min = run(score(ctx, State(PROBLEM, cands), ScoreParams(verifier="steps", aggregation="min")))
    by_mean = run(score(ctx, State(PROBLEM, cands), ScoreParams(verifier="steps", aggregation="mean")))
    assert [c.scores["steps"] for c in by_min.candidates] == [1.0, 0.0]
    assert [c.scores["steps"] for c in by_mean.candidates] == [1.0, 2 / 3]
    outcome = run(score(ctx, State(PROBLEM, cands), ScoreParams(verifier="len")))
    assert [c.scores["len"] for c in outcome.candidates] == [10.0, 10.0]


def test_empty_candidate_lists_pass_through_every_judgement_op():
    ctx = Ctx(steps=Steps(), len=Lengths())
    empty = State(PROBLEM)
    assert run(score(ctx, empty, ScoreParams(verifier="steps"))).candidates == ()
    assert run(select(ctx, empty, SelectParams(by="len"))).candidates == ()
    assert run(vote(ctx, empty, VoteParams())).candidates == ()
    assert run(vote(ctx, empty, VoteParams(weight="len"))).candidates == ()


def test_weighted_vote_ties_go_to_the_answer_seen_first_and_nan_does_not_vote():
    cands = [
        Candidate("a", answer="5", scores={"v": 0.5}),
        Candidate("b", answer="7", scores={"v": 0.25}),
        Candidate("c", answer="7", scores={"v": 0.25}),
        Candidate("d", answer="9", scores={"v": math.nan}),
    ]
    tie = majority(cands, weight="v")
    assert tie[0].text == "a" and tie[0].scores["vote"] == 0.5  # 0.5 against 0.5: the first answer wins
    plain = majority(cands)
    assert plain[0].text == "b" and plain[0].scores["vote"] == 0.5  # two votes of four
    heavier = majority([*cands, Candidate("e", answer="7", scores={"v": 0.01})], weight="v")
    assert heavier[0].text == "b"
    assert [c.text for c in heavier[1:]] == ["a", "c", "d", "e"]  # the rest keep their order


def test_vote_normalises_answers_and_ignores_candidates_without_one():
    cands = [Candidate("x"), Candidate("y", answer="4.0"), Candidate("z", answer="4"), Candidate("w", answer="5")]
    out = majority(cands)
    assert out[0].text == "y" and out[0].scores["vote"] == 2 / 3
    assert majority([Candidate("x"), Candidate("y")])[0].text == "x"  # nobody voted: unchanged
