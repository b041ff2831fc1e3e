"""``rpc_vote``: Reasoning-pruning Perplexity Consistency (RPC), a vote by the samples' own probabilities.

After Zhou et al., "Bridging Internal Probability and Self-Consistency for Effective and Efficient LLM
Reasoning". Each sampled path ``i`` has the probability ``p_i = exp(mean token logprob)`` under the model
that wrote it (``sample`` with ``logprobs: true``).

1. **Reasoning pruning**: a two-component Weibull mixture is fitted to ``{p_i}`` by maximum
   likelihood; a path is pruned when it belongs to the low component (the one with the smaller mean,
   by posterior) *and* ``p_i`` is below the mean of all ``p_i``. With fewer than ``min_fit`` paths, or
   when the fit fails, nothing is pruned.
2. **Perplexity consistency**: the remaining paths are grouped by normalised answer; an answer's score
   is the sum of ``p_i`` over its *distinct* paths (one text counted once); the answer is the argmax,
   its confidence ``score / total`` (stored as ``scores["rpc"]`` of the winning candidate).

Candidates without log-probabilities or without an answer do not vote. The trace records how many
paths were pruned and the mixture that was fitted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field
from scipy.optimize import minimize
from scipy.special import expit, gamma

from archon.core import Candidate, Context, OperatorParams, State
from archon.core.registry import OPERATORS
from verifiers.answers import normalize_answer


class RPCParams(OperatorParams):
    """``rpc_vote``: prune low-probability paths (Weibull mixture), then vote by summed path probability."""

    prune: bool = Field(True, description="reasoning pruning (off: perplexity consistency alone)")
    min_fit: int = Field(6, ge=4, description="fewest paths a mixture is fitted to")


def path_probability(c: Candidate) -> float | None:
    """``exp(mean token logprob)`` of a candidate, or ``None`` without log-probabilities."""
    if not c.logprobs:
        return None
    return math.exp(sum(c.logprobs) / len(c.logprobs))


def _weibull_logpdf(x: np.ndarray, k: float, lam: float) -> np.ndarray:
    z = x / lam
    return np.log(k / lam) + (k - 1) * np.log(z) - z**k


def weibull_mixture(values: Sequence[float]) -> dict[str, Any] | None:
    """Maximum-likelihood two-component Weibull mixture of values in (0, 1]; ``None`` when it cannot be fitted.

    Returns the components' ``shape``/``scale``/``mean``, the low component's weight and each value's
    posterior probability of belonging to the low component (``low_posterior``).

    Example:
        >>> fit = weibull_mixture([0.1, 0.12, 0.15, 0.11, 0.9, 0.92, 0.95, 0.91])
        >>> [round(p) for p in fit["low_posterior"]]
        [1, 1, 1, 1, 0, 0, 0, 0]
    """
    x = np.clip(np.asarray(values, dtype=float), 1e-6, 1.0)
    if len(x) < 4 or float(np.ptp(x)) < 1e-9:
        return None
    order = np.sort(x)
    lo, hi = order[: len(x) // 2], order[len(x) // 2 :]

    def params(theta: np.ndarray) -> tuple[float, float, float, float]:
        k1, l1, k2, l2 = np.exp(np.clip(theta[:4], -6.0, 6.0))  # shapes and scales kept in a sane range
        return float(k1), float(l1), float(k2), float(l2)

    def nll(theta: np.ndarray) -> float:
        k1, l1, k2, l2 = params(theta)
        w = expit(theta[4])
        a = np.log(w + 1e-12) + _weibull_logpdf(x, k1, l1)
        b = np.log(1 - w + 1e-12) + _weibull_logpdf(x, k2, l2)
        value = -float(np.logaddexp(a, b).sum())
        return value if math.isfinite(value) else 1e300

    start = np.array([np.log(2.0), np.log(lo.mean()), np.log(2.0), np.log(hi.mean()), 0.0])
    with np.errstate(all="ignore"):
        res = minimize(nll, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-9})
    if not np.all(np.isfinite(res.x)) or not math.isfinite(res.fun):
        return None
    k1, l1, k2, l2 = params(res.x)
    w = float(expit(res.x[4]))
    means = (l1 * gamma(1 + 1 / k1), l2 * gamma(1 + 1 / k2))
    a = np.log(w + 1e-12) + _weibull_logpdf(x, k1, l1)
    b = np.log(1 - w + 1e-12) + _weibull_logpdf(x, k2, l2)
    post1 = np.exp(a - np.logaddexp(a, b))
    low_is_first = means[0] <= means[1]
    low_post = post1 if low_is_first else 1 - post1
    comps = [{"shape": k1, "scale": l1, "mean": means[0]}, {"shape": k2, "scale": l2, "mean": means[1]}]
    return {
        "components": comps if low_is_first else comps[::-1],
        "low_weight": w if low_is_first else 1 - w,
        "low_posterior": [float(v) for v in low_post],
    }


def rpc(candidates: Sequence[Candidate], *, prune: bool = True, min_fit: int = 6) -> tuple[list[Candidate], dict]:
    """Candidates with the RPC winner first (``scores["rpc"]``: its confidence), and what was done."""
    probs = [path_probability(c) for c in candidates]
    voters = [i for i, (c, pr) in enumerate(zip(candidates, probs, strict=True)) if pr is not None and c.answer]
    pruned: set[int] = set()
    fit = None
    if prune and len(voters) >= min_fit:
        values = [probs[i] for i in voters]
        fit = weibull_mixture(values)  # type: ignore[arg-type]
        if fit is not None:
            mean = sum(values) / len(values)  # type: ignore[arg-type]
            for i, v, low in zip(voters, values, fit["low_posterior"], strict=True):
                if low > 0.5 and v < mean:  # type: ignore[operator]
                    pruned.add(i)
    scores: dict[str, float] = {}
    first: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    for i in voters:
        if i in pruned:
            continue
        c = candidates[i]
        key = normalize_answer(c.answer)  # type: ignore[arg-type]
        first.setdefault(key, i)
        if (key, c.text) in seen:  # a distinct path counts once
            continue
        seen.add((key, c.text))
        scores[key] = scores.get(key, 0.0) + probs[i]  # type: ignore[operator]
    info = {"pruned": len(pruned), "voters": len(voters), "fit": None if fit is None else {
        "components": fit["components"], "low_weight": fit["low_weight"]}}  # fmt: skip
    if not scores:
        return list(candidates), info
    best = max(scores, key=lambda k: (scores[k], -first[k]))
    total = sum(scores.values())
    win = first[best]
    winner = candidates[win].with_score("rpc", scores[best] / total)
    return [winner, *(c for i, c in enumerate(candidates) if i != win)], info


@OPERATORS.register("rpc_vote", RPCParams)
async def rpc_vote(ctx: Context, state: State, p: RPCParams) -> State:
    """The RPC answer's candidate first: prune low-probability paths, sum distinct paths' probabilities."""
    ranked, info = rpc(state.candidates, prune=p.prune, min_fit=p.min_fit)
    return state.with_candidates(ranked, node=ctx.node, op="rpc_vote", **info)
