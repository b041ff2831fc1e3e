"""DRAG's ``demonstrations`` and IterDRAG's ``iterdrag``: what the reader is sent, what is retrieved, what is charged.

``iterdrag`` needs a model that writes its follow-up format, which the embedded models cannot: its
mechanics are tested with a scripted engine (deterministic rules over the prompt, real tokenizer, real
BM25 over the facts corpus, real ledger), and it is run once end to end on tiny-l.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from archon import data
from archon.core import Completion, EngineBase, GenRequest, GenResult, Usage
from archon.core.models import resolve_model
from archon.core.registry import ENGINE_KINDS
from archon.runtime import Runner
from archon.spec import parse_spec
from archon.spec.load import SpecError
from budgets import ModelFacts

FACTS = data.load("facts", "dev")[:5]
MULTIHOP = data.load("facts", "multihop_dev")[:6]


def run(spec: dict[str, Any], problems: list[Any], seed: int = 0) -> tuple[dict[str, Any], Runner]:
    runner = Runner(parse_spec(spec), seed=seed)
    try:
        return asyncio.run(runner.run(problems)), runner
    finally:
        asyncio.run(runner.aclose())


def drag_spec(**params: Any) -> dict[str, Any]:
    return {
        "engines": {"reader": {"model": "tiny-l"}},
        "retrievers": {"bm25": {"kind": "bm25", "corpus": "facts"}},
        "pipeline": [
            {"id": "docs", "op": "retrieve", "params": {"retriever": "bm25", "k": 1}},
            {"id": "shots", "op": "demonstrations", "inputs": ["docs"], "params": {"retriever": "bm25", **params}},
            {"id": "answer", "op": "sample", "inputs": ["shots"],
             "params": {"engine": "reader", "temperature": 0, "max_tokens": 48}},
        ],
    }  # fmt: skip


def test_demonstrations_put_solved_examples_with_their_own_passages_before_the_question() -> None:
    from samplers.transformers_engine import TransformersEngine

    reader = TransformersEngine("tiny-l")
    docs = {d.id: d for d in data.corpus("facts")}
    pool = {p.id: p for p in data.load("facts", "dev")}
    _, none = run(drag_spec(m=0), FACTS)
    summary, runner = run(drag_spec(m=3, k=2), FACTS)
    assert summary["errors"] == 0
    for rec, base in zip(runner.records, none.records, strict=True):
        event = next(e for e in rec["trace"] if e["op"] == "demonstrations")
        assert len(event["examples"]) == 3 and rec["id"] not in event["examples"]
        turns = []
        for ex, passages in zip(event["examples"], event["passages"], strict=True):
            shot = pool[ex]
            assert len(passages) == 2 and passages[0] == shot.metadata["gold_doc_ids"][0]  # its own documents
            context = "\n".join(docs[x].text for x in passages)
            turns += [{"role": "user", "content": f"Context:\n{context}\n\nQuestion: {shot.question}"},
                      {"role": "assistant", "content": shot.metadata["solution"]}]  # fmt: skip
        gold = docs[rec["trace"][0]["passages"][0]["id"]].text
        question = next(p for p in FACTS if p.id == rec["id"]).question
        own = {"role": "user", "content": f"Context:\n{gold}\n\nQuestion: {question}"}
        expected = len(reader.encode([*turns, own]))
        assert rec["cost_by_node"]["answer"]["prompt_tokens"] == expected  # exactly this prompt was read
        assert expected > base["cost_by_node"]["answer"]["prompt_tokens"]
    reader.close()
    _, runner2 = run(drag_spec(m=3, k=2), FACTS)
    assert [r["trace"][1]["examples"] for r in runner2.records] == [r["trace"][1]["examples"] for r in runner.records]
    _, other = run(drag_spec(m=3, k=2), FACTS, seed=5)
    assert [r["trace"][1]["examples"] for r in other.records] != [r["trace"][1]["examples"] for r in runner.records]
    _, first = run(drag_spec(m=2, k=1, select="first"), FACTS[1:3])
    dev = list(pool)
    for rec in first.records:
        assert rec["trace"][1]["examples"] == [x for x in dev if x != rec["id"]][:2]


def test_demonstrations_are_validated_when_the_spec_is_read(tmp_path: Path) -> None:
    bad = drag_spec(m=2, k=1)
    del bad["pipeline"][1]["params"]["retriever"]
    with pytest.raises(SpecError, match="k > 0 needs retriever"):
        Runner(parse_spec(bad))
    with pytest.raises(SpecError, match=r"demonstration pool.*no data set or file named 'factz'"):
        Runner(parse_spec(drag_spec(m=2, dataset="factz")))
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps({"id": "a", "question": "What is X?", "answer": "y"}) + "\n")
    summary, runner = run(drag_spec(m=2, k=1, dataset=str(pool)), FACTS[:1])
    assert summary["errors"] == 0 and runner.records[0]["trace"][1]["examples"] == ["a"]  # the pool has one


# ---------------------------------------------------------------------- iterdrag

QUESTION = re.compile(
    r"(In which province was (?P<a>.+?) born\?|On which river lies the town where (?P<b>.+?) was born\?)"
)


class Scripted(EngineBase):
    """Writes IterDRAG's format by rules: ask where the person was born, then about that town, then answer."""

    name = "scripted"

    def __init__(self, malformed: bool = False) -> None:
        where = resolve_model("tiny-l")
        self.tokenizer = AutoTokenizer.from_pretrained(where)
        config = json.loads((Path(where) / "config.json").read_text())
        self.facts = ModelFacts.from_config(config, name="scripted")
        self.malformed = malformed
        self.prompts: list[tuple[int, ...]] = []

    def encode(self, prompt: Any) -> tuple[int, ...]:
        if isinstance(prompt, tuple) and prompt and isinstance(prompt[0], int):
            return prompt
        text = self.tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
        return tuple(self.tokenizer(text, add_special_tokens=False).input_ids)

    def line(self, text: str) -> str:
        m = QUESTION.search(text)
        assert m is not None
        name, attr = (m["a"], "province") if m["a"] else (m["b"], "river")
        transcript = text.split("<|assistant|>")[-1]
        if self.malformed and not transcript.endswith("So the final answer is:"):
            return "I think it is somewhere."
        contexts = re.findall(r"Context:\n(.*?)\nIntermediate answer:", transcript, re.S)
        if transcript.endswith("Intermediate answer:"):
            if len(contexts) == 1:
                found = re.search(rf"{name} was born in (\w+) in", contexts[0])
                return f" {found.group(1) if found else 'unknown'}"
            found = re.search(r"province of (\w+), on the river (\w+)", contexts[-1])
            return f" {found.group(1 if attr == 'province' else 2) if found else 'unknown'}"
        if transcript.endswith("So the final answer is:"):
            return " unknown"
        answers = re.findall(r"Intermediate answer: (\w+)", transcript)
        if not answers:
            return f"Follow up: Where was {name} born?"
        if len(answers) == 1:
            return f"Follow up: What is known about the town {answers[0]}?"
        return f"So the final answer is: {answers[-1]}"

    async def generate(self, request: GenRequest) -> GenResult:
        ids = tuple(request.prompt)  # type: ignore[arg-type]
        self.prompts.append(ids)
        text = self.line(self.tokenizer.decode(list(ids)))
        tokens = tuple(self.tokenizer(text + "\n", add_special_tokens=False).input_ids)
        c = Completion(text, tokens, finish_reason="stop", stop_str="\n")
        return GenResult(request, (c,), Usage(len(ids), 0, len(tokens)), self.name)

    async def score(self, prompt: Any, continuations: Any) -> Any:  # pragma: no cover - not used
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


