"""The noisy arith step checker: a synthetic instrument whose step-level AUC is what a study asks for."""

import asyncio
import subprocess
import sys

import pytest

import archon.data
from archon.core import Candidate, aggregate
from archon.runtime import Runner
from archon.spec import SpecError
from archon.spec.load import parse_spec
from budgets import Scope
from verifiers.arith import ANSWER_MARK, apply, parse_question
from verifiers.noisy import NoisyStepChecker, beta_shape, expected_auc
from verifiers.steps import ArithStepChecker


def variants(question: str) -> list[str]:
    """The reference solution, then wrong ones: one result off at each step, the chain continued from it."""
    chain = parse_question(question)
    out = [chain.solution]
    for j in range(len(chain.ops) + 1):
        for delta in (1, -1, 10, -2):
            vals = chain.values()
            lines = [
                f"{vals[i]} {op} {x} = {vals[i + 1]}"
                for i, (op, x) in enumerate(zip(chain.ops, chain.operands, strict=True))
            ]
            if j < len(chain.ops):
                v = vals[j + 1] + delta
                lines = [*lines[:j], f"{vals[j]} {chain.ops[j]} {chain.operands[j]} = {v}"]
                for op, x in zip(chain.ops[j + 1 :], chain.operands[j + 1 :], strict=True):
                    w = apply(v, op, x)
                    lines.append(f"{v} {op} {x} = {w}")
                    v = w
                out.append("\n".join([*lines, f"{ANSWER_MARK}{v}"]))
            else:
                out.append("\n".join([*lines, f"{ANSWER_MARK}{vals[-1] + delta}"]))
    return out


@pytest.fixture(scope="module")
def solutions():
    problems = archon.data.load("arith", "dev")[:300]
    return [(p, [Candidate(t) for t in variants(p.question)]) for p in problems]


def distinct_scores(verifier, solutions, *, outcome: bool = False) -> list[list[tuple[float, bool]]]:
    """Per problem, (score, exact label) of each distinct step (its text through it), or of each whole solution."""
    checker = ArithStepChecker()
    out = []
    for p, cands in solutions:
        scored: dict[str, tuple[float, bool]] = {}
        if outcome:
            truth = asyncio.run(checker.score(p, cands))
            for c, s, y in zip(cands, asyncio.run(verifier.score(p, cands)), truth, strict=True):
                scored[c.text] = (s, y == 1.0)
        else:
            truth = asyncio.run(checker.score_steps(p, cands))
            for c, ss, ys in zip(cands, asyncio.run(verifier.score_steps(p, cands)), truth, strict=True):
                steps = c.steps()
                for i, (s, y) in enumerate(zip(ss, ys, strict=True)):
                    scored["\n".join(steps[: i + 1])] = (s, y == 1.0)
        out.append(list(scored.values()))
    return out


def within_problem_auc(verifier, solutions, *, outcome: bool = False) -> tuple[float, int]:
    """Pooled pairwise AUC over the (right, wrong) pairs of one problem, and the number of pairs."""
    wins = pairs = 0.0
    for scored in distinct_scores(verifier, solutions, outcome=outcome):
        right = [s for s, y in scored if y]
        wrong = [s for s, y in scored if not y]
        for a in right:
            for b in wrong:
                wins += 1.0 if a > b else 0.5 if a == b else 0.0
        pairs += len(right) * len(wrong)
    return wins / pairs, int(pairs)


def share(verifier, solutions, label: bool, below: float) -> float:
    """The share of distinct steps with this exact label that score below ``below``."""
    scores = [s for scored in distinct_scores(verifier, solutions) for s, y in scored if y == label]
    return sum(s < below for s in scores) / len(scores)


def test_the_synthetic_set_is_labelled_as_intended(solutions):
    checker = ArithStepChecker()
    p, cands = solutions[0]
    assert asyncio.run(checker.score(p, cands)) == [1.0] + [0.0] * (len(cands) - 1)
    assert checker.first_wrong(p, cands[1]) == 0 and checker.first_wrong(p, cands[-1]) == len(cands[0].steps()) - 1


