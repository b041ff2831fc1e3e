"""A tuning study: Optuna trials of a spec's search space, under compute limits, in a study directory.

The study directory holds ``optuna.db`` (SQLite, unless ``storage`` names another Optuna RDB URL such as
PostgreSQL), ``cache.sqlite`` (the generation cache shared by every trial and worker), ``spec.yaml`` (the
spec tuned), and, when the study ends, ``best.yaml`` (a concrete spec ``archon run`` accepts) and
``summary.json``. Optuna writes each trial when it finishes, so a study killed at any moment — even by
``kill -9`` — loses only the trials in flight; ``resume=True`` continues it (heartbeats mark the trials of
a dead worker failed, and they are retried once). A new study begins with a startup design (see
:mod:`archon.tune.startup`): queued trials that try every categorical choice before the sampler proposes.

Example:
    >>> from archon.spec import parse_spec
    >>> spec = parse_spec({"engines": {"m": {"model": "tiny-l"}}, "pipeline": [{"id": "a", "op": "sample",
    ...     "params": {"engine": "m", "max_tokens": 8}}], "tune": {"trials": 2}})
    >>> options = TuneSpec.of(spec, trials=3)  # the spec's tune section, overridden
    >>> options.trials, options.objectives
    (3, ['accuracy'])
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from archon.core import ArchonError, Problem
from archon.core.operators import repair_factors
from archon.spec.load import SpecError
from archon.spec.models import Spec, TuneSpec
from archon.tune.evaluate import Evaluator
from archon.tune.resume import PerTrialSeed, mark_drawn, rerun_interrupted, superseded
from archon.tune.space import concretize, cost_knobs, suggest
from archon.tune.startup import cover


class StudyError(ArchonError):
    """A study that cannot start or continue (exists already, missing, nothing feasible ...)."""


_REPAIRS = 2
"""How many times a chain of budget repairs may repair a trial (see :meth:`Study._repair`)."""


@dataclass
class Configuration:
    """A configuration the study reports: its trial, parameters, and scores on the minibatch and split."""

    number: int
    params: dict[str, Any]
    search: dict[str, Any]
    full: dict[str, Any] | None = None

    @property
    def score(self) -> dict[str, Any]:
        """The scores that decide: the whole split's when re-evaluated, else the trial's own."""
        return self.full or self.search

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"number": self.number, "params": self.params, "search": self.search, "full": self.full}


class Study:
    """Tunes ``spec`` on ``problems`` in ``directory``.

    Args:
        spec: The spec with ``{tune: ...}`` values (``Runner`` refuses those; ``suggest`` fixes them).
        problems: The problems trials are scored on (the dev split); a ``minibatch`` is drawn from them.
        directory: The study directory.
        options: How to tune (:class:`~archon.spec.models.TuneSpec`: the spec's ``tune`` section, overridden).
        resume: Continue the study already in ``directory`` (without it, an existing study is an error).
        worker: Run trials only (another process re-evaluates and reports).
        on_trial: Called with each finished trial (the live table).
        cache_path: The generation cache's file (default: ``cache.sqlite`` in ``directory``); studies of
            the same models may share one.
    """

    def __init__(
        self,
        spec: Spec,
        problems: Sequence[Problem],
        directory: str | Path,
        options: TuneSpec,
        *,
        resume: bool = False,
        worker: bool = False,
        on_trial: Callable[[optuna.trial.FrozenTrial], None] | None = None,
        cache_path: str | Path | None = None,
    ) -> None:
        if not spec.tunables():
            raise SpecError("the spec has no {tune: ...} value: nothing to tune (use `archon run`)")
        if not problems:
            raise StudyError("no problems to tune on")
        self.spec = spec
        self.problems = list(problems)
        self.dir = Path(directory)
        self.options = options
        self.on_trial = on_trial
        self.name = options.study or "study"
        if resume and not options.storage and not (self.dir / "optuna.db").is_file():
            raise StudyError(f"{self.dir}: no study to resume (no optuna.db there)")
        created = not self.dir.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start(spec, options, resume=resume, worker=worker, cache_path=cache_path)
        except BaseException:
            if created and not any(self.dir.iterdir()):  # a study refused at once leaves nothing behind
                self.dir.rmdir()
            raise

    def _start(
        self, spec: Spec, options: TuneSpec, *, resume: bool, worker: bool, cache_path: str | Path | None
    ) -> None:
        self.storage = _storage(options.storage or f"sqlite:///{(self.dir / 'optuna.db').resolve()}")
        self.worker = worker
        saved = self.dir / "spec.yaml"
        if (
            resume
            and saved.is_file()
            and _space(yaml.safe_load(saved.read_text()))
            != _space(spec.model_dump(mode="json", exclude_none=True, exclude_defaults=True))
        ):
            raise StudyError(f"{saved}: the study tuned another spec; resume it with that spec, or use another --out")
        self.study = self._open(resume=resume, worker=worker)
        self.rerun = rerun_interrupted(self.study) if resume and not worker else []
        if not worker:
            self._queue_startup()
        rng = random.Random(options.seed)
        order = list(self.problems)
        rng.shuffle(order)  # one fixed shuffled order: the pruner compares trials problem by problem
        self.search_problems = order[: options.minibatch] if options.minibatch else order
        self.evaluator = Evaluator(
            spec,
            cache_path=(cache_path or self.dir / "cache.sqlite") if options.cache else None,
            hardware=options.hardware,
            seed=options.seed,
        )
        if not worker:
            (self.dir / "spec.yaml").write_text(_dump(spec))

    # ------------------------------------------------------------------ the study

    def _open(self, *, resume: bool, worker: bool) -> optuna.Study:
        names = [s.study_name for s in optuna.get_all_study_summaries(self.storage)]
        if self.name in names and not (resume or worker):
            raise StudyError(f"{self.dir}: study {self.name!r} exists; pass --resume to continue it")
        if self.name not in names and resume:
            raise StudyError(f"{self.dir}: no study {self.name!r} to resume")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return self._create()

    def _create(self) -> optuna.Study:
        study = optuna.create_study(
            storage=self.storage,
            study_name=self.name,
            directions=self.options.directions,
            sampler=self._sampler(),
            pruner=self._pruner(),
            load_if_exists=True,
        )
        for key in ("objectives", "budget", "hardware"):
            before, now = study.user_attrs.get(key, getattr(self.options, key)), getattr(self.options, key)
            if before != now:
                raise StudyError(f"{self.dir}: the study's {key} is {before}, not {now}; tune into another --out")
        study.set_user_attr("objectives", self.options.objectives)
        study.set_user_attr("budget", self.options.budget)
        study.set_user_attr("hardware", self.options.hardware)
        return study

    def _queue_startup(self) -> None:
        """Queue the startup design's trials, once per study, ahead of the sampler's.

        The design is drawn when the study is created and kept in the study (``startup``: the design's
        trials and how many are queued), so a resumed study never queues a trial twice, even with another
        seed; trials queued but not run when a study was killed are still waiting and run first. Only
        the first ``trials`` are queued: a resume that asks for more trials queues the rest of the design
        (unless ``startup`` is now ``none``). A study begun without a design (before there were designs)
        gets none.
        """
        state = self.study.user_attrs.get("startup")
        if state is None:
            if self.study.get_trials(deepcopy=False):
                return
            rows = cover(self.spec, seed=self.options.seed) if self.options.startup == "cover" else []
            state = {"design": self.options.startup, "trials": rows, "queued": 0}
            self.study.set_user_attr("startup", state)
        if self.options.startup == "none":
            return
        rows, queued = state["trials"], int(state["queued"])
        upto = min(len(rows), self.options.trials)
        for i in range(queued, upto):
            self.study.enqueue_trial(rows[i], user_attrs={"startup": i}, skip_if_exists=True)
        if upto > queued:
            self.study.set_user_attr("startup", {**state, "queued": upto})

    def _sampler(self) -> optuna.samplers.BaseSampler:
        # A trial's proposal is seeded by the study's seed and the trials finished before it
        # (archon.tune.resume), so a resumed study proposes what the study left alone would have;
        # worker processes add their pid, so that they do not all propose the same trial.
        kind, liar = self.options.sampler, self.options.workers > 1
        seed = self.options.seed + (os.getpid() if self.worker else 0)

        def make(seed: int) -> optuna.samplers.BaseSampler:
            if kind == "nsga2":
                return optuna.samplers.NSGAIISampler(seed=seed)
            if kind == "gp":
                return optuna.samplers.GPSampler(seed=seed)
            if kind == "random":
                return optuna.samplers.RandomSampler(seed=seed)
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, constant_liar=liar, n_startup_trials=8
            )

        return PerTrialSeed(make, seed)

    def _pruner(self) -> optuna.pruners.BasePruner:
        if self.options.pruner == "wilcoxon" and len(self.options.objectives) == 1:
            return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=32)
        return optuna.pruners.NopPruner()

    def finished(self) -> int:
        """Trials finished (complete or pruned)."""
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        return len(self.study.get_trials(deepcopy=False, states=states))

    def optimize(self) -> None:
        """Run trials until the study holds ``trials`` finished ones (or ``timeout`` passes)."""
        if self.finished() >= self.options.trials:
            return
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        callbacks: list[Any] = [optuna.study.MaxTrialsCallback(self.options.trials, states=states)]
        if self.on_trial is not None:
            on_trial = self.on_trial
            callbacks.append(lambda _s, t: on_trial(t))
        self.study.optimize(self._objective, timeout=self.options.timeout, callbacks=callbacks, gc_after_trial=False)

    def _objective(self, trial: optuna.Trial) -> float | tuple[float, float]:
        try:
            return self._trial(trial)
        except KeyboardInterrupt:  # wherever in the trial Ctrl-C lands, the next --resume reruns it
            trial.set_user_attr("interrupted", True)
            raise

    def _trial(self, trial: optuna.Trial) -> float | tuple[float, float]:
        concrete = suggest(trial, self.spec)
        mark_drawn(trial)
        index = {p.id: i for i, p in enumerate(self.search_problems)}
        prune = isinstance(self.study.pruner, optuna.pruners.WilcoxonPruner)

        done: dict[int, float] = {}
        reported = 0

        def on_result(rec: dict[str, Any]) -> bool:
            # Report in the problems' fixed order, whatever order they finish in, so a trial's pruning
            # decision depends on its answers only (not on timing, nor on which samples were cached).
            nonlocal reported
            if not prune:
                return False
            done[index[rec["id"]]] = float(bool(rec["correct"]))
            while reported in done:
                trial.report(done.pop(reported), step=reported)
                reported += 1
                if trial.should_prune():
                    return True
            return False

        start = time.perf_counter()
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        ev = self.evaluator.run(concrete, self.search_problems, on_result=on_result)
        for k, v in ev.attrs().items():
            trial.set_user_attr(k, v)
        trial.set_user_attr("feasible", ev.feasible(self.options.budget))
        trial.set_user_attr("trial_seconds", time.perf_counter() - start)
        violations = ev.violations(self.options.budget)
        for k, v in violations.items():
            trial.set_constraint(k, v)
        if ev.stopped:
            raise optuna.TrialPruned(f"pruned after {ev.problems} problems")
        if self.options.repair and any(v > 0 for v in violations.values()):
            self._repair(trial, violations)
        if len(self.options.objectives) == 1:
            return ev.accuracy
        return ev.accuracy, ev.cost[self.options.objectives[1]]

    def _repair(self, trial: optuna.Trial, violations: dict[str, float]) -> None:
        """Queue ``trial`` again with its cost knobs scaled down so that its cost fits the budget.

        A trial over the budget says where accuracy is but not what fits; with its knobs cut to fit,
        the next trial tries that configuration within the budget (TPE, which ranks infeasible trials
        below every feasible one, would otherwise learn only that the region is infeasible). The cost
        must shrink by the smallest ``limit / cost``; each node's tuned knobs are scaled as its
        operator's declared ``cost_growth`` says (:func:`~archon.core.operators.repair_factors`: ``n``
        by the ratio, ``n`` and ``width`` of an ``n × width`` search by its square root), rounded down
        onto their grid, and lowered by at least one step. A repair that still does not fit is repaired
        once more; none is queued when a knob would go below its range or the same configuration was
        already tried.
        """
        depth = int(trial.user_attrs.get("repair_depth", 0))
        knobs = cost_knobs(self.spec, trial.params)
        if depth >= _REPAIRS or not knobs:
            return
        ratio = min(1.0 / (1.0 + v) for v in violations.values() if v > 0)
        params = dict(trial.params)
        for growth in knobs.values():
            for name, factor in repair_factors(growth, growth, ratio).items():
                dist = trial.distributions[name]
                if not isinstance(dist, optuna.distributions.IntDistribution):
                    return
                value, step = int(params[name]), dist.step
                target = dist.low + (int(value * factor) - dist.low) // step * step
                target = min(target, value - step)
                if target < dist.low:
                    return
                params[name] = target
        self.study.enqueue_trial(
            params, user_attrs={"repair_of": trial.number, "repair_depth": depth + 1}, skip_if_exists=True
        )

    # ------------------------------------------------------------------ the result

    def complete_trials(self) -> list[optuna.trial.FrozenTrial]:
        """The finished, unpruned trials."""
        return self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))

    def feasible_trials(self) -> list[optuna.trial.FrozenTrial]:
        """Complete trials within every limit."""
        return [t for t in self.complete_trials() if t.user_attrs.get("feasible")]

    def near_feasible_trials(self) -> list[optuna.trial.FrozenTrial]:
        """Complete trials within every limit, or over one by at most ``cost_slack`` of it (minibatch scores)."""
        slack = 1.0 + self.options.cost_slack
        budget = self.options.budget
        return [
            t
            for t in self.complete_trials()
            if t.user_attrs.get("feasible")
            or all(float(t.user_attrs.get(k, 0.0)) <= v * slack for k, v in budget.items())
        ]

    def _cost_key(self) -> str:
        return self.options.objectives[1] if len(self.options.objectives) > 1 else "flops"

    def _rank(self, scores: dict[str, Any]) -> tuple[float, float]:
        return (-float(scores["accuracy"]), float(scores.get(self._cost_key(), 0.0)))

    def reevaluate(self, trials: Sequence[optuna.trial.FrozenTrial]) -> list[Configuration]:
        """Score trials' configurations on every problem (kept in the study, so a resumed study reuses it)."""
        out = []
        for t in trials:
            key = f"full:{t.number}"
            full = self.study.user_attrs.get(key)
            if full is None:
                ev = self.evaluator.run(concretize(self.spec, t.params), self.problems)
                full = {**ev.attrs(), "feasible": ev.feasible(self.options.budget)}
                self.study.set_user_attr(key, full)
            out.append(Configuration(t.number, dict(t.params), dict(t.user_attrs), full))
        return out

    def result(self) -> dict[str, Any]:
        """The best feasible configuration (or the Pareto front), with its score on the whole split.

        With a minibatch, the best ``reevaluate`` trials (every front member for two objectives) are
        re-scored on the whole split, and only configurations feasible there are reported. The trials
        considered are those feasible on the minibatch and those over a limit there by at most
        ``cost_slack`` of it: a minibatch's cost is an estimate, as its accuracy is, so a trial just over
        the budget there can fit on the whole split (and one just under it can be over it). When none of
        the re-scored trials is feasible, the next ones are re-scored, ``reevaluate`` at a time, until one
        is or none is left. No infeasible configuration is ever reported as best.
        """
        feasible = sorted(self.feasible_trials(), key=lambda t: self._rank(t.user_attrs))
        minibatch = len(self.search_problems) < len(self.problems)
        candidates = feasible
        if minibatch and self.options.reevaluate:  # re-scored: a trial just over a limit there may fit the split
            candidates = sorted(self.near_feasible_trials(), key=lambda t: self._rank(t.user_attrs))
        multi = len(self.options.objectives) > 1
        if multi:
            from archon.tune.report import pareto_front

            picked = pareto_front(self.complete_trials(), cost=self._cost_key())
        else:
            picked = candidates[: max(1, self.options.reevaluate)] if minibatch else candidates[:1]
        if minibatch and self.options.reevaluate:
            configurations = self.reevaluate(picked)
            step, rest = max(1, self.options.reevaluate), candidates[len(picked) :]
            while not multi and rest and not any(c.score.get("feasible", True) for c in configurations):
                configurations += self.reevaluate(rest[:step])
                rest = rest[step:]
        else:
            configurations = [Configuration(t.number, dict(t.params), dict(t.user_attrs)) for t in picked]
        ok = [c for c in configurations if c.score.get("feasible", True)]
        ok.sort(key=lambda c: self._rank(c.score))
        front = _front(ok, self._cost_key()) if multi else []
        best = ok[0] if ok else None
        summary = {
            "study": self.name,
            "directory": str(self.dir),
            "objectives": self.options.objectives,
            "budget": self.options.budget,
            "hardware": self.options.hardware,
            "problems": len(self.problems),
            "search_problems": len(self.search_problems),
            "trials": _counts(self.study),
            "feasible_trials": len(feasible),
            "best": best.to_dict() if best else None,
            "front": [c.to_dict() for c in front],
            "tokens_generated": self.evaluator.tokens_generated(),
        }
        if best is not None:
            (self.dir / "best.yaml").write_text(_dump(concretize(self.spec, best.params)))
        (self.dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        return summary

    def close(self) -> None:
        """Close the models and the cache."""
        self.evaluator.close()


def _front(configurations: list[Configuration], cost: str) -> list[Configuration]:
    out = []
    for c in configurations:
        a, k = float(c.score["accuracy"]), float(c.score.get(cost, 0.0))
        dominated = any(
            float(o.score["accuracy"]) >= a
            and float(o.score.get(cost, 0.0)) <= k
            and o is not c
            and (float(o.score["accuracy"]) > a or float(o.score.get(cost, 0.0)) < k)
            for o in configurations
        )
        if not dominated:
            out.append(c)
    return sorted(out, key=lambda c: float(c.score.get(cost, 0.0)))


def _space(data: dict[str, Any]) -> dict[str, Any]:
    """A spec's data without its ``tune`` section (trials, timeout ... may change when resuming)."""
    return {k: v for k, v in data.items() if k != "tune"}


def _counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    rerun = superseded(study)
    for t in study.get_trials(deepcopy=False):
        if t.number not in rerun:  # an interrupted trial's rerun stands for it
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts


def _dump(spec: Spec) -> str:
    data = spec.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False)


def storage_url(url: str) -> str:
    """``postgresql://`` URLs use the psycopg (3) driver that ``archon[postgres]`` installs."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _storage(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats (a dead worker's trial is failed, then retried once)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    url = storage_url(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgresql"):
        kwargs = {"connect_args": {"connect_timeout": 10}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _rdb(url, kwargs)
    except (SQLAlchemyError, ImportError) as exc:  # unreachable, refused, no such database, no driver ...
        shown = make_url(url).render_as_string(hide_password=True)
        cause = getattr(exc, "orig", None) or exc
        reason = " ".join(str(cause).split())[:200] or type(cause).__name__
        raise StudyError(f"--storage {shown}: cannot open the study storage ({reason})") from None


def _rdb(url: str, kwargs: dict[str, Any]) -> optuna.storages.BaseStorage:
    return optuna.storages.RDBStorage(
        url,
        engine_kwargs=kwargs,
        heartbeat_interval=10,
        grace_period=30,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
    )
