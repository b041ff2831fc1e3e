"""Incremental PRM scoring: a partial solution's new step read after the cached KV of its prefix."""

from __future__ import annotations

import asyncio

import pytest

import archon.data
from archon.core import Candidate
from budgets import Ledger, Scope
from verifiers.reward import RewardModel


@pytest.fixture(scope="module")
def models():
    inc, scratch = RewardModel("tiny-prm", incremental=True), RewardModel("tiny-prm", incremental=False)
    yield inc, scratch
    inc.close()
    scratch.close()


@pytest.fixture(scope="module")
def problems():
    return archon.data.load("arith", "dev")[40:46]


def _variants(solution: str) -> list[list[str]]:
    """The reference solution's steps and two wrong versions (a result off by one, an operand copied wrong)."""
    steps = solution.split("\n")
    off = [s.replace(" = ", " = 1", 1) if " = " in s else s for s in steps]
    copied = [steps[0], *[("9" + s) if " = " in s else s for s in steps[1:]]]
    return [steps, off, copied]


def _partials(steps: list[str], k: int) -> Candidate:
    return Candidate("\n".join(steps[:k]), metadata={} if k == len(steps) else {"partial": True})


def _tokens(model: RewardModel, problem, cands) -> int:
    ledger = Ledger()
    asyncio.run(model.charged(ledger, Scope("prm", problem.id)).score_steps(problem, cands))
    return ledger.total().prompt_tokens


def test_step_by_step_scores_equal_scoring_from_scratch_with_far_fewer_tokens(models, problems) -> None:
    inc, scratch = models
    computed = {"incremental": 0, "scratch": 0}

    async def grow(problem):  # one problem's partial solutions, one step more each round, as a search asks
        variants = _variants(problem.metadata["solution"])
        worst = 0.0
        ledger_i, ledger_s = Ledger(), Ledger()  # one run: what it computed for the problem is credited
        for k in range(1, max(len(v) for v in variants) + 1):
            cands = [_partials(v, k) for v in variants if k <= len(v)]
            a = await inc.charged(ledger_i, Scope("prm", problem.id)).score_steps(problem, cands)
            b = await scratch.charged(ledger_s, Scope("prm", problem.id)).score_steps(problem, cands)
            assert [len(x) for x in a] == [len(x) for x in b]
            worst = max([worst, *(abs(x - y) for r, q in zip(a, b, strict=True) for x, y in zip(r, q, strict=True))])
        computed["incremental"] += ledger_i.total().prompt_tokens
        computed["scratch"] += ledger_s.total().prompt_tokens
        return worst

    async def main():  # problems concurrently: one forward pass mixes rows of different cached lengths
        return await asyncio.gather(*(grow(p) for p in problems))

    assert max(asyncio.run(main())) < 1e-5
    assert computed["scratch"] > 2 * computed["incremental"]


def test_candidates_of_one_problem_share_one_pass_of_the_question(models, problems) -> None:
    inc, scratch = RewardModel("tiny-prm", incremental=True), models[1]  # nothing cached yet
    p = problems[0]
    cands = [Candidate("\n".join(v)) for v in _variants(p.metadata["solution"])]
    cands += [Candidate(c.text.replace("\n#### ", "\n#### 1")) for c in cands]  # six distinct solutions
    plan = inc.plan(p, cands)
    question = plan.items[0]
    assert question.first and question.reads == []
    contexts = [it for it in plan.items if it.keep and not it.first]
    assert len(contexts) == 6 and all(it.source is question and it.cached == len(question.ids) - 1 for it in contexts)
    got = asyncio.run(inc.score(p, cands))
    want = asyncio.run(scratch.score(p, cands))
    assert got == pytest.approx(want, abs=1e-6)
    assert inc.flops(p, cands)[0] == 0  # all of it computed now: scoring again computes nothing


def test_a_partial_solution_is_read_as_going_on(models, problems) -> None:
    inc, _ = models
    p = problems[1]
    steps = p.metadata["solution"].split("\n")
    going_on = inc.plan(p, [_partials(steps, 2)], reuse=False).items[0]
    ended = inc.plan(p, [Candidate("\n".join(steps[:2]))], reuse=False).items[0]
    eos = inc.tokenizer.eos_token_id
    assert going_on.ids[-1] != eos and ended.ids[-1] == eos  # no end of text read after a partial solution
    assert going_on.ids[-1] == inc.tokenizer("\n", add_special_tokens=False).input_ids[-1]  # but its delimiter


def test_a_tiny_kv_cache_gives_the_same_scores(problems) -> None:
    small = RewardModel("tiny-prm", incremental=True, kv_cache_mb=0.05)
    scratch = RewardModel("tiny-prm", incremental=False)
    try:
        p = problems[2]
        for k in (1, 2, 3):
            cands = [_partials(v, k) for v in _variants(p.metadata["solution"])]
            a = asyncio.run(small.score_steps(p, cands))
            b = asyncio.run(scratch.score_steps(p, cands))
            assert [len(x) for x in a] == [len(x) for x in b]
            assert [x for r in a for x in r] == pytest.approx([x for r in b for x in r], abs=1e-6)
    finally:
        small.close()
        scratch.close()


def test_scratch_scoring_charges_every_token(models, problems) -> None:
    _, scratch = models
    p = problems[3]
    cands = [Candidate(p.metadata["solution"])]
    first, second = _tokens(scratch, p, cands), _tokens(scratch, p, cands)
    assert first == second > 0  # nothing is reused when incremental is off