def test_scores_are_deterministic_batch_independent_and_prefix_stable(solutions):
    p, cands = solutions[7]
    v = NoisyStepChecker(auc=0.8, seed=3)
    together = asyncio.run(v.score_steps(p, cands))
    assert together == asyncio.run(NoisyStepChecker(auc=0.8, seed=3).score_steps(p, cands))
    alone = [asyncio.run(v.score_steps(p, [c]))[0] for c in reversed(cands)]
    assert together == alone[::-1]
    # a step scores the same before and after its solution is extended, and shared prefixes score the same
    partial = Candidate("\n".join(cands[0].steps()[:2]))
    assert asyncio.run(v.score_steps(p, [partial]))[0] == together[0][:2]
    assert together[0][0] == together[5][0] and together[1][0] != together[2][0]  # step 0: same text, same score
    # another seed is another instrument; another process draws the same scores (no global random state)
    assert asyncio.run(NoisyStepChecker(auc=0.8, seed=4).score_steps(p, cands)) != together
    code = (
        "import asyncio, archon.data; from archon.core import Candidate; from verifiers.noisy import NoisyStepChecker;"
        f"p = archon.data.load('arith', 'dev')[7]; print(repr(asyncio.run(NoisyStepChecker(auc=0.8, seed=3)"
        f".score_steps(p, [Candidate({cands[3].text!r})]))[0]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == repr(together[3])
    assert all(0.0 <= s <= 1.0 for ss in together for s in ss)


def test_auc_formula_and_its_inverse():
    assert expected_auc(1.0) == pytest.approx(0.5) and expected_auc(2.0) == pytest.approx(5 / 6)
    assert expected_auc(3.0) == pytest.approx(1 - 1 / 20)  # 1 - 1/C(6, 3)
    for auc in (0.55, 0.7, 0.8, 0.9, 0.99, 1 - 1e-9):
        for flip in (0.0, 0.02, 0.1):
            if auc < 1 - flip:
                assert expected_auc(beta_shape(auc, flip), flip) == pytest.approx(auc, abs=1e-9)
    assert beta_shape(0.8, 0.1) > beta_shape(0.8)  # flips take part of the error budget: sharper Betas


@pytest.mark.parametrize("auc", [0.7, 0.8, 0.9])
def test_measured_within_problem_step_auc_is_the_requested_one(solutions, auc):
    measured, pairs = within_problem_auc(NoisyStepChecker(auc=auc), solutions)
    assert pairs > 5000
    assert measured == pytest.approx(auc, abs=0.03)


def test_with_last_the_outcome_auc_is_the_requested_one():
    # one right solution per problem: more problems (both splits) for as many independent draws
    problems = archon.data.load("arith", "dev") + archon.data.load("arith", "test")
    solutions = [(p, [Candidate(t) for t in variants(p.question)]) for p in problems]
    measured, pairs = within_problem_auc(NoisyStepChecker(auc=0.75, aggregation="last"), solutions, outcome=True)
    assert pairs > 20000 and measured == pytest.approx(0.75, abs=0.03)


def test_flips_make_confident_mistakes_at_the_same_auc(solutions):
    flipped, diffuse = NoisyStepChecker(auc=0.85, flip=0.1, seed=1), NoisyStepChecker(auc=0.85, seed=1)
    assert within_problem_auc(flipped, solutions)[0] == pytest.approx(0.85, abs=0.03)
    # P(s < t | right step) = (1 - flip) t^k + flip (1 - (1 - t)^k): at the same AUC, more confident mistakes
    t = 0.1
    for v in (flipped, diffuse):
        expected = (1 - v.flip) * t**v.k + v.flip * (1 - (1 - t) ** v.k)
        assert share(v, solutions, True, t) == pytest.approx(expected, abs=0.01)
    assert share(flipped, solutions, True, t) > 2 * share(diffuse, solutions, True, t)
    # at the AUC's cap the Betas are nearly exact: what is left is the flips, a share `flip` of each class
    capped = NoisyStepChecker(auc=0.9 - 1e-9, flip=0.1, seed=1)
    assert share(capped, solutions, True, 0.5) == pytest.approx(0.1, abs=0.02)
    assert 1 - share(capped, solutions, False, 0.5) == pytest.approx(0.1, abs=0.02)


def test_near_auc_one_it_ranks_like_the_exact_checker(solutions):
    exact = ArithStepChecker()
    noisy = NoisyStepChecker(auc=1 - 1e-12)
    for p, cands in solutions[:100]:
        truth = asyncio.run(exact.score_steps(p, cands))
        steps = asyncio.run(noisy.score_steps(p, cands))
        assert [[s > 0.5 for s in ss] for ss in steps] == [[y == 1.0 for y in ys] for ys in truth]
        outcome = asyncio.run(noisy.score(p, cands))
        best = max(range(len(cands)), key=outcome.__getitem__)
        assert asyncio.run(exact.score(p, [cands[best]])) == [1.0]
        right = [o for o, t in zip(outcome, truth, strict=True) if t[-1]]
        assert min(right) > max(o for o, t in zip(outcome, truth, strict=True) if not t[-1])


def test_score_aggregates_step_scores(solutions):
    p, cands = solutions[2]
    for how in ("min", "last", "prod", "mean"):
        v = NoisyStepChecker(auc=0.8, aggregation=how)
        steps = asyncio.run(v.score_steps(p, cands))
        assert asyncio.run(v.score(p, cands)) == [aggregate(s, how) for s in steps]
    assert asyncio.run(NoisyStepChecker().score(p, [Candidate("")])) == [0.0]


def spec(**options):
    return parse_spec(
        {
            "engines": {"policy": {"model": "tiny-l"}},
            "verifiers": {"noisy": {"kind": "noisy_arith_steps", "options": options}},
            "pipeline": [
                {"id": "draft", "op": "sample", "params": {"engine": "policy", "n": 2}},
                {"id": "judge", "op": "score", "inputs": ["draft"], "params": {"verifier": "noisy"}},
            ],
        }
    )


def test_built_from_a_spec_by_the_runtime(solutions):
    runner = Runner(spec(auc=0.9, flip=0.05, seed=2, aggregation="last"))
    v = runner.verifier("noisy", Scope("judge", "x"))
    assert isinstance(v, NoisyStepChecker) and v.synthetic and v.name == "noisy"
    assert (v.auc, v.flip, v.seed, v.aggregation) == (0.9, 0.05, 2, "last")
    assert "synthetic instrument" in repr(v)
    p, cands = solutions[0]
    direct = NoisyStepChecker(auc=0.9, flip=0.05, seed=2, aggregation="last")
    assert asyncio.run(v.score(p, cands)) == asyncio.run(direct.score(p, cands))
    assert runner.ledger.total().calls == 0  # no model runs, nothing is charged


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"auc": 1.0}, r"auc must be in \(0\.5, 1\), got 1\.0"),
        ({"auc": 0.5}, r"auc must be in \(0\.5, 1\), got 0\.5"),
        ({"auc": "high"}, "auc must be a number, got 'high'"),
        ({"flip": -0.1}, r"flip must be >= 0 \(a per-step flip probability\), got -0\.1"),
        ({"flip": 0.5}, "flip must be below 0.5"),
        ({"auc": 0.95, "flip": 0.1}, "auc 0.95 is out of reach with flip 0.1"),
        ({"aggregation": "max"}, "aggregation must be one of last, min, prod, mean, got 'max'"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"au": 0.8}, "unknown option 'au'; options are auc, flip, seed, aggregation, delimiter"),
    ],
)
def test_bad_options_are_one_line_spec_errors(options, message):
    with pytest.raises(SpecError, match=r"^<spec>: verifiers\.noisy: " + message) as info:
        spec(**options)
    assert "\n" not in str(info.value)
    if "unknown" not in message:
        with pytest.raises(ValueError, match=message):
            NoisyStepChecker(**options)
