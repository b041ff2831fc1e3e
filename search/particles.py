r"""Particle filtering over steps, for one problem.

After Puri et al., "A Probabilistic Inference Approach to Inference-Time Scaling of LLMs using Particle-
Based Monte Carlo Methods". ``P`` particles (partial solutions) are extended one step per round. Each
particle's log-weight is the logit of the PRM's aggregated reward of its partial solution, ``logit(r)``
(or, with no PRM, the policy's own mean log-probability per token: its self-certainty). Then ``P``
particles are drawn from ``softmax(weights / temperature)`` — multinomial, or systematic (one uniform ``u
~ U(0, 1/P)``, the points ``u + j/P`` of the cumulative weights: lower variance) — every round, or only
when the effective sample size ``1 / Σ w²`` falls below ``ess_threshold · P``. Sampling from the reward's
typical set, rather than keeping its top, is what makes the method robust to a PRM's errors.

A finished particle (it wrote the final answer) either stays in the pool with its last weight
(``finished: keep``: it can be drawn again, and crowd out worse unfinished ones) or leaves it
(``finished: remove``: the pool shrinks). The search ends when every particle has finished, or after
``max_steps`` rounds, when the unfinished ones are rolled out. The result is exactly ``P`` finished
particles (copies included: a particle drawn twice is two particles), best first by weight, or with the
PRM-weighted vote's winner first — fewer only when the budget ran out, never an unfinished one. Each
round's log-weights, effective sample size and draws go to the trace.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from archon.core import Aggregation, Context, Engine, EngineRef, OperatorParams, State, VerifierRef
from archon.core.anytime import within_budget
from archon.core.generation import MAX_N
from archon.core.registry import OPERATORS
from search.steps import ANSWER_MARKER, DELIMITER, Partial, extend, root
from search.tree import Tree, choose, prm_scores, roll_out

_EDGE = 1e-6
"""Rewards are clipped into ``[_EDGE, 1 - _EDGE]`` before their logit."""


class ParticleFilterParams(OperatorParams):
    """Particle filtering: ``particles`` partial solutions, resampled by their PRM weights each round."""

    cost_growth: ClassVar = {"particles": 1.0}

    engine: EngineRef
    prm: VerifierRef | None = Field(None, description="a process verifier; none: the policy's self-certainty")
    particles: int = Field(8, ge=1, le=MAX_N)
    max_steps: int = Field(12, ge=1, description="rounds before the unfinished particles are rolled out")
    aggregation: Aggregation = Field("min", description="step scores to one: last, min, prod or mean")
    resample_temperature: float = Field(1.0, gt=0, description="T of softmax(weights / T)")
    resampling: Literal["multinomial", "systematic"] = "systematic"
    resample_when: Literal["always", "ess"] = Field("always", description="every round, or when ESS is low")
    ess_threshold: float = Field(0.5, gt=0, le=1, description="resample when ESS < threshold x particles")
    finished: Literal["keep", "remove"] = Field("keep", description="finished particles stay in the pool or leave")
    choose: Literal["weight", "vote"] = Field("weight", description="the largest weight, or the weighted vote")
    temperature: float = Field(0.8, ge=0, description="sampling temperature of the steps")
    max_step_tokens: int = Field(64, ge=1)
    max_tokens: int = Field(256, ge=1, description="most tokens of a rollout to the end")
    delimiter: str = Field(DELIMITER, min_length=1)
    answer_marker: str = Field(ANSWER_MARKER, min_length=1)


def logit(r: float) -> float:
    """``log(r / (1 - r))`` of a reward clipped into (0, 1); ``nan`` stays ``nan``.

    Example:
        >>> round(logit(0.5), 6), round(logit(0.9), 4), logit(1.0) > 13
        (0.0, 2.1972, True)
    """
    if math.isnan(r):
        return r
    r = min(max(r, _EDGE), 1 - _EDGE)
    return math.log(r / (1 - r))


def softmax(logw: Sequence[float], temperature: float = 1.0) -> list[float]:
    """Normalized weights ``softmax(logw / temperature)`` (a ``nan`` log-weight gets weight 0).

    Example:
        >>> [round(w, 3) for w in softmax([0.0, math.log(3)])]
        [0.25, 0.75]
    """
    xs = [x / temperature for x in logw if not math.isnan(x)]
    if not xs:
        return [1.0 / len(logw)] * len(logw)
    top = max(xs)
    e = [0.0 if math.isnan(x) else math.exp(x / temperature - top) for x in logw]
    total = sum(e)
    return [v / total for v in e]


def ess(weights: Sequence[float]) -> float:
    """Effective sample size ``1 / Σ w²`` of normalized weights.

    Example:
        >>> ess([0.25] * 4), ess([1.0, 0.0, 0.0, 0.0])
        (4.0, 1.0)
    """
    return 1.0 / sum(w * w for w in weights)


def resample(weights: Sequence[float], count: int, rng: random.Random, how: str = "systematic") -> list[int]:
    """``count`` indexes drawn by ``weights`` (normalized): multinomial, or systematic.

    Example:
        >>> resample([0.0, 1.0, 0.0], 3, random.Random(0))
        [1, 1, 1]
        >>> sorted(resample([0.5, 0.5], 4, random.Random(0)))
        [0, 0, 1, 1]
    """
    if how == "multinomial":
        return rng.choices(range(len(weights)), weights=weights, k=count)
    u = rng.random() / count
    out, cumulative, i = [], weights[0], 0
    for j in range(count):
        point = u + j / count
        while point > cumulative and i < len(weights) - 1:
            i += 1
            cumulative += weights[i]
        out.append(i)
    return out


async def _log_weights(ctx: Context, state: State, p: ParticleFilterParams, pool: list[Partial]) -> list[float]:
    if p.prm is None:
        return [x.mean_logprob for x in pool]
    rewards = await prm_scores(ctx, state, p.prm, pool, aggregation=p.aggregation, model=p.engine)
    higher = ctx.process_verifier(p.prm).higher_is_better
    return [logit(r) if higher else logit(1 - r) for r in rewards]


@dataclass
class _Run:
    """One particle-filtering pass: the final particles with their log-weights and paths, and its log."""

    done: list[tuple[Partial, float, tuple[Partial, ...]]]
    rounds: int
    history: list[dict[str, object]]
    tree: list[dict[str, object]]


async def _filter(
    ctx: Context,
    state: State,
    p: ParticleFilterParams,
    engine: Engine,
    *,
    rng: random.Random,
    seed: int,
    reference: tuple[Partial, ...] = (),
) -> _Run:
    """Particle filtering; with a ``reference`` path (its partial after each step), conditioned on it.

    Conditioned (conditional SMC, the inner step of particle Gibbs): slot 0 holds the reference's partial
    of the same depth, is scored with the others, and survives every resampling; the other ``P - 1``
    slots are drawn from all ``P`` weights.
    """
    step = {"delimiter": p.delimiter, "answer_marker": p.answer_marker, "max_step_tokens": p.max_step_tokens}
    start = root(engine, state.messages())
    pool, paths = [start] * p.particles, [()] * p.particles
    logw = [0.0] * p.particles
    removed: list[tuple[Partial, float, tuple[Partial, ...]]] = []
    history: list[dict[str, object]] = []
    tree, at = Tree(), [None] * p.particles  # the trace's tree: each particle's node (None: the question)
    rounds, fixed = 0, 1 if reference else 0
    while rounds < p.max_steps and any(not x.finished for x in pool[fixed:]):
        grown = await extend(
            engine, pool[fixed:], 1, temperature=p.temperature, seed=seed + 1000 * rounds,
            logprobs=p.prm is None, **step,
        )  # fmt: skip
        if fixed:  # the reference slot moves along the reference path
            grown = [[reference[min(rounds, len(reference) - 1)]], *grown]
        rounds += 1
        moved = [i for i, g in enumerate(grown) if g and g[0] is not pool[i]]
        if not any(i >= fixed for i in moved):
            break  # the budget refused every step (or only the reference moved)
        paths = [(*t, g[0]) if g and g[0] is not x else t for x, g, t in zip(pool, grown, paths, strict=True)]
        pool = [g[0] if g else x for x, g in zip(pool, grown, strict=True)]
        fresh = await _log_weights(ctx, state, p, [pool[i] for i in moved])
        for i, w in zip(moved, fresh, strict=True):
            logw[i] = w
            at[i] = tree.add(pool[i], at[i])
            tree.scored([at[i]], [_shown(w, p)])
        if p.finished == "remove" and not fixed:
            removed += [(x, w, t) for x, w, t in zip(pool, logw, paths, strict=True) if x.finished]
            kept = [i for i, x in enumerate(pool) if not x.finished]
            pool, logw, paths = [pool[i] for i in kept], [logw[i] for i in kept], [paths[i] for i in kept]
            at = [at[i] for i in kept]
            if not pool:
                break
        weights = softmax(logw, p.resample_temperature)
        size = ess(weights)
        drawn = p.resample_when == "always" or size < p.ess_threshold * len(pool)
        free = len(pool) - fixed
        picks = list(range(fixed)) + (
            resample(weights, free, rng, p.resampling) if drawn else list(range(fixed, len(pool)))
        )
        history.append({"round": rounds, "ess": size, "log_weights": list(logw), "drawn": picks if drawn else None})
        pool, logw, paths = [pool[i] for i in picks], [logw[i] for i in picks], [paths[i] for i in picks]
        at = [at[i] for i in picks]
        tree.kept([i for i in at if i is not None])  # resampled: carried into the next round
    ends = [None] * len(removed) + list(at)  # the removed particles' nodes are not tracked: drawn as they were
    done = removed + list(zip(pool, logw, paths, strict=True))
    unfinished = [j for j, (x, _, _) in enumerate(done) if not x.finished]
    rolled = await roll_out(
        engine, [done[j][0] for j in unfinished], max_tokens=p.max_tokens, temperature=p.temperature,
        answer_marker=p.answer_marker, seed=seed,
    )  # fmt: skip
    for j, x in zip(unfinished, rolled, strict=True):
        before = len(done[j][0].steps)
        done[j] = (x, done[j][1], (*done[j][2], x))
        node = tree.add(x, ends[j])  # the roll-out to the end: one node holding all its steps
        tree.nodes[node]["step"] = "".join(x.steps[before:])
        tree.nodes[node]["rollout"] = True
    return _Run([d for d in done if d[0].finished][: p.particles], rounds, history, tree.nodes)


def _shown(log_weight: float, p: ParticleFilterParams) -> float:
    """A node's score in the trace's tree: the PRM's reward (its weight is the reward's logit), else the weight."""
    if p.prm is None:
        return log_weight
    return 1.0 / (1.0 + math.exp(-max(-700.0, min(700.0, log_weight))))


async def _result(
    ctx: Context, state: State, p: ParticleFilterParams, run: _Run, *, exhausted: bool, op: str, **event: object
) -> State:
    """The particles as candidates, best first, with the pass's log in the trace."""
    shares = softmax([w for _, w, _ in run.done], p.resample_temperature) if run.done else []
    cands = [
        x.candidate(p.engine, rounds=run.rounds).with_score("weight", w).with_score("share", share)
        for (x, w, _), share in zip(run.done, shares, strict=True)
    ]
    if p.prm is not None and cands and not exhausted:
        with within_budget():
            final = await prm_scores(ctx, state, p.prm, [x for x, _, _ in run.done], aggregation=p.aggregation)
            cands = [c.with_score(p.prm, r) for c, r in zip(cands, final, strict=True)]
    # the largest log-weight first, or the vote of the particles' answers weighted by their shares
    cands = choose(cands, "share", "vote" if p.choose == "vote" else "score", higher_is_better=True)
    info: dict[str, object] = {"rounds": run.rounds, "finished": len(cands), "weights_by": p.prm or "self_certainty"}
    info |= {"rounds_log": run.history, "tree": run.tree, **event}
    if exhausted:
        info["stopped_by_budget"] = True
    return state.with_candidates(cands, node=ctx.node, op=op, **info)


