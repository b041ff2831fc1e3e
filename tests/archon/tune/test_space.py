"""The search space: define-by-run suggestions, conditional parameters, optional nodes, concretize."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from archon.runtime import Runner
from archon.spec import SpecError, parse_spec
from archon.spec.graph import compile_pipeline, problems
from archon.tune.space import concretize, cost_knobs, space_names, suggest


def tuned(**r: Any) -> dict[str, Any]:
    return {"tune": r}


def spec_data() -> dict[str, Any]:
    return {
        "engines": {"small": {"model": "tiny-s"}, "large": {"model": "tiny-l"}},
        "verifiers": {"orm": {"kind": "reward_model", "model": "tiny-orm"}},
        "pipeline": [
            {
                "id": "answer",
                "op": tuned(type="choice", choices=["best_of_n", "self_consistency", "weighted_vote"]),
                "params": {
                    "engine": tuned(type="choice", choices=["small", "large"]),
                    "n": tuned(type="int", low=1, high=32, log=True),
                    "temperature": tuned(type="float", low=0.0, high=1.2),
                    "verifier": "orm",
                },
                "by_op": {"best_of_n": {"aggregation": tuned(type="choice", choices=["min", "last"])}},
            },
            {
                "id": "rescore",
                "op": "score",
                "inputs": ["answer"],
                "params": {"verifier": "orm"},
                "enabled": tuned(type="bool"),
            },
            {"id": "final", "op": "vote", "inputs": ["rescore"]},
        ],
    }


def test_the_example_spec_validates() -> None:
    assert problems(parse_spec(spec_data())) == []


def test_space_names_cover_every_choice() -> None:
    names = space_names(parse_spec(spec_data()))
    assert names == [
        "answer.op",
        "answer.engine",
        "answer.n",
        "answer.temperature",
        "answer.best_of_n.aggregation",
        "rescore.enabled",
    ]


def test_conditional_parameters_exist_only_for_their_op() -> None:
    spec = parse_spec(spec_data())
    seen: dict[str, set[str]] = {}

    def objective(trial: optuna.Trial) -> float:
        concrete = suggest(trial, spec)
        op = trial.params["answer.op"]
        seen.setdefault(op, set()).update(trial.params)
        node = concrete.pipeline[0]
        assert node.op == op
        assert ("verifier" in node.params) == (op != "self_consistency")
        assert ("aggregation" in node.params) == (op == "best_of_n")
        assert not concrete.tunables()
        Runner(concrete)  # a concrete spec runs
        return 0.0

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(objective, n_trials=30)
    assert set(seen) == {"best_of_n", "self_consistency", "weighted_vote"}
    assert "answer.best_of_n.aggregation" in seen["best_of_n"]
    assert "answer.best_of_n.aggregation" not in seen["self_consistency"] | seen["weighted_vote"]


def test_an_optional_node_left_out_is_bypassed() -> None:
    spec = parse_spec(spec_data())
    base = {"answer.op": "self_consistency", "answer.engine": "large", "answer.n": 4, "answer.temperature": 0.5}
    kept = concretize(spec, {**base, "rescore.enabled": True})
    dropped = concretize(spec, {**base, "rescore.enabled": False})
    assert [n.id for n in kept.pipeline] == ["answer", "rescore", "final"]
    assert [n.id for n in dropped.pipeline] == ["answer", "final"]
    assert dropped.pipeline[-1].inputs == ["answer"]
    assert problems(dropped) == []


def test_cost_knobs_are_the_chosen_ops_tuned_sample_counts() -> None:
    data = spec_data()
    data["pipeline"][0]["by_op"]["self_consistency"] = {"max_tokens": tuned(type="int", low=32, high=128)}
    data["pipeline"].insert(
        1,
        {
            "id": "more",
            "op": "sample",
            "inputs": ["answer"],
            "params": {"engine": "large", "n": tuned(type="int", low=1, high=4)},
            "enabled": tuned(type="bool"),
        },
    )
    data["pipeline"][2]["inputs"] = ["more"]
    spec = parse_spec(data)
    base = {"answer.engine": "large", "answer.n": 4, "answer.temperature": 0.5, "rescore.enabled": True}
    sc = {**base, "answer.op": "self_consistency", "answer.self_consistency.max_tokens": 64}
    both = cost_knobs(spec, {**sc, "more.enabled": True, "more.n": 2})
    assert both == {"answer": {"answer.n": 1.0}, "more": {"more.n": 1.0}}  # by node, with the declared growth
    assert cost_knobs(spec, {**sc, "more.enabled": False}) == {"answer": {"answer.n": 1.0}}  # left out: none
    answer = data["pipeline"][0]
    fixed = parse_spec({**data, "pipeline": [{**answer, "params": {**answer["params"], "n": 8}}]})
    assert cost_knobs(fixed, sc) == {}  # a fixed n is no knob; max_tokens is not one either


def test_concretize_casts_and_fills_values() -> None:
    spec = parse_spec(spec_data())
    params = {
        "answer.op": "best_of_n",
        "answer.engine": "small",
        "answer.n": 8.0,
        "answer.temperature": 1,
        "answer.best_of_n.aggregation": "last",
        "rescore.enabled": True,
    }
    node = concretize(spec, params).pipeline[0]
    assert node.params == {"engine": "small", "n": 8, "temperature": 1.0, "verifier": "orm", "aggregation": "last"}
    assert isinstance(node.params["n"], int) and isinstance(node.params["temperature"], float)


def test_concretize_names_a_missing_value() -> None:
    with pytest.raises(SpecError, match=r"answer\.n: no value"):
        concretize(parse_spec(spec_data()), {"answer.op": "self_consistency", "answer.engine": "large"})


def test_a_param_no_op_takes_is_an_error() -> None:
    data = spec_data()
    data["pipeline"][0]["params"]["bogus"] = 1
    assert any("params.bogus: none of the ops" in p for p in problems(parse_spec(data)))


def test_by_op_for_an_op_that_is_not_a_choice_is_an_error() -> None:
    data = spec_data()
    data["pipeline"][0]["by_op"]["sample"] = {"n": 2}
    assert any("by_op.sample: not one of this node's ops" in p for p in problems(parse_spec(data)))


def test_an_optional_source_node_left_out_makes_its_readers_read_the_problem() -> None:
    data = {
        "engines": {"m": {"model": "tiny-l"}},
        "retrievers": {"r": {"kind": "bm25", "corpus": "facts"}},
        "pipeline": [
            {"id": "docs", "op": "retrieve", "params": {"retriever": "r"}, "enabled": tuned(type="bool")},
            {"id": "answer", "op": "sample", "inputs": ["docs"], "params": {"engine": "m"}},
        ],
    }
    spec = parse_spec(data)
    assert problems(spec) == []
    without = concretize(spec, {"docs.enabled": False})
    assert [(n.id, n.inputs) for n in without.pipeline] == [("answer", [])]
    compile_pipeline(without)  # a source node now
    kept = concretize(spec, {"docs.enabled": True})
    assert [(n.id, n.inputs) for n in kept.pipeline] == [("docs", []), ("answer", ["docs"])]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"type": "int", "low": 1, "high": 8, "log": True, "step": 2}, "log-scale range takes no step"),
        ({"type": "choice", "choices": [{"a": 1}]}, "choices must be strings"),
        ({"type": "choice", "choices": [1, 1]}, "distinct"),
    ],
)
def test_bad_ranges_are_refused(bad: dict[str, Any], message: str) -> None:
    data = spec_data()
    data["pipeline"][0]["params"]["n"] = {"tune": bad}
    with pytest.raises(SpecError, match=message):
        parse_spec(data)
