"""Studies on the real tiny models: constraints, the cache, re-evaluation, fronts, pruning, best.yaml."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import optuna
import pytest

from archon import data
from archon.runtime import Runner
from archon.spec import load_spec, parse_spec
from archon.spec.models import TuneSpec
from archon.tune.study import Study, StudyError

PROBLEMS = data.load("arith", "dev")[:8]


def spec(**tune: Any) -> Any:
    return parse_spec(
        {
            "engines": {"small": {"model": "tiny-s"}, "large": {"model": "tiny-l"}},
            "pipeline": [
                {
                    "id": "a",
                    "op": "self_consistency",
                    "params": {
                        "engine": {"tune": {"type": "choice", "choices": ["small", "large"]}},
                        "n": {"tune": {"type": "int", "low": 1, "high": 6}},
                        "temperature": {"tune": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.5}},
                        "max_tokens": 64,
                    },
                }
            ],
            "tune": {"pruner": "none", **tune},
        }
    )


def run_study(tmp: Path, s: Any, problems: list[Any] = PROBLEMS, **overrides: Any) -> tuple[Study, dict[str, Any]]:
    study = Study(s, problems, tmp, TuneSpec.of(s, **overrides))
    try:
        study.optimize()
        return study, study.result()
    finally:
        study.close()


def test_limits_are_constraints_and_the_best_is_feasible(tmp_path: Path) -> None:
    study, result = run_study(tmp_path, spec(trials=8, budget={"flops": 3e8}))
    trials = study.complete_trials()
    assert len(trials) == 8
    for t in trials:
        assert t.user_attrs["feasible"] == (t.user_attrs["flops"] <= 3e8)
        assert (t.constraints["flops"] <= 0) == t.user_attrs["feasible"]
    assert any(not t.user_attrs["feasible"] for t in trials), "the budget should cut some trials"
    best = result["best"]
    assert best is not None and best["search"]["flops"] <= 3e8
    feasible = [t.user_attrs["accuracy"] for t in trials if t.user_attrs["feasible"]]
    assert best["search"]["accuracy"] == max(feasible)
    concrete = load_spec(tmp_path / "best.yaml")
    assert not concrete.tunables()
    again = asyncio.run(Runner(concrete).run(PROBLEMS))
    assert again["accuracy"] == pytest.approx(best["search"]["accuracy"])


def big_n_first(tmp: Path, s: Any, **overrides: Any) -> Study:
    """A study whose first trial is queued: the large model at n=6, over a budget that fits n of about 2."""
    study = Study(s, PROBLEMS, tmp, TuneSpec.of(s, startup="none", **overrides))
    study.study.enqueue_trial({"a.engine": "large", "a.n": 6, "a.temperature": 0.5})
    try:
        study.optimize()
    finally:
        study.close()
    return study


def test_a_trial_over_the_budget_is_repaired_next_with_n_scaled_to_fit(tmp_path: Path) -> None:
    limit = 2.4e8
    study = big_n_first(tmp_path, spec(trials=2, budget={"flops": limit}, sampler="random"))
    first, second, *queued = study.study.trials
    assert all(t.state.name == "WAITING" and t.user_attrs["repair_of"] == 1 for t in queued)  # n=2 may not fit
    assert not first.user_attrs["feasible"] and first.params["a.n"] == 6
    expected = min(5, int(6 * limit / first.user_attrs["flops"]))
    assert 1 <= expected < 6
    assert second.user_attrs["repair_of"] == 0 and second.user_attrs["repair_depth"] == 1
    assert second.params == {**first.params, "a.n": expected}
    assert second.user_attrs["flops"] < first.user_attrs["flops"]


def test_without_repair_the_next_trial_is_the_samplers(tmp_path: Path) -> None:
    study = big_n_first(tmp_path, spec(trials=2, budget={"flops": 2.4e8}, sampler="random"), repair=False)
    first, second = study.study.trials  # nothing queued either
    assert not first.user_attrs["feasible"] and "repair_of" not in second.user_attrs


def test_no_feasible_configuration_is_never_reported(tmp_path: Path) -> None:
    _, result = run_study(tmp_path, spec(trials=3, budget={"flops": 1.0}))
    assert result["best"] is None and result["feasible_trials"] == 0
    assert not (tmp_path / "best.yaml").exists()


@pytest.mark.slow
def test_the_cache_saves_tokens_and_changes_no_result(tmp_path: Path) -> None:
    with_cache, _ = run_study(tmp_path / "on", spec(trials=6, seed=3))
    without, _ = run_study(tmp_path / "off", spec(trials=6, seed=3, cache=False))
    a = [(t.params, t.values, t.user_attrs["flops"]) for t in with_cache.complete_trials()]
    b = [(t.params, t.values, t.user_attrs["flops"]) for t in without.complete_trials()]
    assert a == b
    assert with_cache.evaluator.tokens_generated() < without.evaluator.tokens_generated()
    assert (tmp_path / "on" / "cache.sqlite").is_file() and not (tmp_path / "off" / "cache.sqlite").exists()


def test_minibatch_trials_are_reevaluated_on_the_whole_split(tmp_path: Path) -> None:
    study, result = run_study(tmp_path, spec(trials=4, minibatch=4, reevaluate=2))
    assert result["search_problems"] == 4 and result["problems"] == 8
    full = {k: v for k, v in study.study.user_attrs.items() if k.startswith("full:")}
    assert len(full) == 2
    assert all(v["problems"] == 8 for v in full.values())
    assert result["best"]["full"]["problems"] == 8


def test_when_the_best_trials_do_not_fit_on_the_whole_split_the_next_ones_are_rescored(tmp_path: Path) -> None:
    s = spec(trials=5, minibatch=4, reevaluate=1, budget={"flops": 1e12})
    study = Study(s, PROBLEMS, tmp_path, TuneSpec.of(s))
    try:
        study.optimize()
        ranked = sorted(study.feasible_trials(), key=lambda t: study._rank(t.user_attrs))
        assert len(ranked) >= 3
        # the best two were over the budget on the whole split (as a trial just under it on the minibatch can be)
        for t in ranked[:2]:
            study.study.set_user_attr(f"full:{t.number}", {"accuracy": 1.0, "problems": 8, "feasible": False})
        result = study.result()
    finally:
        study.close()
    full = {k for k in study.study.user_attrs if k.startswith("full:")}
    assert full == {f"full:{t.number}" for t in ranked[:3]}  # re-scored one at a time until one fit
    assert result["best"]["number"] == ranked[2].number and result["best"]["full"]["feasible"]


def test_trials_just_over_the_budget_on_the_minibatch_are_rescored_too(tmp_path: Path) -> None:
    # the startup design's two trials (tiny-s, tiny-l) are the same whatever the budget
    free, _ = run_study(tmp_path / "free", spec(trials=2, minibatch=4, repair=False))
    costs = {t.number: t.user_attrs["flops"] for t in free.complete_trials()}
    top = max(costs, key=costs.__getitem__)
    budget = {"flops": costs[top] / 1.05}  # the costlier trial is 5% over it on the minibatch
    for slack, rescored in ((0.1, True), (0.0, False)):
        s = spec(trials=2, minibatch=4, reevaluate=2, repair=False, budget=budget, cost_slack=slack)
        study, result = run_study(tmp_path / f"slack-{slack}", s)
        trial = next(t for t in study.complete_trials() if t.number == top)
        assert trial.user_attrs["flops"] == pytest.approx(costs[top]) and not trial.user_attrs["feasible"]
        assert (f"full:{top}" in study.study.user_attrs) is rescored
        assert result["best"] is None or result["best"]["full"]["feasible"]  # reported only if it fits


def test_two_objectives_give_a_front(tmp_path: Path) -> None:
    study, result = run_study(tmp_path, spec(trials=8, objectives=["accuracy", "flops"]))
    front = result["front"]
    assert front
    points = [(c["search"]["accuracy"], c["search"]["flops"]) for c in front]
    for a, f in points:
        assert not any((a2 >= a and f2 <= f) and (a2, f2) != (a, f) for a2, f2 in points)
    assert [f for _, f in points] == sorted(f for _, f in points)
    assert study.study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]


def test_an_existing_study_needs_resume(tmp_path: Path) -> None:
    run_study(tmp_path, spec(trials=1))
    s = spec(trials=2)
    with pytest.raises(StudyError, match="--resume"):
        Study(s, PROBLEMS, tmp_path, TuneSpec.of(s))
    study = Study(s, PROBLEMS, tmp_path, TuneSpec.of(s), resume=True)
    study.optimize()
    assert study.finished() == 2
    study.close()


def test_the_wilcoxon_pruner_stops_a_clearly_worse_trial(tmp_path: Path) -> None:
    problems = data.load("arith", "dev")[:48]
    s = spec(trials=2, pruner="wilcoxon", startup="none")
    study = Study(s, problems, tmp_path, TuneSpec.of(s))
    study.study.enqueue_trial({"a.engine": "large", "a.n": 1, "a.temperature": 0.0})
    study.study.enqueue_trial({"a.engine": "small", "a.n": 1, "a.temperature": 1.0})  # one sample of tiny-s
    study.optimize()
    states = [t.state for t in study.study.trials]
    study.close()
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]


def test_resuming_with_another_search_space_is_refused(tmp_path: Path) -> None:
    run_study(tmp_path, spec(trials=1))
    other = spec(trials=2)
    other.pipeline[0].params["max_tokens"] = 32
    with pytest.raises(StudyError, match="tuned another spec"):
        Study(other, PROBLEMS, tmp_path, TuneSpec.of(other), resume=True)


def waiting(study: Study) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The queued trials' fixed parameters and user attributes."""
    queued = study.study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    return [(t.system_attrs["fixed_params"], t.user_attrs) for t in queued]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_repairs_land_on_the_knobs_grid_and_stop_after_two(tmp_path: Path) -> None:
    from archon.tune.space import suggest

    s = spec(trials=1, budget={"flops": 1e8}, startup="none")
    s.pipeline[0].params["n"].tune.high, s.pipeline[0].params["n"].tune.step = 31, 3  # n in 1, 4, 7 ... 31
    study = Study(s, PROBLEMS, tmp_path, TuneSpec.of(s))

    def running() -> optuna.Trial:
        trial = study.study.ask()
        suggest(trial, study.spec)
        return trial

    try:
        study.study.enqueue_trial({"a.engine": "large", "a.n": 31, "a.temperature": 0.5})
        trial = running()
        study._repair(trial, {"flops": 2.0})  # three times over: 31 / 3 = 10.3, on the grid 10
        ((params, attrs),) = waiting(study)
        assert params["a.n"] == 10 and attrs == {"repair_of": trial.number, "repair_depth": 1}
        study._repair(trial, {"flops": 2.0})  # the same repair again: already queued, skipped
        study._repair(trial, {"flops": 100.0})  # n would fall below its range: nothing queued
        assert len(waiting(study)) == 1

        deep = running()  # the queued repair
        assert deep.params["a.n"] == 10 and deep.user_attrs["repair_depth"] == 1
        study._repair(deep, {"flops": 0.05})  # barely over: one step down
        ((params, attrs),) = waiting(study)
        assert params["a.n"] == 7 and attrs["repair_depth"] == 2
        study._repair(running(), {"flops": 1.0})  # a repair of a repair of a repair: not queued
        assert waiting(study) == []
    finally:
        study.close()
