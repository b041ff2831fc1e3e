"""Spec loading and DAG validation: every problem named with its spec path."""

from pathlib import Path

import pytest
import yaml

from archon.spec import SpecError, build_graph, load_spec, parse_spec, problems

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
BASE = {
    "engines": {"policy": {"model": "tiny-l"}},
    "verifiers": {"orm": {"kind": "reward_model", "model": "tiny-orm"}},
    "pipeline": [
        {"id": "draft", "op": "sample", "params": {"engine": "policy", "n": 4}},
        {"id": "judge", "op": "score", "inputs": ["draft"], "params": {"verifier": "orm"}},
        {"id": "best", "op": "select", "inputs": ["judge"], "params": {"by": "orm"}},
    ],
}


def spec_with(**changes):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data.update(changes)
    return parse_spec(data)


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.yaml") if "tune" not in p.stem))
def test_the_examples_are_valid(name):
    spec = load_spec(EXAMPLES / f"{name}.yaml")
    assert problems(spec) == []
    assert len(build_graph(spec)) == len(spec.pipeline)


def test_a_valid_pipeline_has_no_problems():
    assert problems(spec_with()) == []


def node(id_, op, inputs=(), **params):
    return {"id": id_, "op": op, "inputs": list(inputs), "params": params}


CASES = [
    ([node("a", "sample", ["b"], engine="policy"), node("b", "vote", ["a"])], "pipeline: cycle"),
    ([node("a", "sample", ["draf"], engine="policy")], "pipeline[0].inputs[0]: no node 'draf'"),
    ([node("a", "sampel", engine="policy")], "pipeline[0].op: unknown op 'sampel'; did you mean 'sample'?"),
    ([node("a", "sample", engine="policy", n=0)], "pipeline[0].params.n: Input should be greater than or equal to 1"),
    ([node("a", "sample", engine="policy", nn=3)], "pipeline[0].params.nn: Extra inputs are not permitted"),
    ([node("a", "sample", engine="polcy")], "pipeline[0].params.engine: no engine 'polcy'; did you mean 'policy'?"),
    ([node("a", "sample", engine="policy"), node("b", "sample", engine="policy")], "exactly one node must be"),
    ([node("a", "score", verifier="prm")], "pipeline[0].params.verifier: no verifier 'prm'"),
]


@pytest.mark.parametrize("pipeline,expected", CASES)
def test_each_problem_is_reported_with_its_spec_path(pipeline, expected):
    found = problems(spec_with(pipeline=pipeline))
    assert any(expected in line for line in found), found


def test_schema_errors_name_the_path_and_count_the_rest():
    with pytest.raises(SpecError, match=r"<spec>: pipeline\[0\]\.id: String should match pattern"):
        spec_with(pipeline=[{"id": "no spaces", "op": "sample", "params": {"engine": "policy"}}])
    with pytest.raises(SpecError, match="node id 'a' is used twice"):
        spec_with(pipeline=[{"id": "a", "op": "vote"}, {"id": "a", "op": "vote"}])
    with pytest.raises(SpecError, match=r"engines\.policy\.devcie: Extra inputs are not permitted"):
        spec_with(engines={"policy": {"model": "tiny-l", "devcie": "cpu"}})


def test_tuned_values_parse_and_are_listed_by_path():
    choose = {"tune": {"type": "choice", "choices": ["sample", "self_consistency"]}}
    n = {"tune": {"type": "int", "low": 1, "high": 64, "log": True}}
    spec = spec_with(pipeline=[node("a", choose, engine="policy", n=n)])
    assert set(spec.tunables()) == {"pipeline[0].op", "pipeline[0].params.n"}
    assert problems(spec) == []  # tuned values are checked when chosen, not as placeholders
    bad = {"tune": {"type": "int", "low": 0, "high": 4, "log": True}}
    with pytest.raises(SpecError, match="log-scale range needs low > 0"):
        spec_with(pipeline=[node("a", "sample", engine="policy", n=bad)])


def test_extends_overrides_fields_and_nodes_by_id(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(BASE))
    child = tmp_path / "child.yaml"
    child.write_text(
        yaml.safe_dump(
            {
                "extends": "base.yaml",
                "pipeline": [{"id": "draft", "params": {"n": 16}}],
                "engines": {"policy": {"device": "cpu"}},
            }
        )
    )
    spec = load_spec(child)
    assert spec.pipeline[0].params == {"engine": "policy", "n": 16} and len(spec.pipeline) == 3
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\npipeline: []\n")
    with pytest.raises(SpecError, match="extends itself"):
        load_spec(loop)


def test_bad_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline:\n  - id: a\n    op: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad\.yaml:\d+: not valid YAML/JSON"):
        load_spec(bad)
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.yaml")