ENGINES: dict[str, Scripted] = {}


def _scripted(config: Any) -> Scripted:
    ENGINES[config.model] = Scripted(malformed=config.model == "malformed")
    return ENGINES[config.model]


if "scripted_iterdrag" not in ENGINE_KINDS:
    ENGINE_KINDS.add("scripted_iterdrag", _scripted)


def iter_spec(engine: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {
        "engines": {"reader": engine},
        "retrievers": {"bm25": {"kind": "bm25", "corpus": "facts"}},
        "pipeline": [{"id": "answer", "op": "iterdrag",
                      "params": {"engine": "reader", "retriever": "bm25", "k": 1, **params}}],
    }  # fmt: skip


def test_iterdrag_retrieves_for_each_follow_up_and_answers_two_hop_questions() -> None:
    summary, runner = run(iter_spec({"kind": "scripted_iterdrag", "model": "good"}), MULTIHOP)
    assert summary["errors"] == 0 and summary["accuracy"] == 1.0
    for rec, problem in zip(runner.records, MULTIHOP, strict=True):
        event = rec["trace"][0]
        assert [h["passages"] for h in event["hops"]] == [[g] for g in problem.metadata["gold_doc_ids"]]
        assert event["hops"][0]["answer"] == problem.metadata["bridge"] and not event["malformed"]
        assert rec["candidates"][0]["text"].endswith(f"#### {problem.answer}")
    prompts = ENGINES["good"].prompts
    assert len(prompts) == 5 * len(MULTIHOP)  # follow up, answer, follow up, answer, final: per problem
    # every call but a problem's first continues the sequence of an earlier one (what the prefix cache reuses)
    firsts = [b for i, b in enumerate(prompts) if not any(b[: len(a)] == a for a in prompts[:i])]
    assert len(firsts) == len(MULTIHOP)
    # charged: every call's prompt and line, and nothing for BM25's searches
    assert summary["cost"]["total"]["calls"] >= 5 * len(MULTIHOP)
    assert summary["cost"]["total"]["prompt_tokens"] == sum(len(p) for p in prompts)


def test_iterdrag_without_follow_ups_or_with_malformed_lines_follows_its_policy() -> None:
    summary, runner = run(iter_spec({"kind": "scripted_iterdrag", "model": "good"}, iterations=1), MULTIHOP[:2])
    for rec in runner.records:
        event = rec["trace"][0]
        assert len(event["hops"]) == 1 and event["forced"] and event["answer"] == "unknown"
    assert summary["accuracy"] == 0.0
    for policy, expect in (("final", "I think it is somewhere."), ("force", "unknown"), ("drop", None)):
        s, r = run(iter_spec({"kind": "scripted_iterdrag", "model": "malformed"}, on_malformed=policy), MULTIHOP[:2])
        assert s["errors"] == 0
        for rec in r.records:
            event = rec["trace"][0]
            assert event["malformed"] == ["I think it is somewhere."] and event["answer"] == expect
            assert bool(rec["candidates"]) == (expect is not None)


def test_iterdrag_runs_end_to_end_on_tiny_l() -> None:
    summary, runner = run(iter_spec({"model": "tiny-l"}), MULTIHOP[:3])
    assert summary["errors"] == 0 and summary["per_problem"]["flops"] > 0
    for rec in runner.records:
        event = rec["trace"][0]
        assert event["op"] == "iterdrag" and (event["malformed"] or event["hops"] or event["forced"])
