r"""A synthetic instrument: the exact arith step checker with a controlled, documented noise model.

This is *not* a learned verifier and must never be reported as one. No model runs, so no FLOPs are
charged. It exists so that studies can sweep verifier quality (the within-problem AUC of step scores)
and the shape of the errors (diffuse uncertainty or confident mistakes) with everything else held fixed.

Noise model. Let ``y_i`` be step ``i``'s prefix-correctness label from the exact checker
(:class:`verifiers.steps.ArithStepChecker`: true while every step up to ``i`` is right).

1. Flip: with probability ``flip`` the label is inverted, ``y'_i = 1 - y_i`` (a confident mistake).
2. Draw: ``s_i ~ Beta(k, 1)`` when ``y'_i`` is true, ``s_i ~ Beta(1, k)`` when it is false (mirror images:
   means ``k/(k+1)`` and ``1/(k+1)``), by inversion: ``s = u**(1/k)`` or ``s = 1 - u**(1/k)``.

For ``X ~ Beta(k, 1)``, ``Y ~ Beta(1, k)``, ``P(X > Y) = 1 - Γ(k+1)² / Γ(2k+1)`` (``= 1 - 1/C(2k, k)`` for
whole ``k``: 0.5 at ``k = 1``, rising to 1). Flips mix the two draws: a pair (right step, wrong step) is
ordered right with probability ``auc = flip + (1 - 2·flip) · (1 - Γ(k+1)² / Γ(2k+1))``. The requested
``auc`` (the probability that a right step outscores a wrong step of the same problem) fixes ``k`` through
this formula (solved by bisection, :func:`beta_shape`), so ``auc`` is the realised step-level AUC whatever
``flip`` is; ``flip`` only moves the errors from diffuse (``flip = 0``, overlapping Betas) to confident
(sharper Betas and more flipped steps). Valid: ``0.5 < auc < 1 - flip`` and ``0 <= flip < 0.5``.

Determinism. The two uniforms ``(u_flip, u_beta)`` of a step come from a BLAKE2b hash of ``(seed, problem
id, step index, the solution's steps through that one joined by the delimiter)`` — no global random
state. A step's score depends only on what precedes it (like a causal process reward model): the same partial or whole
solution gets the same scores in every call, in any batch, in any process, and a solution's step
``i`` scores the same before and after it is extended. Steps of one solution are independent draws.

As an outcome verifier, :meth:`NoisyStepChecker.score` reduces the step scores by ``aggregation``
(:func:`archon.core.aggregate`). With ``last``, the last step's label is the solution's correctness, so
solution-level AUC equals ``auc``; ``min`` / ``prod`` / ``mean`` give an AUC that depends on lengths.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from archon.core import AGGREGATIONS, Aggregation, Candidate, Problem, aggregate
from verifiers.steps import ArithStepChecker

OPTIONS = ("auc", "flip", "seed", "aggregation", "delimiter")
"""The options of a ``noisy_arith_steps`` verifier in a spec."""


def beta_auc(k: float) -> float:
    """``P(X > Y)`` for ``X ~ Beta(k, 1)`` and ``Y ~ Beta(1, k)``: ``1 - Γ(k+1)² / Γ(2k+1)``.

    Example:
        >>> round(beta_auc(1.0), 6), round(beta_auc(2.0), 6)
        (0.5, 0.833333)
    """
    return 1.0 - math.exp(2.0 * math.lgamma(k + 1.0) - math.lgamma(2.0 * k + 1.0))


def expected_auc(k: float, flip: float = 0.0) -> float:
    """The step-level AUC of the noise model with shape ``k`` and flip rate ``flip``.

    Example:
        >>> round(expected_auc(2.0, 0.1), 6)
        0.766667
    """
    return flip + (1.0 - 2.0 * flip) * beta_auc(k)


def beta_shape(auc: float, flip: float = 0.0) -> float:
    """The shape ``k`` for which :func:`expected_auc` ``(k, flip)`` equals ``auc``.

    Example:
        >>> k = beta_shape(0.8)
        >>> round(k, 4), round(expected_auc(k), 6)
        (1.8427, 0.8)
    """
    check_options({"auc": auc, "flip": flip})
    # 1 - A, where A is the Beta pair's own AUC; written so that auc near 1 - flip keeps its precision
    target = math.log((1.0 - flip - auc) / (1.0 - 2.0 * flip))

    def h(k: float) -> float:  # log(1 - beta_auc(k)), strictly decreasing from log(1/2) at k = 1
        return 2.0 * math.lgamma(k + 1.0) - math.lgamma(2.0 * k + 1.0)

    lo, hi = 1.0, 2.0
    while h(hi) > target:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if h(mid) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return (lo + hi) / 2.0


def check_options(options: Mapping[str, Any]) -> None:
    """Raise a one-line ``ValueError`` for an unknown or out-of-range ``noisy_arith_steps`` option.

    Example:
        >>> check_options({"auc": 0.8, "flip": 0.05})
        >>> check_options({"auc": 1.0})
        Traceback (most recent call last):
        ...
        ValueError: auc must be in (0.5, 1), got 1.0
    """
    unknown = [k for k in options if k not in OPTIONS]
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}; options are {', '.join(OPTIONS)}")
    auc, flip = options.get("auc", 0.8), options.get("flip", 0.0)
    for key, value in (("auc", auc), ("flip", flip)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ValueError(f"{key} must be a number, got {value!r}")
    if not 0.5 < auc < 1.0:
        raise ValueError(f"auc must be in (0.5, 1), got {auc}")
    if flip < 0:
        raise ValueError(f"flip must be >= 0 (a per-step flip probability), got {flip}")
    if flip >= 0.5:
        raise ValueError(f"flip must be below 0.5 (at 0.5 scores carry no signal), got {flip}")
    if auc >= 1.0 - flip:
        raise ValueError(f"auc {auc} is out of reach with flip {flip}: flips alone cap the AUC below 1 - flip")
    seed = options.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    how = options.get("aggregation", "min")
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {how!r}")
    delimiter = options.get("delimiter", "\n")
    if not isinstance(delimiter, str) or not delimiter:
        raise ValueError(f"delimiter must be a non-empty string, got {delimiter!r}")


class NoisyStepChecker:
    r"""A synthetic instrument, not a learned verifier: exact arith step labels turned into noisy scores.

    Each step's prefix-correctness label (from :class:`~verifiers.steps.ArithStepChecker`) is flipped with
    probability ``flip``, then scored by a draw from ``Beta(k, 1)`` (right) or ``Beta(1, k)`` (wrong),
    with ``k`` chosen so that a right step outscores a wrong step of the same problem with probability
    ``auc`` (``auc = flip + (1 - 2 flip)(1 - Γ(k+1)²/Γ(2k+1))``; see :mod:`verifiers.noisy`). Draws are
    hashed from ``(seed, problem id, step index, text through the step)``: deterministic, batch-independent,
    prefix-stable. No model runs and nothing is charged.

    Args:
        auc: The target within-problem step-level AUC, in ``(0.5, 1 - flip)``.
        flip: The per-step probability of inverting the true label before the draw, in ``[0, 0.5)``.
        seed: Another seed draws another, equally good, instrument.
        aggregation: How :meth:`score` reduces step scores (``min``, ``last``, ``prod``, ``mean``).
        delimiter: The text that ends a step.
        name: The name scores are stored under.

    Example:
        >>> import asyncio
        >>> from archon.core import Candidate, Problem
        >>> p = Problem("a", "Evaluate left to right: 5 + 8 - 8", answer="5")
        >>> right, wrong = Candidate("5 + 8 = 13\n13 - 8 = 5\n#### 5"), Candidate("5 + 8 = 13\n13 - 8 = 6\n#### 6")
        >>> noisy = NoisyStepChecker(auc=0.9, seed=0)
        >>> [[round(s, 2) for s in c] for c in asyncio.run(noisy.score_steps(p, [right, wrong]))]
        [[0.38, 0.92, 0.6], [0.38, 0.27, 0.61]]
        >>> [round(s, 2) for s in asyncio.run(noisy.score(p, [right, wrong]))]  # min over steps
        [0.38, 0.27]
        >>> noisy.synthetic, round(noisy.k, 2)
        (True, 2.43)
    """

    synthetic = True
    """A synthetic instrument (exact checker plus noise), never a learned verifier."""
    kind: Literal["process"] = "process"
    higher_is_better = True

    def __init__(
        self,
        *,
        auc: float = 0.8,
        flip: float = 0.0,
        seed: int = 0,
        aggregation: Aggregation = "min",
        delimiter: str = "\n",
        name: str = "noisy_arith_steps",
    ) -> None:
        check_options({"auc": auc, "flip": flip, "seed": seed, "aggregation": aggregation, "delimiter": delimiter})
        self.auc, self.flip, self.seed = float(auc), float(flip), seed
        self.aggregation: Aggregation = aggregation
        self.delimiter = delimiter
        self.name = name
        self.k = beta_shape(self.auc, self.flip)
        self._checker = ArithStepChecker(delimiter=delimiter)

    def __repr__(self) -> str:
        return (
            f"NoisyStepChecker(synthetic instrument: exact arith checker + noise, auc={self.auc}, "
            f"flip={self.flip}, seed={self.seed}, k={self.k:.4g})"
        )

    def labels(self, problem: Problem, candidate: Candidate) -> list[bool]:
        """The exact prefix-correctness label of each step (before any noise)."""
        bad = self._checker.first_wrong(problem, candidate)
        return [bad is None or i < bad for i in range(len(candidate.steps(self.delimiter)))]

    def step_score(self, problem_id: str, index: int, prefix: str, label: bool) -> float:
        """The noisy score of step ``index`` whose solution text through it is ``prefix`` and true label ``label``."""
        key = json.dumps([self.seed, problem_id, index, prefix], ensure_ascii=False)
        digest = hashlib.blake2b(key.encode(), digest_size=16, person=b"archon-noisy").digest()
        u_flip, u_beta = (((int.from_bytes(digest[j : j + 8], "little") >> 11) + 0.5) / 2**53 for j in (0, 8))
        shown = label != (u_flip < self.flip)
        draw = u_beta ** (1.0 / self.k)
        return draw if shown else 1.0 - draw

    async def score_steps(self, problem: Problem, candidates: Sequence[Candidate]) -> list[list[float]]:
        """One noisy score per step of each candidate."""
        out = []
        for c in candidates:
            steps = c.steps(self.delimiter)
            labels = self.labels(problem, c)
            out.append(
                [self.step_score(problem.id, i, self.delimiter.join(steps[: i + 1]), y) for i, y in enumerate(labels)]
            )
        return out

    async def score(self, problem: Problem, candidates: Sequence[Candidate]) -> list[float]:
        """The step scores reduced by ``aggregation`` (0.0 for a candidate without steps)."""
        steps = await self.score_steps(problem, candidates)
        return [aggregate(s, self.aggregation) if s else 0.0 for s in steps]
