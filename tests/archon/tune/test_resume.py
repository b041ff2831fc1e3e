"""Resuming a study: proposals seeded by the study's history, interrupted trials queued again."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from archon.tune.resume import PerTrialSeed, rerun_interrupted, superseded

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
    broken.set_user_attr("interrupted", True)
    study.tell(broken, state=TrialState.FAIL)
    assert rerun_interrupted(study) == [broken.number]
    assert rerun_interrupted(study) == []  # once
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [broken.params] and waiting[0].user_attrs[
        "rerun_of"
    ] == broken.number
    assert superseded(study) == {broken.number}
