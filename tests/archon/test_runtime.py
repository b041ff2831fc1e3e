"""Running specs: the examples end to end through the CLI, resume, and reproducibility."""

import asyncio
import json
from pathlib import Path

import pytest

from archon import data
from archon.runtime import Runner
from archon.spec import load_spec
from tests.archon.test_cli import archon

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


RUNNABLE = sorted(p.stem for p in EXAMPLES.glob("*.yaml") if not load_spec(p).tunables())
"""The examples `archon run` takes (the others are studies' search spaces: `archon tune`)."""


@pytest.mark.slow
@pytest.mark.parametrize("name", RUNNABLE)
def test_each_example_runs_on_the_dev_split(name):
    # the CLI's own app in this process: the same command, without a new interpreter importing torch for each
    # example (the console script itself runs in a subprocess in test_cli and elsewhere in this file)
    from typer.testing import CliRunner

    from archon.cli import app

    out = CliRunner().invoke(app, ["run", str(EXAMPLES / f"{name}.yaml"), "--limit", "6", "--json"])
    assert out.exit_code == 0, out.stderr + repr(out.exception)
    summary = json.loads(out.stdout)
    assert summary["problems"] == 6 and summary["errors"] == 0
    assert 0 <= summary["accuracy"] <= summary["coverage"] <= 1
    assert summary["per_problem"]["flops"] > 0 and summary["cost"]["overruns"] == 0


@pytest.mark.slow
def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    spec = EXAMPLES / "self_consistency.yaml"
    first = archon("run", str(spec), "--limit", "6", "--out", str(tmp_path), "--json")
    assert first.returncode == 0, first.stderr
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    (tmp_path / "results.jsonl").write_text("\n".join(lines[:2]) + "\n")  # as if killed after two problems
    again = archon("run", str(spec), "--limit", "6", "--out", str(tmp_path), "--resume", "--json")
    assert again.returncode == 0, again.stderr
    records = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == sorted(json.loads(x)["id"] for x in lines)
    assert json.loads(again.stdout)["problems"] == 6
    assert json.loads((tmp_path / "summary.json").read_text())["problems"] == 6


def test_runs_are_reproducible_and_charged_per_node_and_problem():
    problems = data.load("arith", "dev")[:5]

    def answers():
        runner = Runner(load_spec(EXAMPLES / "ensemble.yaml"), seed=3)
        try:
            summary = asyncio.run(runner.run(problems))
            by_node = runner.ledger.by("node")
            return summary, by_node, runner.ledger.by("problem")
        finally:
            asyncio.run(runner.aclose())

    a, nodes, per_problem = answers()
    b, _, _ = answers()
    assert a["accuracy"] == b["accuracy"] and a["cost"]["total"]["flops"] == b["cost"]["total"]["flops"]
    assert set(nodes) == {"draft_small", "draft_large", "judge"}  # vote makes no model call
    assert set(per_problem) == {p.id for p in problems}


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline:\n  - {id: a, op: sampel, params: {engine: policy}}\n")
    out = archon("validate", str(bad))
    assert out.returncode == 1 and "unknown op 'sampel'; did you mean 'sample'?" in out.stderr
    out = archon("run", str(bad), "--dataset", "arith", "--limit", "1")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    out = archon("run", str(EXAMPLES / "greedy.yaml"), "--dataset", "arth", "--limit", "1")
    assert out.returncode == 1 and "arth" in out.stderr and "Traceback" not in out.stderr
    assert json.loads(archon("schema").stdout)["title"] == "Spec"


def test_graph_draws_svg_and_mermaid(tmp_path):
    import importlib.util
    import xml.etree.ElementTree as ET

    spec = str(EXAMPLES / "ensemble.yaml")
    assert archon("graph", spec, "-o", str(tmp_path / "g.svg")).returncode == 0
    root = ET.parse(tmp_path / "g.svg").getroot()
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"problem", "judge: score", "answer: vote", "draft_small: sample"} <= texts
    assert len(list(root.iter("{http://www.w3.org/2000/svg}line"))) == 5
    assert archon("graph", spec, "-o", str(tmp_path / "g.mmd")).returncode == 0
    mermaid = (tmp_path / "g.mmd").read_text()
    assert "draft_small --> judge" in mermaid and "problem --> draft_large" in mermaid
    png = archon("graph", spec, "-o", str(tmp_path / "g.png"))
    if importlib.util.find_spec("matplotlib") is None:
        assert png.returncode == 1 and "PNG needs matplotlib" in png.stderr
    else:
        assert png.returncode == 0 and (tmp_path / "g.png").stat().st_size > 0


