"""How well verifiers select among a policy's samples of one problem (used by ``embedded_models.py``).

Every verifier is called through the project's own classes (``verifiers.RewardModel`` reads a model
as its ``reward_config.json`` declares), concurrently over all problems so that its micro-batcher
batches them. Figures, per verifier:

- within-problem pairwise AUC over the first 16 samples: pairs of one correct and one wrong sample of
  the same problem (what selection needs);
- between-problem AUC over the same samples pooled, labelled as such (it also rewards telling easy
  problems from hard ones, which selection does not need);
- best-of-N (the highest-scoring sample's answer) and a vote weighted by the scores, at each N, next
  to greedy, pass@1, majority@N and coverage@N of the policy.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

from archon.core import Candidate, Problem
from archon.core.metrics import best_of, majority, pass_at_k, roc_auc, within_problem_auc
from archon.data import arith
from archon.models.training.sampling import final_answer

AUC_SAMPLES = 16


async def _score_all(verifier: Any, problems: Sequence[Problem], texts: Sequence[Sequence[str]]) -> list[list[float]]:
    async def one(p: Problem, outs: Sequence[str]) -> list[float]:
        distinct = list(dict.fromkeys(outs))
        scores = await verifier.score(p, [Candidate(t) for t in distinct])
        by_text = dict(zip(distinct, scores, strict=True))
        return [float(by_text[t]) for t in outs]

    return list(await asyncio.gather(*(one(p, outs) for p, outs in zip(problems, texts, strict=True))))


def score_samples(verifier: Any, problems: Sequence[Problem], samples: Sequence[Sequence[str]]) -> list[list[float]]:
    """The verifier's score of every sample (each distinct text scored once per problem)."""
    return asyncio.run(_score_all(verifier, problems, samples))


def policy_figures(problems: Sequence[Problem], greedy: Sequence[str], samples: Sequence[Sequence[str]], ns) -> dict:
    """Greedy, pass@1, and majority@N / coverage@N of the policy at each N (first N samples)."""
    count = len(problems)
    out: dict[str, float] = {
        "greedy": sum(final_answer(g) == p.answer for g, p in zip(greedy, problems, strict=True)) / count,
    }
    n_all = len(samples[0])
    right = [[final_answer(s) == p.answer for s in outs] for p, outs in zip(problems, samples, strict=True)]
    out["pass@1"] = sum(sum(r) / n_all for r in right) / count
    for n in ns:
        out[f"majority@{n}"] = (
            sum(
                majority([final_answer(s) for s in outs[:n]]) == p.answer
                for p, outs in zip(problems, samples, strict=True)
            )
            / count
        )
        out[f"coverage@{n}"] = sum(pass_at_k(n_all, sum(r), n) for r in right) / count
    return out


def selection_figures(
    problems: Sequence[Problem], samples: Sequence[Sequence[str]], scores: Sequence[Sequence[float]], ns
) -> dict:
    """Within- and between-problem AUC (first 16 samples) and best-of-N / weighted vote at each N."""
    k = min(AUC_SAMPLES, len(samples[0]))
    right = [[final_answer(s) == p.answer for s in outs] for p, outs in zip(problems, samples, strict=True)]
    groups = [(sc[:k], r[:k]) for sc, r in zip(scores, right, strict=True)]
    flat_s = [s for sc, _ in groups for s in sc]
    flat_r = [x for _, r in groups for x in r]
    out: dict[str, float] = {
        f"within-problem AUC (N={k})": within_problem_auc(groups),
        f"between-problem AUC (N={k}, all solutions pooled)": roc_auc(flat_s, flat_r),
    }
    count = len(problems)
    for n in ns:
        best = weighted = 0
        for p, outs, sc in zip(problems, samples, scores, strict=True):
            answers = [final_answer(s) for s in outs[:n]]
            best += best_of(answers, sc[:n]) == p.answer
            weighted += majority(answers, sc[:n]) == p.answer
        out[f"best-of-{n}"] = best / count
        out[f"weighted vote@{n}"] = weighted / count
    return out


def _copy_error(rng: random.Random, chain: arith.Chain) -> tuple[str, str]:
    """A solution whose step ``i`` copies an operand or the operator wrong; every computation is right.

    Returns the solution and which copy went wrong (``first operand``, ``second operand``, ``operator``).
    """
    i = rng.randrange(len(chain.ops))
    vals = chain.values()
    value, lines, kind = chain.start, [], ""
    for j, (op, x) in enumerate(zip(chain.ops, chain.operands, strict=True)):
        a = value
        if j == i:
            kind = rng.choice(["first operand", "second operand", "operator"])
            if kind == "first operand":
                a = _other_number(rng, vals[j])
            elif kind == "second operand":
                x = _other_number(rng, x, low=1 if op != "*" else 2, high=9 if op == "*" else 99)
            else:
                op = rng.choice([o for o in arith.OPS if o != op and not (o == "-" and x > a)])
        value = arith.apply(a, op, x)
        lines.append(f"{a} {op} {x} = {value}")
    lines.append(f"{arith.ANSWER_MARK}{value}")
    return "\n".join(lines), kind


def _other_number(rng: random.Random, value: int, *, low: int = 0, high: int = 999) -> int:
    while True:
        if rng.random() < 0.5:
            digits = list(str(value))
            if len(digits) > 1:
                digits[0], digits[1] = digits[1], digits[0]  # a transposition, as copy slips are
            else:
                digits[0] = str(rng.randint(0, 9))
            other = int("".join(digits))
        else:
            other = value + rng.choice([-10, -1, 1, 10])
        if other != value and low <= other <= high:
            return other


def copy_error_set(problems: Sequence[Problem], seed: int = 5) -> list[tuple[Problem, str, str, str]]:
    """(problem, reference solution, copy-corrupted solution, kind of copy error) per problem."""
    rng = random.Random(seed)
    out = []
    for p in problems:
        chain = arith.parse_question(p.question)
        bad, kind = _copy_error(rng, chain)
        if bad != chain.solution:
            out.append((p, chain.solution, bad, kind))
    return out


def copy_error_figures(verifier: Any, cases: Sequence[tuple[Problem, str, str, str]]) -> dict:
    """Share of copy-error solutions scored below their problem's reference solution (ties: one half), by kind."""
    problems = [c[0] for c in cases]
    scores = score_samples(verifier, problems, [[good, bad] for _, good, bad, _ in cases])
    by: dict[str, list[float]] = {}
    for (_, _, _, kind), (g, b) in zip(cases, scores, strict=True):
        by.setdefault(kind, []).append(1.0 if g > b else 0.5 if g == b else 0.0)
    out = {"caught (all)": sum(sum(v) for v in by.values()) / sum(len(v) for v in by.values())}
    out |= {f"caught ({k})": sum(v) / len(v) for k, v in sorted(by.items())}
    return out
