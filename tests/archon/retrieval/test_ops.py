"""``retrieve`` and ``with_context`` in pipelines: what the reader is sent, what it is charged, errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from archon import data
from archon.runtime import Runner
from archon.spec import parse_spec
from archon.spec.load import SpecError

PROBLEMS = data.load("facts", "dev")[:6]


def spec(k: int = 3, *, context: dict[str, Any] | None = None, corpus: str = "facts") -> Any:
    pipeline: list[dict[str, Any]] = [{"id": "docs", "op": "retrieve", "params": {"retriever": "bm25", "k": k}}]
    if context is not None:
        pipeline.append({"id": "prompt", "op": "with_context", "inputs": ["docs"], "params": context})
    pipeline.append({"id": "answer", "op": "sample", "inputs": [pipeline[-1]["id"]],
                     "params": {"engine": "reader", "temperature": 0, "max_tokens": 64}})  # fmt: skip
    return parse_spec({
        "engines": {"reader": {"model": "tiny-l"}},
        "retrievers": {"bm25": {"kind": "bm25", "corpus": corpus}},
        "pipeline": pipeline,
    })  # fmt: skip


def run(s: Any, problems: list[Any] = PROBLEMS) -> tuple[dict[str, Any], Runner]:
    runner = Runner(s)
    try:
        return asyncio.run(runner.run(problems)), runner
    finally:
        asyncio.run(runner.aclose())


def test_the_reader_is_sent_the_retrieved_passages_and_charged_their_prefill() -> None:
    one, _ = run(spec(1))
    five, r5 = run(spec(5))
    assert one["errors"] == five["errors"] == 0
    rec = r5.records[0]
    event = rec["trace"][0]
    assert event["op"] == "retrieve" and len(event["passages"]) == 5
    assert event["passages"][0]["id"] == PROBLEMS[0].metadata["gold_doc_ids"][0]
    prompt1 = one["cost"]["by_node"]["answer"]["prompt_tokens"]
    prompt5 = five["cost"]["by_node"]["answer"]["prompt_tokens"]
    docs = {d.id: d for d in data.corpus("facts")}
    extra = sum(len(docs[p["id"]].text) + 1 for r in r5.records for p in r["trace"][0]["passages"][1:])
    assert prompt5 - prompt1 == extra  # a character-level reader: each added passage's characters, and a newline
    assert five["cost"]["by_node"]["docs"]["flops"] == 0  # BM25 runs no model
    assert five["retrievers"]["bm25"]["documents"] == 2320


def test_with_context_caps_the_passages_tokens_dropping_the_lowest_ranked() -> None:
    _, runner = run(spec(5, context={"engine": "reader", "max_context_tokens": 250, "order": "best_last"}))
    for rec in runner.records:
        event = next(e for e in rec["trace"] if e["op"] == "with_context")
        ranked = [p["id"] for p in rec["trace"][0]["passages"]]
        assert event["placed"] == ranked[: len(event["placed"])] and event["dropped"] == ranked[len(event["placed"]) :]
        assert 1 <= len(event["placed"]) < 5
    s, runner = run(spec(2, context={"template": "{passages}\nQ: {question}", "passage": "[{rank}] {title}: {text}"}))
    assert s["errors"] == 0
    expected = run(spec(2))[0]["cost"]["by_node"]["answer"]["prompt_tokens"]
    assert s["cost"]["by_node"]["answer"]["prompt_tokens"] != expected  # another template was sent


def test_a_users_corpus_file_is_read_and_its_bad_line_named(tmp_path: Path) -> None:
    docs = [{"id": d.id, "title": d.title, "text": d.text} for d in data.corpus("facts")[:50]]
    good = tmp_path / "docs.jsonl"
    good.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    problems = [p for p in data.load("facts", "dev") if p.metadata["gold_doc_ids"][0] in {d["id"] for d in docs}]
    summary, runner = run(spec(1, corpus=str(good)), problems[:2])
    assert summary["errors"] == 0 and summary["retrievers"]["bm25"]["documents"] == 50
    assert runner.records[0]["trace"][0]["passages"][0]["id"] == problems[0].metadata["gold_doc_ids"][0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(docs[0]) + "\n" + json.dumps({"id": "x", "txt": "oops"}) + "\n")
    with pytest.raises(SpecError) as err:  # the corpus is read when the run prepares, before any problem
        Runner(spec(1, corpus=str(bad))).prepare()
    why = "unknown field 'txt' (did you mean 'text'?); allowed: id, text, title"
    assert str(err.value) == f"retrievers.bm25: {bad}:2: {why}"


def test_without_the_rag_extra_a_retriever_fails_in_one_line_naming_it(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "rag.yaml"
    code = (
        "import sys; sys.modules['bm25s'] = None\n"  # as if bm25s were not installed
        "from archon import cli; sys.argv = ['archon', 'run', sys.argv[1], '--limit', '1']; cli.run()\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(example)], capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    lines = [x for x in out.stderr.strip().splitlines() if x.strip() and "Loading weights" not in x]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "retrievers.bm25" in lines[0] and "bm25s" in lines[0] and 'pip install -e ".[rag]"' in lines[0]


def _study(tmp_path: Path, name: str, *flags: str) -> tuple[Any, Any]:
    """Run ``archon tune examples/NAME.yaml`` into ``tmp_path``: the CLI's output and the Optuna study."""
    import optuna

    from tests.archon.test_cli import archon

    example = Path(__file__).resolve().parents[3] / "examples" / f"{name}.yaml"
    out = archon("tune", str(example), *flags, "--out", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    return out, optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")


@pytest.mark.slow
def test_the_retrieval_study_example_tunes_retriever_and_k_and_writes_a_runnable_best(tmp_path: Path) -> None:
    from tests.archon.test_cli import archon

    out, study = _study(tmp_path, "rag_tune", "--limit", "4", "--trials", "3", "--minibatch", "2")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["trials"].get("complete") == 3 and result["best"] is not None
    assert {t.params["docs.retriever"] for t in study.trials} == {"bm25", "dense", "hybrid"}  # the startup design
    run_ = archon("run", str(tmp_path / "best.yaml"), "--limit", "2", "--json")
    assert run_.returncode == 0, run_.stderr[-2000:]
    assert json.loads(run_.stdout)["retrievers"]


@pytest.mark.slow
def test_the_two_hop_study_can_leave_out_the_first_retrieval_and_interleave(tmp_path: Path) -> None:
    import optuna

    from tests.archon.test_cli import archon

    _, study = _study(tmp_path, "rag_tune_multihop", "--limit", "3", "--trials", "4", "--minibatch", "3")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert {t.params["docs.enabled"] for t in done} == {True, False}  # the startup design covers both ...
    assert {t.params["answer.op"] for t in done} == {"sample", "iterdrag"}  # ... and both ways of answering
    without = [t for t in done if not t.params["docs.enabled"]]
    assert all("docs.k" not in t.params for t in without)  # a node left out has no parameters drawn
    run_ = archon("run", str(tmp_path / "best.yaml"), "--split", "multihop_dev", "--limit", "2", "--json")
    assert run_.returncode == 0, run_.stderr[-2000:]
