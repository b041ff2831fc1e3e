"""The startup design: every categorical choice, conditional ones included, tried before the sampler proposes."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest

from archon import data
from archon.spec import SpecError, parse_spec
from archon.spec.graph import problems
from archon.spec.models import Spec, Tunable, TuneRange, TuneSpec
from archon.tune.space import op_space, suggest
from archon.tune.startup import cover, middle
from archon.tune.study import Study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def tuned(**r: Any) -> dict[str, Any]:
    return {"tune": r}


def space() -> Spec:
    """A space with a conditional three-way verifier, a shared engine, and an optional node with its own choice."""
    return parse_spec(
        {
            "engines": {"small": {"model": "tiny-s"}, "large": {"model": "tiny-l"}},
            "verifiers": {
                "orm": {"kind": "reward_model", "model": "tiny-orm"},
                "certainty": {"kind": "self_certainty", "options": {"metric": "mean_logprob"}},
                "steps": {"kind": "arith_steps"},
            },
            "pipeline": [
                {
                    "id": "answer",
                    "op": tuned(type="choice", choices=["best_of_n", "self_consistency", "weighted_vote"]),
                    "params": {
                        "engine": tuned(type="choice", choices=["small", "large"]),
                        "n": tuned(type="int", low=1, high=32, log=True),
                        "temperature": tuned(type="float", low=0.0, high=1.0, step=0.25),
                        "logprobs": True,
                        "verifier": "orm",
                    },
                    "by_op": {
                        "best_of_n": {
                            "verifier": tuned(type="choice", choices=["orm", "certainty", "steps"]),
                            "aggregation": tuned(type="choice", choices=["min", "last"]),
                        }
                    },
                },
                {
                    "id": "rescore",
                    "op": "score",
                    "inputs": ["answer"],
                    "params": {"verifier": tuned(type="choice", choices=["orm", "certainty"])},
                    "enabled": tuned(type="bool"),
                },
                {"id": "final", "op": "vote", "inputs": ["rescore"]},
            ],
        }
    )


def categorical(spec: Spec) -> dict[str, list[Any]]:
    """Every choice and bool parameter the space can produce, with its choices."""
    out: dict[str, list[Any]] = {}
    for node in spec.pipeline:
        if isinstance(node.enabled, Tunable):
            out[f"{node.id}.enabled"] = [True, False]
        if isinstance(node.op, Tunable):
            out[f"{node.id}.op"] = list(node.op.tune.choices or [])
        for op in node.op_choices():
            for name, r in op_space(node, op).items():
                if r.type in ("choice", "bool"):
                    out[name] = [True, False] if r.type == "bool" else list(r.choices or [])
    return out


def uncovered(spec: Spec, trials: list[dict[str, Any]]) -> set[tuple[str, Any]]:
    """The (parameter, choice) pairs no trial tried."""
    wanted = {(name, c) for name, choices in categorical(spec).items() for c in choices}
    return wanted - {(name, v) for t in trials for name, v in t.items()}


def test_the_design_tries_every_choice_conditional_ones_in_their_op() -> None:
    spec = space()
    design = cover(spec, seed=0)
    assert uncovered(spec, design) == set()
    verifiers = {t["answer.best_of_n.verifier"] for t in design if t["answer.op"] == "best_of_n"}
    assert verifiers == {"orm", "certainty", "steps"}  # only trials that chose best_of_n have one
    assert all(("answer.best_of_n.verifier" in t) == (t["answer.op"] == "best_of_n") for t in design)
    assert all(("rescore.verifier" in t) == t["rescore.enabled"] for t in design)
    # small: best_of_n needs three trials (its verifier), the other two ops one each; rescore needs three
    assert len(design) == 5


def test_the_design_is_what_the_walk_asks_for_and_on_the_grid() -> None:
    spec = space()
    design = cover(spec, seed=4)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for params in design:
        study.enqueue_trial(params)

    def objective(trial: optuna.Trial) -> float:
        assert problems(suggest(trial, spec)) == []  # a concrete, valid spec
        return 0.0

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a value out of its distribution's range or grid warns
        study.optimize(objective, n_trials=len(design))
    assert [t.params for t in study.trials] == design
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert {t["answer.n"] for t in design} == {6} and {t["answer.temperature"] for t in design} == {0.5}


def test_the_seed_decides_the_design() -> None:
    spec = space()
    assert cover(spec, seed=3) == cover(spec, seed=3)
    designs = {repr(cover(spec, seed=seed)) for seed in range(6)}
    assert len(designs) > 1
    assert all(uncovered(spec, cover(spec, seed=seed)) == set() for seed in range(6))


def test_a_space_of_numbers_only_has_no_design() -> None:
    spec = parse_spec(
        {
            "engines": {"m": {"model": "tiny-l"}},
            "pipeline": [{"id": "a", "op": "sample", "params": {"engine": "m", "n": tuned(type="int", low=1, high=4)}}],
        }
    )
    assert cover(spec) == []


@pytest.mark.parametrize(
    ("r", "expected"),
    [
        ({"type": "int", "low": 1, "high": 32, "log": True}, 6),
        ({"type": "int", "low": 1, "high": 10, "step": 4}, 5),  # the grid 1, 5, 9
        ({"type": "int", "low": 3, "high": 3}, 3),
        ({"type": "float", "low": 0.0, "high": 1.2, "step": 0.5}, 0.5),  # the grid 0, 0.5, 1.0: 0.6 -> 0.5
        ({"type": "float", "low": 0.0, "high": 1.0}, 0.5),
        ({"type": "float", "low": 1e-4, "high": 1e-2, "log": True}, pytest.approx(1e-3)),
        ({"type": "choice", "choices": ["a", "b"]}, "a"),
    ],
)
def test_numbers_take_the_middle_of_their_range(r: dict[str, Any], expected: Any) -> None:
    value = middle(TuneRange(**r))
    assert value == expected and type(value) is type(expected if r["type"] != "float" else 0.0)


# --- real studies on the tiny model ---------------------------------------------------------------------------------

PROBLEMS = data.load("arith", "dev")[:4]


def study_spec(**tune: Any) -> Spec:
    """Two ops, one with a two-way verifier: a design of three trials (cheap: tiny-l, n of 2, 48 tokens)."""
    return parse_spec(
        {
            "engines": {"m": {"model": "tiny-l"}},
            "verifiers": {
                "steps": {"kind": "arith_steps"},
                "certainty": {"kind": "self_certainty", "options": {"metric": "mean_logprob"}},
            },
            "pipeline": [
                {
                    "id": "a",
                    "op": tuned(type="choice", choices=["best_of_n", "self_consistency"]),
                    "params": {
                        "engine": "m",
                        "n": tuned(type="int", low=1, high=3),
                        "temperature": 0.5,
                        "max_tokens": 48,
                        "logprobs": True,
                        "verifier": "steps",
                    },
                    "by_op": {"best_of_n": {"verifier": tuned(type="choice", choices=["steps", "certainty"])}},
                }
            ],
            "tune": {"pruner": "none", "sampler": "random", **tune},
        }
    )


def open_study(tmp: Path, s: Spec, *, resume: bool = False, **overrides: Any) -> Study:
    return Study(s, PROBLEMS, tmp, TuneSpec.of(s, **overrides), resume=resume)


def queued(study: Study) -> list[dict[str, Any]]:
    return [t.system_attrs["fixed_params"] for t in study.study.get_trials(states=(optuna.trial.TrialState.WAITING,))]


def test_a_short_study_tries_every_choice_first(tmp_path: Path) -> None:
    s = study_spec(trials=3, seed=1)
    study = open_study(tmp_path, s)
    try:
        study.optimize()
    finally:
        study.close()
    trials = study.study.trials
    assert [t.user_attrs["startup"] for t in trials] == [0, 1, 2]
    assert [t.params for t in trials] == cover(s, seed=1)
    assert uncovered(s, [t.params for t in trials]) == set()
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_resuming_never_queues_the_design_twice(tmp_path: Path) -> None:
    s = study_spec(trials=2)
    design = cover(s, seed=0)
    first = open_study(tmp_path, s)  # a study killed before its first trial: two trials of three queued
    first.close()
    assert queued(first) == design[:2]
    again = open_study(tmp_path, s, resume=True, trials=3, seed=7)  # more trials: the rest of the same design
    again.close()
    assert queued(again) == design
    last = open_study(tmp_path, s, resume=True, trials=4)
    try:
        assert queued(last) == design  # nothing queued twice
        last.optimize()
    finally:
        last.close()
    trials = last.study.trials
    assert [t.params for t in trials[:3]] == design and "startup" not in trials[3].user_attrs
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials) and len(trials) == 4


def test_startup_none_leaves_the_study_to_the_sampler(tmp_path: Path) -> None:
    s = study_spec(trials=1, startup="none")
    study = open_study(tmp_path, s)
    study.close()
    assert queued(study) == [] and study.study.user_attrs["startup"]["trials"] == []
    again = open_study(tmp_path, s, resume=True, startup="cover")  # a resume never adds a design later
    again.close()
    assert queued(again) == []


def test_a_bad_startup_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"tune\.startup"):
        study_spec(startup="latin")
    s = study_spec()
    with pytest.raises(ValueError, match="Input should be 'cover' or 'none'"):
        open_study(tmp_path, s, startup="latin")  # the same TuneSpec validation as the spec's
