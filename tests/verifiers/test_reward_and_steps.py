"""Learned reward models, the arith step checker and self-certainty, on the embedded models."""

import asyncio
import math

import pytest

import archon.data
from archon.core import Candidate, GenRequest, Problem, UnsupportedFeatureError, score_processes
from archon.core.metrics import roc_auc
from archon.models.training.reward import Labeled
from archon.models.training.reward import score as training_score
from budgets import Ledger, Scope
from samplers.transformers_engine import TransformersEngine
from verifiers.certainty import SelfCertainty, perplexity
from verifiers.reward import RewardConfig, RewardModel
from verifiers.steps import ArithStepChecker


@pytest.fixture(scope="module")
def prm():
    m = RewardModel("tiny-prm")
    yield m
    m.close()


@pytest.fixture(scope="module")
def orm():
    m = RewardModel("tiny-orm")
    yield m
    m.close()


@pytest.fixture(scope="module")
def problems():
    return archon.data.load("arith", "dev")[:12]


def wrong(solution: str) -> str:
    lines = solution.split("\n")
    a, _, b = lines[0].rpartition("= ")
    lines[0] = f"{a}= {int(b) + 1}"
    return "\n".join(lines)


def test_reward_scores_equal_the_training_code_reading(prm, orm, problems):
    p = problems[3]
    sol = p.metadata["solution"]
    for model, process in ((prm, True), (orm, False)):
        ours = asyncio.run(model._scores(p, [Candidate(sol), Candidate(wrong(sol))]))
        n = len(sol.split("\n"))
        items = [Labeled(p.question, sol, [True] * n, True), Labeled(p.question, wrong(sol), [False] * n, False)]
        ref = training_score(model.model, items, process=process)
        for a, b in zip(ours, ref, strict=True):
            assert a == pytest.approx(b, abs=1e-5)


def test_process_scores_rank_tiny_l_steps_like_the_exact_checker(prm):
    """Step-level ROC AUC of tiny-prm against the exact checker on fresh tiny-l samples (model card: 0.90)."""
    problems = archon.data.load("arith", "dev")[100:140]
    engine = TransformersEngine("tiny-l")
    try:

        async def draw():
            reqs = [GenRequest(p.messages(), n=4, max_tokens=120, seed=i) for i, p in enumerate(problems)]
            return await asyncio.gather(*(engine.generate(r) for r in reqs))

        results = asyncio.run(draw())
    finally:
        engine.close()
    checker = ArithStepChecker()

    async def score_all():
        pairs = []
        for p, r in zip(problems, results, strict=True):
            cands = [Candidate(c.text) for c in r.completions]
            pairs.append((prm.score_steps(p, cands), checker.score_steps(p, cands)))
        got = await asyncio.gather(*(a for a, _ in pairs))
        want = await asyncio.gather(*(b for _, b in pairs))
        return got, want

    before = prm._batcher.stats.batches
    got, want = asyncio.run(score_all())
    assert prm._batcher.stats.batches == before + 1  # forty problems, one forward pass
    scores = [s for per_problem in got for cand in per_problem for s in cand]
    labels = [bool(x) for per_problem in want for cand in per_problem for x in cand]
    assert len(scores) == len(labels) > 300 and 0 < sum(labels) < len(labels)
    assert roc_auc(scores, labels) >= 0.8


def test_outcome_model_prefers_correct_solutions(orm, problems):
    async def all_problems():
        return await asyncio.gather(
            *(
                orm.score(p, [Candidate(p.metadata["solution"]), Candidate(wrong(p.metadata["solution"]))])
                for p in problems
            )
        )

    pairs = asyncio.run(all_problems())
    assert sum(a > b for a, b in pairs) >= 9
    with pytest.raises(ValueError, match="outcome reward model"):
        asyncio.run(orm.score_steps(problems[0], [Candidate("1")]))


def test_reading_is_declared_in_configuration_not_by_name(tmp_path, problems):
    with pytest.raises(ValueError, match="kind must be 'process' or 'outcome'"):
        RewardConfig.from_dict({"kind": "steps"})
    # the PRM's weights read as a process model under another name, with an explicit config
    m = RewardModel("tiny-prm", config={"kind": "process", "step_delimiter": "\n"}, name="my-prm", aggregation="last")
    p = problems[0]
    c = Candidate(p.metadata["solution"])
    (scores,) = asyncio.run(m.score_steps(p, [c]))
    assert asyncio.run(m.score(p, [c])) == [pytest.approx(scores[-1])]
    (scored,) = asyncio.run(score_processes(m, p, [c], "min"))
    assert scored.scores["my-prm"] == pytest.approx(min(scores))
    m.close()


