"""Resuming a study: proposals seeded by the study's history, interrupted trials queued again."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from archon.tune.resume import PerTrialSeed, mark_drawn, rerun_interrupted, superseded

optuna.logging.set_verbosity(optuna.logging.ERROR)


def objective(trial: optuna.Trial) -> float:
    return (trial.suggest_float("x", -1, 1) - 0.3) ** 2 + trial.suggest_int("k", 1, 5)


def sampler() -> PerTrialSeed:
    return PerTrialSeed(lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=3), seed=7)


def test_a_new_process_proposes_what_the_first_would_have_proposed_next() -> None:
    whole = optuna.create_study(sampler=sampler())
    whole.optimize(objective, n_trials=8)
    storage = optuna.storages.InMemoryStorage()
    first = optuna.create_study(storage=storage, study_name="s", sampler=sampler())
    first.optimize(objective, n_trials=4)
    second = optuna.load_study(storage=storage, study_name="s", sampler=sampler())  # as a resumed process
    second.optimize(objective, n_trials=4)
    assert [t.params for t in second.trials] == [t.params for t in whole.trials]


def test_a_plain_sampler_seeded_again_would_repeat_its_first_proposals() -> None:
    """Why the wrapper exists: a TPE sampler made anew with the study's seed starts over."""
    storage = optuna.storages.InMemoryStorage()
    first = optuna.create_study(storage=storage, study_name="s", sampler=optuna.samplers.RandomSampler(seed=7))
    first.optimize(objective, n_trials=2)
    again = optuna.load_study(storage=storage, study_name="s", sampler=optuna.samplers.RandomSampler(seed=7))
    again.optimize(objective, n_trials=2)
    assert [t.params for t in again.trials[2:]] == [t.params for t in again.trials[:2]]


def test_an_interrupted_trial_is_queued_again_once_with_its_parameters() -> None:
    study = optuna.create_study(sampler=sampler())
    study.optimize(objective, n_trials=2)
    broken = study.ask()
    broken.suggest_float("x", -1, 1)
    broken.suggest_int("k", 1, 5)
    mark_drawn(broken)
    broken.set_user_attr("interrupted", True)
    study.tell(broken, state=TrialState.FAIL)
    assert rerun_interrupted(study) == [broken.number]
    assert rerun_interrupted(study) == []  # once
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [broken.params] and waiting[0].user_attrs[
        "rerun_of"
    ] == broken.number
    assert superseded(study) == {broken.number}


def test_a_trial_killed_while_drawing_is_drawn_again_to_the_values_it_would_have_had() -> None:
    """kill -9 between two suggestions: queuing the half drawn would shift the random stream onto the rest."""
    whole = optuna.create_study(sampler=sampler())
    whole.optimize(objective, n_trials=5)
    study = optuna.create_study(sampler=sampler())
    study.optimize(objective, n_trials=2)
    broken = study.ask()
    broken.suggest_float("x", -1, 1)  # killed here: RUNNING, one parameter of two, its process gone
    assert rerun_interrupted(study) == [broken.number]
    assert study.get_trials(states=(TrialState.WAITING,))[0].system_attrs["fixed_params"] == {}
    study.optimize(objective, n_trials=3)
    done = [t.params for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert done == [t.params for t in whole.trials]


def test_a_rerun_keeps_the_parameters_that_were_fixed_before_its_original_started() -> None:
    study = optuna.create_study(sampler=sampler())
    study.enqueue_trial({"k": 4})
    broken = study.ask()
    broken.suggest_float("x", -1, 1)
    rerun_interrupted(study)
    study.optimize(objective, n_trials=1)
    (rerun,) = study.get_trials(states=(TrialState.COMPLETE,))
    assert rerun.params == {"x": broken.params["x"], "k": 4}
