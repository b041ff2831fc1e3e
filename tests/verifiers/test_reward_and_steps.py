"""Learned reward models, the arith step checker and self-certainty, on the embedded models."""

import asyncio
import math

import pytest
import torch

import archon.data
from archon.core import Candidate, GenRequest, Problem, UnsupportedFeatureError, score_processes
from archon.core.metrics import within_problem_auc
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


def _logprobs(model, ids: list[int], positions: list[int]) -> float:
    with torch.no_grad():
        logits = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    return sum(float(logits[t - 1, ids[t]]) for t in positions)


def test_teacher_forced_scores_equal_a_reading_by_hand(prm, problems):
    """Step score = P(operands | question, earlier steps) x P(result | "a op b = " alone), as reward_config says."""
    p = problems[3]
    tok = prm.tokenizer
    for sol in (p.metadata["solution"], wrong(p.metadata["solution"])):
        (ours,) = asyncio.run(prm.score_steps(p, [Candidate(sol)]))
        prompt = tok.apply_chat_template(p.messages(), tokenize=False, add_generation_prompt=True)
        ids = [*tok(prompt + sol, add_special_tokens=False).input_ids, tok.eos_token_id]
        at = len(tok(prompt, add_special_tokens=False).input_ids)  # one token per character
        lines = sol.split("\n")
        assert len(ours) == len(lines)
        for line, score in zip(lines, ours, strict=True):
            if " = " in line:
                lhs, rhs = line.split(" = ")
                context = _logprobs(prm.model, ids, list(range(at, at + len(lhs) + 3)))
                iso = [tok.bos_token_id, *tok(f"{lhs} = {rhs}", add_special_tokens=False).input_ids, tok.eos_token_id]
                alone = _logprobs(prm.model, iso, list(range(len(lhs) + 4, len(iso))))
                want = math.exp(context + alone)
            else:  # the answer line, and the eos after it, in context
                want = math.exp(_logprobs(prm.model, ids, list(range(at, at + len(line) + 1))))
            assert score == pytest.approx(want, rel=1e-4, abs=1e-7)
            at += len(line) + 1


def test_process_verifier_ranks_tiny_l_samples_within_each_problem(prm):
    """Within-problem pairwise AUC of tiny-prm on fresh tiny-l samples (the model card reports >= 0.9)."""
    problems = archon.data.load("arith", "dev")[100:160]
    engine = TransformersEngine("tiny-l")
    try:

        async def draw():
            reqs = [GenRequest(p.messages(), n=8, max_tokens=120, seed=i) for i, p in enumerate(problems)]
            return await asyncio.gather(*(engine.generate(r) for r in reqs))

        results = asyncio.run(draw())
    finally:
        engine.close()
    checker = ArithStepChecker()
    cands = [[Candidate(c.text) for c in r.completions] for r in results]

    async def score_all():
        return await asyncio.gather(*(prm.score(p, c) for p, c in zip(problems, cands, strict=True)))

    before, items = prm._batcher.stats.batches, prm._batcher.stats.items
    got = asyncio.run(score_all())
    passes = prm._batcher.stats.items - items  # sixty problems' forward passes, in full batches: the questions'
    assert prm._batcher.stats.batches - before <= math.ceil(passes / 256) + 1  # passes first, then the rest
    right = [asyncio.run(checker.score(p, c)) for p, c in zip(problems, cands, strict=True)]
    groups = [(s, [x == 1.0 for x in r]) for s, r in zip(got, right, strict=True)]
    assert sum(0 < sum(r) < len(r) for _, r in groups) >= 10  # enough problems with both kinds
    assert within_problem_auc(groups) >= 0.85


def test_process_verifier_catches_wrong_results_and_wrong_copies(prm, problems):
    """A wrong result, a first operand not copied from the previous line, or a wrong operator: each scores low."""
    caught = 0
    cases = 0
    for p in problems:
        sol = p.metadata["solution"]
        lines = sol.split("\n")
        if len(lines) < 3:
            continue
        a, op, x, _, _ = lines[1].split()
        bad_copy = lines.copy()  # step 2 starts from a number that is not step 1's result; its sum is right
        first = int(a) + 10
        value = {"+": first + int(x), "-": first - int(x), "*": first * int(x)}[op]
        bad_copy[1] = f"{first} {op} {x} = {value}"
        (good_s, result_s, copy_s) = asyncio.run(
            prm.score_steps(p, [Candidate(sol), Candidate(wrong(sol)), Candidate("\n".join(bad_copy))])
        )
        caught += (result_s[0] < 0.5 * good_s[0]) + (copy_s[1] < 0.5 * good_s[1])
        cases += 2
    assert cases >= 10 and caught >= 0.9 * cases