@OPERATORS.register("particle_filter", ParticleFilterParams)
async def particle_filter(ctx: Context, state: State, p: ParticleFilterParams) -> State:
    """Particle filtering over steps with a PRM (or self-certainty); ``particles`` finished solutions."""
    engine = ctx.engine(p.engine)
    run = _Run([], 0, [], [])
    with within_budget() as budget:
        run = await _filter(ctx, state, p, engine, rng=random.Random(ctx.seed), seed=ctx.seed or 0)
    return await _result(ctx, state, p, run, exhausted=budget.exhausted, op="particle_filter")


class ParticleGibbsParams(ParticleFilterParams):
    """Particle Gibbs: ``iterations`` passes of particle filtering, each conditioned on a reference particle."""

    cost_growth: ClassVar = {"particles": 1.0, "iterations": 1.0}

    iterations: int = Field(3, ge=1, description="particle-filtering passes")
    finished: Literal["keep"] = Field("keep", description="finished particles stay in the pool (as the method needs)")

    @model_validator(mode="after")
    def _room_for_the_reference(self) -> ParticleGibbsParams:
        if self.particles < 2:
            raise ValueError("particle Gibbs needs particles >= 2 (one slot holds the reference)")
        return self


@OPERATORS.register("particle_gibbs", ParticleGibbsParams)
async def particle_gibbs(ctx: Context, state: State, p: ParticleGibbsParams) -> State:
    """Particle Gibbs (its_hub): each pass of particle filtering keeps the reference particle drawn from the last.

    The first pass is plain particle filtering. After each pass one final particle is drawn by its
    weight; the next pass is conditioned on its path (:func:`_filter`). The last pass's particles are the
    result. A pass the budget stops ends the search with the particles of the last complete pass.
    """
    engine = ctx.engine(p.engine)
    rng = random.Random(ctx.seed)
    reference: tuple[Partial, ...] = ()
    last = run = _Run([], 0, [], [])
    passes: list[dict[str, object]] = []
    with within_budget() as budget:
        for k in range(p.iterations):
            run = await _filter(ctx, state, p, engine, rng=rng, seed=(ctx.seed or 0) + 100_000 * k, reference=reference)
            if not run.done:
                break
            last = run
            shares = softmax([w for _, w, _ in run.done], p.resample_temperature)
            chosen = run.done[resample(shares, 1, rng, "multinomial")[0]]
            reference = chosen[2]
            passes.append({"pass": k + 1, "reference_answer": chosen[0].candidate().answer, "rounds": run.rounds})
    return await _result(ctx, state, p, last, exhausted=budget.exhausted, op="particle_gibbs", passes=passes)