def test_charged_reward_calls_are_exact_and_released_on_failure(prm, problems):
    ledger = Ledger()
    charged = prm.charged(ledger, Scope("prm", problems[0].id))
    cands = [Candidate(problems[0].metadata["solution"])]
    asyncio.run(charged.score(problems[0], cands))
    ids, reads = prm.encode(problems[0], cands[0])
    total = ledger.total()
    assert total.flops == prm.cost.prefill_flops(len(ids), logit_positions=len(reads)) and total.calls == 1
    assert ledger.outstanding == 0


def test_a_solution_sampled_twice_is_scored_and_charged_once(orm, problems):
    p = problems[2]
    sol = p.metadata["solution"]
    cands = [Candidate(sol), Candidate(wrong(sol)), Candidate(sol), Candidate(sol)]
    ledger = Ledger()
    batches, items = orm._batcher.stats.batches, orm._batcher.stats.items
    scores = asyncio.run(orm.charged(ledger, Scope("orm", p.id)).score(p, cands))
    assert orm._batcher.stats.items - items == 2 and orm._batcher.stats.batches == batches + 1
    assert scores[0] == scores[2] == scores[3] != scores[1]
    alone = asyncio.run(orm.score(p, cands[:2]))
    assert scores[:2] == pytest.approx(alone, abs=1e-6)
    distinct = [orm.encode(p, c) for c in cands[:2]]
    assert ledger.total().flops == sum(orm.cost.prefill_flops(len(ids), logit_positions=1) for ids, _ in distinct)


def test_the_step_checker_finds_the_first_wrong_step(problems):
    checker = ArithStepChecker()
    p = problems[5]
    sol = p.metadata["solution"]
    assert checker.first_wrong(p, Candidate(sol)) is None
    assert checker.first_wrong(p, Candidate(wrong(sol))) == 0
    steps = asyncio.run(checker.score_steps(p, [Candidate(sol), Candidate(wrong(sol))]))
    assert steps[0] == [1.0] * len(sol.split("\n")) and steps[1][0] == 0.0
    assert asyncio.run(checker.score(p, [Candidate(sol + "\n1 + 1 = 2")])) == [0.0]  # extra steps are wrong
    with pytest.raises(ValueError, match="not an arith question"):
        checker.first_wrong(Problem("x", "Where was Norlu born?"), Candidate("Gorlusi"))


def test_self_certainty_from_generation_logprobs_without_an_extra_pass(problems):
    engine = TransformersEngine("tiny-l")
    try:
        p = problems[2]
        r = asyncio.run(
            engine.generate(GenRequest(p.messages(), n=3, max_tokens=60, seed=4, logprobs=True, entropies=True))
        )
        cands = [Candidate(c.text, logprobs=c.logprobs, entropies=c.entropies) for c in r.completions]
        passes = engine.stats.forward_passes
        ppl = asyncio.run(SelfCertainty("perplexity").score(p, cands))
        ent = asyncio.run(SelfCertainty("mean_entropy").score(p, cands))
        assert engine.stats.forward_passes == passes
        assert ppl == [pytest.approx(perplexity(c.logprobs)) for c in cands] and all(x >= 1 for x in ppl)
        assert all(0 <= e <= math.log(103) for e in ent)
        # without logprobs, the engine scores them by teacher forcing (eos excluded from the text)
        scored = asyncio.run(SelfCertainty("mean_logprob", engine=engine).score(p, [Candidate(cands[0].text)]))
        assert engine.stats.forward_passes > passes and scored[0] < 0
        with pytest.raises(UnsupportedFeatureError, match="entropies=True"):
            asyncio.run(SelfCertainty("mean_entropy").score(p, [Candidate("x")]))
    finally:
        engine.close()


def test_judges_run_on_any_engine_and_score_in_unit_range(problems):
    from verifiers.judge import GenerativeVerifier, YesNoJudge, parse_verdict

    engine = TransformersEngine("tiny-l")
    try:
        p = problems[1]
        cands = [Candidate(p.metadata["solution"]), Candidate(wrong(p.metadata["solution"]))]
        before = engine.batch_stats.batches
        yes = asyncio.run(YesNoJudge(engine).score(p, cands))
        assert engine.batch_stats.batches == before + 1  # both candidates in one batch
        assert all(0.0 <= s <= 1.0 for s in yes) and yes[0] != yes[1]
        verdicts = asyncio.run(GenerativeVerifier(engine, samples=3, max_tokens=24).score(p, cands))
        assert all(s in (0.0, 1 / 3, 2 / 3, 1.0) for s in verdicts)
    finally:
        engine.close()
    assert parse_verdict("first: Verdict: correct. On reflection, Verdict: incorrect") is False
    assert parse_verdict("verdict - RIGHT") is True
