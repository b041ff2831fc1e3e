"""Valid but unusual specs keep working: JSON, CRLF line ends, YAML anchors and merge keys (under ``x-``
keys too), a 200-node chain, unicode names, ``extends`` chains."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from archon import cli, data
from archon.runtime import Runner
from archon.spec import load_spec

NODE = "{id: a, op: sample, params: {engine: policy, max_tokens: 8}}"


def chain(n: int) -> str:
    votes = "".join(f"  - {{id: v{i}, op: vote, inputs: [{'a' if i == 1 else f'v{i - 1}'}]}}\n" for i in range(1, n))
    return f"engines: {{policy: {{model: tiny-l}}}}\npipeline:\n  - {NODE}\n{votes}"


SPECS = {
    "plain.json": json.dumps(
        {
            "engines": {"policy": {"model": "tiny-l"}},
            "pipeline": [{"id": "a", "op": "sample", "params": {"engine": "policy"}}],
        }
    ),
    "crlf.yaml": f"engines:\r\n  policy: {{model: tiny-l}}\r\npipeline:\r\n  - {NODE}\r\n",
    "anchors.yaml": (
        "x-sampling: &sampling {engine: policy, max_tokens: 8, temperature: 0.7}\n"
        "engines: {policy: {model: tiny-l}}\n"
        "pipeline:\n"
        "  - {id: a, op: sample, params: {<<: *sampling, n: 2}}\n"
        "  - {id: b, op: sample, params: *sampling}\n"
        "  - {id: c, op: vote, inputs: [a, b]}\n"
    ),
    "unicode.yaml": (
        "engines: {políçy_模型: {model: tiny-l}}\npipeline:\n  - {id: a, op: sample, params: {engine: políçy_模型}}\n"
    ),
    "chain.yaml": chain(200),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_an_unusual_valid_spec_validates(name: str, tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / name
    path.write_bytes(SPECS[name].encode())
    monkeypatch.setattr(sys, "argv", ["archon", "validate", str(path)])
    try:
        cli.run()
    except SystemExit as exit_:
        assert exit_.code in (0, None), capsys.readouterr().err
    assert capsys.readouterr().out.strip() == "ok"


def test_anchors_merge_into_params(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(SPECS["anchors.yaml"])
    spec = load_spec(path)
    a, b = spec.pipeline[0].params, spec.pipeline[1].params
    assert a == {"engine": "policy", "max_tokens": 8, "temperature": 0.7, "n": 2} and b["temperature"] == 0.7


def test_an_extends_chain_of_three_files_merges_in_order(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(f"engines: {{policy: {{model: tiny-l}}}}\npipeline:\n  - {NODE}\n")
    (tmp_path / "mid.yaml").write_text("extends: base.yaml\npipeline:\n  - {id: a, params: {n: 3}}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "top.yaml").write_text(
        "extends: ../mid.yaml\npipeline:\n  - {id: a, params: {max_tokens: 4}}\n"
    )
    spec = load_spec(tmp_path / "sub" / "top.yaml")
    assert spec.pipeline[0].params == {"engine": "policy", "max_tokens": 4, "n": 3}


def test_a_200_node_chain_runs(tmp_path: Path) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text(SPECS["chain.yaml"])
    runner = Runner(load_spec(path))
    try:
        summary = asyncio.run(runner.run(data.load("arith", "dev")[:2]))
    finally:
        asyncio.run(runner.aclose())
    assert summary["errors"] == 0 and summary["problems"] == 2 and len(runner.records[0]["trace"]) >= 200