def test_outcome_model_prefers_correct_solutions(orm, problems):
    async def all_problems():
        return await asyncio.gather(
            *(
                orm.score(p, [Candidate(p.metadata["solution"]), Candidate(wrong(p.metadata["solution"]))])
                for p in problems
            )
        )

    pairs = asyncio.run(all_problems())
    assert sum(a > b for a, b in pairs) >= 11
    with pytest.raises(ValueError, match="outcome reward model"):
        asyncio.run(orm.score_steps(problems[0], [Candidate("1")]))
    # an outcome verifier's score is the probability of the whole solution as checked: the product of its steps
    steps = RewardModel(
        "tiny-orm",
        config={
            "kind": "process",
            "read": "teacher_forced",
            "score": "probability",
            "isolated_pattern": orm.config.isolated_pattern,
        },
    )
    p, c = problems[0], Candidate(problems[0].metadata["solution"])
    (per_step,) = asyncio.run(steps.score_steps(p, [c]))
    # float32: the two readings batch their passes differently (1.06e-6 apart on one Intel CPU)
    assert asyncio.run(orm.score(p, [c]))[0] == pytest.approx(math.prod(per_step), rel=1e-5)
    assert asyncio.run(orm.score(p, [Candidate("")])) == [0.0]  # nothing checked is not a perfect score
    steps.close()


def test_reading_is_declared_in_configuration_not_by_name(tmp_path, problems):
    with pytest.raises(ValueError, match="kind must be 'process' or 'outcome'"):
        RewardConfig.from_dict({"kind": "steps"})
    with pytest.raises(ValueError, match="read must be 'head' or 'teacher_forced'"):
        RewardConfig.from_dict({"kind": "process", "read": "guess"})
    with pytest.raises(ValueError, match="scores by 'probability'"):
        RewardConfig.from_dict({"kind": "process", "read": "teacher_forced"})
    with pytest.raises(ValueError, match="groups"):
        RewardConfig.from_dict(
            {"kind": "process", "read": "teacher_forced", "score": "probability", "isolated_pattern": "(.*) = (.*)"}
        )
    # the PRM's weights read under another name, with an explicit config and another aggregation
    cfg = {"kind": "process", "read": "teacher_forced", "score": "probability", "step_delimiter": "\n"}
    m = RewardModel("tiny-prm", config=cfg, name="my-prm", aggregation="last")
    p = problems[0]
    c = Candidate(p.metadata["solution"])
    (scores,) = asyncio.run(m.score_steps(p, [c]))
    assert asyncio.run(m.score(p, [c])) == [pytest.approx(scores[-1])]
    (scored,) = asyncio.run(score_processes(m, p, [c], "min"))
    assert scored.scores["my-prm"] == pytest.approx(min(scores))
    m.close()


def test_a_prefix_reading_multiplies_the_steps_so_far(prm, problems):
    """``steps: prefix`` makes a step's score the probability that every step up to it is right."""
    from dataclasses import asdict

    cfg = asdict(prm.config) | {"steps": "prefix"}
    prefix = RewardModel("tiny-prm", config=cfg)
    p = problems[4]
    sol = p.metadata["solution"]
    cands = [Candidate(sol), Candidate(wrong(sol))]
    local = asyncio.run(prm.score_steps(p, cands))
    got = asyncio.run(prefix.score_steps(p, cands))
    for a, b in zip(local, got, strict=True):
        assert b == pytest.approx([math.prod(a[: i + 1]) for i in range(len(a))], rel=1e-9)
    # the first step is wrong: with the prefix reading every later step stays below the right solution's
    assert all(b < 0.5 * a for a, b in zip(got[0], got[1], strict=True))
    prefix.close()
    with pytest.raises(ValueError, match="steps must be 'local' or 'prefix'"):
        RewardConfig.from_dict(cfg | {"steps": "all"})


