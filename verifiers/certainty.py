"""Self-certainty: how sure the model was of its own candidate, from its token statistics.

Scores come from the generation's own logprobs and entropies (``GenRequest(logprobs=True,
entropies=True)``), so they cost no extra model pass. A candidate without logprobs is scored by
teacher forcing on an engine, when one is given (one ``score`` call for all candidates of a problem).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from archon.core import Candidate, Engine, Problem, UnsupportedFeatureError

Metric = Literal["mean_logprob", "perplexity", "mean_entropy", "path_probability"]
HIGHER_IS_BETTER: dict[str, bool] = {
    "mean_logprob": True,
    "perplexity": False,
    "mean_entropy": False,
    "path_probability": True,
}


def mean_logprob(logprobs: Sequence[float]) -> float:
    """Mean token log-probability (``nan`` for no token)."""
    return sum(logprobs) / len(logprobs) if logprobs else math.nan


def perplexity(logprobs: Sequence[float]) -> float:
    """``exp(-mean logprob)``: 1 for a certain model, larger when unsure.

    Example:
        >>> round(perplexity([math.log(0.5)] * 4), 6)
        2.0
    """
    return math.exp(-mean_logprob(logprobs)) if logprobs else math.nan


def path_probability(logprobs: Sequence[float]) -> float:
    """``exp(mean logprob)``: RPC's per-path probability ("Bridging Internal Probability and Self-Consistency")."""
    return math.exp(mean_logprob(logprobs)) if logprobs else math.nan


def mean_entropy(entropies: Sequence[float]) -> float:
    """Mean next-token entropy over the candidate's tokens (nats)."""
    return sum(entropies) / len(entropies) if entropies else math.nan


class SelfCertainty:
    """An outcome verifier from a candidate's own token statistics.

    Args:
        metric: ``mean_logprob`` or ``path_probability`` (higher is better), ``perplexity`` or
            ``mean_entropy`` (lower is better).
        engine: Scores candidates that carry no logprobs by teacher forcing (not possible for
            ``mean_entropy``, which needs the generation's entropies).

    Example:
        >>> import asyncio
        >>> from archon.core import Candidate, Problem
        >>> c = [Candidate("a", logprobs=(-0.1, -0.3)), Candidate("b", logprobs=(-2.0,))]
        >>> asyncio.run(SelfCertainty("mean_logprob").score(Problem("p", "q"), c))
        [-0.2, -2.0]
    """

    def __init__(self, metric: Metric = "mean_logprob", *, engine: Engine | None = None) -> None:
        if metric not in HIGHER_IS_BETTER:
            raise ValueError(f"SelfCertainty.metric: one of {', '.join(HIGHER_IS_BETTER)}, got {metric!r}")
        self.metric = metric
        self.engine = engine
        self.name = f"self_{metric}"
        self.kind: Literal["outcome"] = "outcome"
        self.higher_is_better = HIGHER_IS_BETTER[metric]

    async def score(self, problem: Problem, candidates: Sequence[Candidate]) -> list[float]:
        """One score per candidate."""
        if self.metric == "mean_entropy":
            missing = [i for i, c in enumerate(candidates) if c.entropies is None]
            if missing:
                raise UnsupportedFeatureError(
                    f"SelfCertainty('mean_entropy'): candidate {missing[0]} has no entropies; "
                    "generate with GenRequest(entropies=True)"
                )
            return [mean_entropy(c.entropies or ()) for c in candidates]
        logprobs = await self._logprobs(problem, candidates)
        reduce = {"mean_logprob": mean_logprob, "perplexity": perplexity, "path_probability": path_probability}
        return [reduce[self.metric](lp) for lp in logprobs]

    async def _logprobs(self, problem: Problem, candidates: Sequence[Candidate]) -> list[Sequence[float]]:
        missing = [i for i, c in enumerate(candidates) if c.logprobs is None]
        out: list[Sequence[float]] = [c.logprobs or () for c in candidates]
        if not missing:
            return out
        if self.engine is None:
            raise UnsupportedFeatureError(
                f"SelfCertainty: candidate {missing[0]} has no logprobs; generate with GenRequest(logprobs=True) "
                "or give the verifier an engine to score them"
            )
        scored = await self.engine.score(problem.messages(), [candidates[i].text for i in missing])
        for i, lp in zip(missing, scored.logprobs, strict=True):
            out[i] = lp
        return out