def test_named_operators_equal_their_primitive_chains():
    from archon.core import State
    from archon.runtime import NodeContext
    from samplers import ops
    from verifiers import ops as judge

    spec = load_spec(EXAMPLES / "best_of_n.yaml")
    runner = Runner(spec)
    problems = data.load("arith", "dev")[:3]
    sample_p = {"engine": "policy", "n": 6, "temperature": 1.0, "max_tokens": 120}

    async def both(p):
        ctx = NodeContext(runner, "n", p.id, seed=11)
        named = await ops.best_of_n(ctx, State(p), ops.BestOfNParams(**sample_p, verifier="orm"))
        s = await ops.sample(ctx, State(p), ops.SampleParams(**sample_p))
        s = await judge.score(ctx, s, judge.ScoreParams(verifier="orm"))
        chain = await judge.select(ctx, s, judge.SelectParams(by="orm"))
        sc_named = await ops.self_consistency(ctx, State(p), ops.SelfConsistencyParams(**sample_p))
        sampled = await ops.sample(ctx, State(p), ops.SampleParams(**sample_p))
        sc_chain = await judge.vote(ctx, sampled, judge.VoteParams())
        return named, chain, sc_named, sc_chain

    try:
        for p in problems:
            named, chain, sc_named, sc_chain = asyncio.run(both(p))
            assert [c.text for c in named.candidates] == [c.text for c in chain.candidates]
            assert named.candidates[0].scores == chain.candidates[0].scores
            assert sc_named.candidates[0].answer == sc_chain.candidates[0].answer
            assert sc_named.candidates[0].scores["vote"] == sc_chain.candidates[0].scores["vote"]
    finally:
        asyncio.run(runner.aclose())


def test_a_budget_that_refuses_every_call_leaves_no_candidate_and_no_error():
    """best_of_n under a budget too small for one sample: nothing is drawn, scored or charged, nothing fails."""
    spec = load_spec(EXAMPLES / "best_of_n.yaml")
    spec = spec.model_copy(update={"budget": spec.budget.model_copy(update={"per_problem": {"flops": 1.0}})})
    runner = Runner(spec)
    try:
        summary = asyncio.run(runner.run(data.load("arith", "dev")[:3]))
    finally:
        asyncio.run(runner.aclose())
    assert summary["errors"] == 0 and summary["accuracy"] == 0.0 and summary["per_problem"]["flops"] == 0
    for record in runner.records:
        assert record["candidates"] == [] and record["answer"] is None and record["error"] is None
        assert [e["op"] for e in record["trace"]] == ["sample", "select"]
        assert record["trace"][0]["added"] == 0


def test_a_refused_verifier_call_leaves_the_candidates_unscored_and_the_run_goes_on():
    """Under a one-call budget the sampling call fits and the reward model's does not: score is anytime."""
    from archon.spec import parse_spec

    spec = parse_spec(
        {
            "engines": {"policy": {"model": "tiny-l"}},
            "verifiers": {"orm": {"kind": "reward_model", "model": "tiny-orm"}},
            "budget": {"per_problem": {"calls": 1}},
            "pipeline": [
                {"id": "a", "op": "sample", "params": {"engine": "policy", "n": 3, "max_tokens": 64}},
                {"id": "b", "op": "score", "inputs": ["a"], "params": {"verifier": "orm"}},
                {"id": "c", "op": "select", "inputs": ["b"], "params": {"by": "orm"}},
            ],
        }
    )
    runner = Runner(spec)
    try:
        summary = asyncio.run(runner.run(data.load("arith", "dev")[:3]))
    finally:
        asyncio.run(runner.aclose())
    assert summary["errors"] == 0 and summary["per_problem"]["calls"] == 1
    for record in runner.records:
        score = next(e for e in record["trace"] if e["op"] == "score")
        assert score["stopped_by_budget"] is True
        assert len(record["candidates"]) == 1 and record["candidates"][0]["scores"] == {}


def test_a_node_disabled_in_the_spec_does_not_run_and_its_readers_read_its_inputs(tmp_path):
    spec = tmp_path / "disabled.yaml"
    spec.write_text(
        "engines: {policy: {model: tiny-l}}\n"
        "pipeline:\n"
        "  - {id: a, op: sample, params: {engine: policy, n: 2, max_tokens: 8}}\n"
        "  - {id: b, op: sample, inputs: [a], params: {engine: policy, max_tokens: 8}, enabled: false}\n"
        "  - {id: c, op: vote, inputs: [b]}\n"
    )
    runner = Runner(load_spec(spec))
    try:
        summary = asyncio.run(runner.run(data.load("arith", "dev")[:2]))
    finally:
        asyncio.run(runner.aclose())
    assert set(summary["cost"]["by_node"]) == {"a"}  # b made no call
    assert all(len(r["candidates"]) == 2 for r in runner.records)  # c voted over a's two samples