@pytest.mark.parametrize("kind", ["process", "outcome"])
def test_a_classification_head_is_read_at_the_declared_positions(tmp_path, problems, kind):
    """Any Hugging Face classifier works as a reward model, read where reward_config.json says."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification, LlamaForTokenClassification

    from archon import models

    tok = AutoTokenizer.from_pretrained(models.path("tiny-l"))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    model = (LlamaForTokenClassification if kind == "process" else LlamaForSequenceClassification)(config).eval()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    (tmp_path / "reward_config.json").write_text(f'{{"kind": "{kind}", "score": "sigmoid"}}')
    m = RewardModel(tmp_path)
    p = problems[0]
    sol = p.metadata["solution"]
    (ours,) = asyncio.run(m._scores(p, [Candidate(sol)]))
    ids, reads = m.encode(p, Candidate(sol))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    if kind == "process":
        assert [ids[r] for r in reads] == [tok.convert_tokens_to_ids("\n")] * len(sol.split("\n"))
        want = torch.sigmoid(logits[reads, 0]).tolist()
    else:
        assert ids[-1] == tok.eos_token_id and reads == [len(ids) - 1]
        want = [float(torch.sigmoid(logits[0]))]
    assert ours == pytest.approx(want, abs=1e-5)
    m.close()


def _charge(model, plan) -> int:
    """What scoring ``plan`` computes: each distinct pass not run before, after the KV it reuses."""
    distinct = {(tuple(it.ids), tuple(it.reads)): it for it in plan.items if it.known is None}.values()
    return sum(
        model.cost.prefill_flops(
            len(it.ids) - it.cached, it.cached, logit_positions=sum(t > it.cached for t in it.reads)
        )
        for it in distinct
    )


def test_charged_reward_calls_are_exact_and_released_on_failure(problems):
    prm = RewardModel("tiny-prm", incremental=True)  # nothing cached yet
    ledger = Ledger()
    charged = prm.charged(ledger, Scope("prm", problems[0].id))
    cands = [Candidate(problems[0].metadata["solution"])]
    scratch = prm.plan(problems[0], cands, reuse=False)
    steps = len(cands[0].steps())
    assert len(scratch.items) == steps  # the context pass, and one isolated pass per step but the answer line
    plan = prm.plan(problems[0], cands)
    want = _charge(prm, plan)
    assert 0 < want <= _charge(prm, scratch)
    asyncio.run(charged.score(problems[0], cands))
    total = ledger.total()
    assert total.flops == want and total.calls == 1
    assert ledger.outstanding == 0
    computed = prm.computed_tokens
    asyncio.run(prm.charged(ledger, Scope("vote", problems[0].id)).score(problems[0], cands))
    assert ledger.total().flops == want  # scored again in the same run: nothing computed, nothing charged
    again = Ledger()  # another run (a study's next trial): charged what the problem costs alone, computed from memory
    asyncio.run(prm.charged(again, Scope("prm", problems[0].id)).score(problems[0], cands))
    assert again.total().flops == want and prm.computed_tokens == computed


def test_a_solution_sampled_twice_is_scored_and_charged_once(problems):
    orm = RewardModel("tiny-orm", incremental=True)  # nothing cached yet
    p = problems[2]
    sol = p.metadata["solution"]
    cands = [Candidate(sol), Candidate(wrong(sol)), Candidate(sol), Candidate(sol)]
    ledger = Ledger()
    plan = orm.plan(p, cands[:2])
    want = _charge(orm, plan)
    runs = {(tuple(it.ids), tuple(it.reads)) for it in plan.items if it.known is None}
    phases = 1 + any(it.first for it in plan.items)  # the shared question's pass, then the rest
    batches, items = orm._batcher.stats.batches, orm._batcher.stats.items
    scores = asyncio.run(orm.charged(ledger, Scope("orm", p.id)).score(p, cands))
    assert orm._batcher.stats.items - items == len(runs) and orm._batcher.stats.batches == batches + phases
    assert scores[0] == scores[2] == scores[3] != scores[1]
    alone = asyncio.run(orm.score(p, cands[:2]))
    assert scores[:2] == pytest.approx(alone, abs=1e-6)
    assert ledger.total().flops == want


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
