"""The Python API: build, call on one question, evaluate, round-trip YAML."""

import importlib.util

import pytest

from archon import data
from archon.pipeline import Pipeline
from archon.spec import SpecError


def best_of_n() -> Pipeline:
    return (
        Pipeline()
        .engine("policy", model="tiny-l")
        .verifier("checker", "arith_steps")
        .node("draft", "sample", engine="policy", n=4, max_tokens=120)
        .node("judge", "score", verifier="checker")
        .node("best", "select", by="checker")
    )


def test_a_pipeline_answers_one_question_and_evaluates_a_dataset():
    pipe = best_of_n()
    record = pipe("Evaluate left to right: 5 + 8 - 8")
    assert record["answer"] == "5" and record["candidates"][0]["scores"]["checker"] == 1.0
    results = pipe.evaluate(data.load("arith", "dev")[:4])
    assert [r["id"] for r in results.records] == [p.id for p in data.load("arith", "dev")[:4]]
    assert results.summary["problems"] == 4 and results.summary["accuracy"] is not None
    assert {e["op"] for e in results.records[0]["trace"]} == {"sample", "score", "select"}


def test_yaml_round_trips_and_equals_the_file_spelling(tmp_path):
    pipe = best_of_n()
    again = Pipeline.from_yaml(pipe.to_yaml())
    assert again.spec == pipe.spec
    f = tmp_path / "p.yaml"
    f.write_text(pipe.to_yaml())
    assert Pipeline.from_yaml(f).spec == pipe.spec
    with pytest.raises(SpecError, match=r"pipeline\[0\]\.params\.n: Input should be greater than or equal to 1"):
        Pipeline().engine("policy", model="tiny-l").node("x", "sample", engine="policy", n=0).evaluate([])


def test_to_pandas_or_a_clear_hint():
    results = best_of_n().evaluate(data.load("arith", "dev")[:2])
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(ImportError, match="pip install pandas"):
            results.to_pandas()
    else:
        frame = results.to_pandas()
        assert len(frame) == 2 and "cost_flops" in frame.columns
