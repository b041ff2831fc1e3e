"""Evaluating one concrete pipeline of a study: accuracy, mean cost per problem, constraints, pruning.

All trials share one :class:`~archon.runtime.Resources`: the models are loaded once, and every engine
draws by index (:class:`~samplers.indexed.IndexSeededEngine`) with the study's generation cache
(:class:`~samplers.cache.GenerationCache`) as its store, charging each request its nominal cost whether
its samples were drawn now or by an earlier trial. A trial's accuracy
and cost are therefore those of its configuration, not of the order trials ran in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archon.core import Problem
from archon.core.sync import run_sync
from archon.runtime import Resources, Runner
from archon.spec.models import BudgetSpec, Spec
from budgets import LIMITS
from samplers.engines import EnginePool

COST_KEYS = LIMITS
"""The per-problem costs a trial reports (means over its problems): the cost vocabulary."""


@dataclass
class Evaluation:
    """What one concrete pipeline scored on some problems."""

    accuracy: float
    coverage: float
    problems: int
    cost: dict[str, float]
    correct: dict[str, bool] = field(default_factory=dict)
    stopped: bool = False

    def violations(self, budget: dict[str, float]) -> dict[str, float]:
        """Each limit's relative excess, ``cost / limit - 1`` (feasible when every value is ≤ 0)."""
        return {k: self.cost.get(k, 0.0) / limit - 1.0 for k, limit in budget.items()}

    def feasible(self, budget: dict[str, float]) -> bool:
        """Whether the mean cost per problem is within every limit."""
        return all(v <= 0 for v in self.violations(budget).values())

    def attrs(self) -> dict[str, Any]:
        """The trial's user attributes: accuracy, coverage, problems and each mean cost."""
        return {"accuracy": self.accuracy, "coverage": self.coverage, "problems": self.problems, **self.cost}


class Evaluator:
    """Runs concrete specs of one study on problems, sharing models and the generation cache.

    Args:
        spec: The study's spec (its ``engines`` and ``verifiers`` are those of every trial).
        cache_path: The cache's SQLite file; ``None`` switches the cache off (samples are still drawn by
            index, so results are the same either way).
        hardware: Hardware profile for the idealized latency (overrides the spec's).
        seed: The run seed of every trial (the same seeds let trials share samples).
        concurrency: Problems in flight at once.
    """

    def __init__(
        self,
        spec: Spec,
        *,
        cache_path: str | Path | None = None,
        hardware: str | None = None,
        seed: int = 0,
        concurrency: int = 64,
    ) -> None:
        from samplers.cache import GenerationCache
        from samplers.indexed import IndexSeededEngine

        self.spec = spec
        self.hardware = hardware
        self.seed = seed
        self.concurrency = concurrency
        self.cache = GenerationCache(cache_path) if cache_path is not None else None
        self.engines: dict[str, IndexSeededEngine] = {}
        pool = EnginePool(dict(spec.engines))

        def wrap(name: str, engine: Any) -> Any:
            cfg = pool.config(name)
            identity = json.dumps(
                cfg.model_dump(include={"kind", "model", "device", "dtype", "base_url", "options"}), sort_keys=True
            )
            self.engines[name] = IndexSeededEngine(engine, self.cache, identity=identity, usage="nominal")
            return self.engines[name]

        # nominal usage reports no cached token; a trial is credited what each problem computed before
        # (its beams' and samples' shared prefixes), as `archon run` credits it
        self.resources = Resources(pool, wrap=wrap, credit="computed")

    def tokens_generated(self) -> int:
        """Tokens the engines actually generated so far (what the cache saves shows here)."""
        return sum(e.draw_stats.tokens_generated for e in self.engines.values())

    def run(
        self,
        concrete: Spec,
        problems: Sequence[Problem],
        *,
        on_result: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Evaluation:
        """Evaluate ``concrete`` on ``problems``.

        ``on_result`` sees each problem's record as it finishes; when it returns ``True`` the problems not
        yet started are skipped (a pruned trial) and the evaluation is marked ``stopped``.
        """
        if self.hardware is not None:
            budget = concrete.budget or BudgetSpec()
            concrete = concrete.model_copy(update={"budget": budget.model_copy(update={"hardware": self.hardware})})
        runner = Runner(concrete, seed=self.seed, concurrency=self.concurrency, resources=self.resources)
        stop = False

        def progress(rec: dict[str, Any]) -> None:
            nonlocal stop
            if on_result is not None and not stop:
                stop = bool(on_result(rec))

        summary = run_sync(runner.run(problems, progress=progress, should_stop=lambda: stop))
        per = summary["per_problem"]
        return Evaluation(
            accuracy=summary["accuracy"] or 0.0,
            coverage=summary["coverage"] or 0.0,
            problems=summary["problems"],
            cost={k: float(per.get(k, 0.0)) for k in COST_KEYS},
            correct=dict(runner.correct),
            stopped=stop,
        )

    def close(self) -> None:
        """Close the models and the cache."""
        run_sync(self.resources.aclose())
        if self.cache is not None:
            self.cache.close()
