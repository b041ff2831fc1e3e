"""``unit_test_gen``: the model writes unit tests for a code problem; candidates are run against them.

The model is shown the function's signature and docstring (the problem's ``metadata["prompt"]``, else
its question) and asked for ``assert`` statements; ``m`` such generations are drawn and their top-level
asserts pooled (:func:`archon.llm.parsing.parse_tests`, deduplicated, at most ``max_tests``). Every
candidate's program (:func:`verifiers.code.program`) then runs against all of them in ONE sandboxed
child (:func:`verifiers.code.run_asserts`, each assert under ``per_test`` seconds), and the candidates
that pass the most tests are kept, in order, each with its pass share under ``scores[<node>]``.

A generation without a parseable assert is malformed: re-asked ``retries`` times, then not used. When
no generation gave a test, ``on_malformed`` says what goes on: ``keep`` (the candidates unchanged) or
``drop`` (none). The sandbox runs are CPU time on this machine, recorded in the trace
(``sandbox_seconds``), not model FLOPs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import ClassVar

from pydantic import Field, field_validator

from archon.core import Context, State
from archon.core.registry import OPERATORS
from archon.llm.common import LLMParams, Policy, ask, gather_within_budget, question_of, user
from archon.llm.parsing import parse_tests
from archon.llm.templates import UNIT_TESTS
from archon.retrieval.ops import _template
from verifiers.code import AssertResults, program, run_asserts

_SANDBOXES = 2
"""Sandboxed children run at once per operator call (the machine's cores, not the engine's batch)."""


class UnitTestGenParams(LLMParams):
    """``unit_test_gen``: generate tests, run every candidate against them, keep those passing the most."""

    cost_growth: ClassVar[Mapping[str, float]] = {"m": 1.0}
    m: int = Field(1, ge=1, le=16, description="test generations drawn (their asserts pooled)")
    max_tests: int = Field(32, ge=1, le=256, description="asserts kept from the pool, first ones first")
    per_test: float = Field(2.0, gt=0, le=60, description="seconds each assert may run")
    timeout: float = Field(30.0, gt=0, le=600, description="seconds one candidate's whole sandbox run may take")
    on_malformed: Policy = "keep"
    max_tokens: int = Field(384, ge=1)

    @field_validator("template")
    @classmethod
    def _fields(cls, v: str | None) -> str | None:
        return None if v is None else _template(v, {"question"}, {"question"})


@OPERATORS.register("unit_test_gen", UnitTestGenParams)
async def unit_test_gen(ctx: Context, state: State, p: UnitTestGenParams) -> State:
    """Write tests, run the candidates against them, keep the candidates that pass the most."""
    cands = list(state.candidates)
    if not cands:
        return state.with_candidates([], node=ctx.node, op="unit_test_gen", tests=[], malformed=[])
    question = state.problem.metadata.get("prompt") or question_of(state)
    prompt = (p.template or UNIT_TESTS).format(question=question)
    asked, refused = await gather_within_budget(
        [ask(ctx, p, user(prompt), parse_tests, seed=ctx.seed + i, what=f"tests {i + 1}") for i in range(p.m)]
    )
    malformed = [m for a in asked if a is not None for m in a.malformed]
    tests: list[str] = []
    for a in asked:
        for t in (a.value or []) if a is not None else []:
            if t not in tests:
                tests.append(t)
    tests = tests[: p.max_tests]
    extra = {"stopped_by_budget": True} if refused else {}
    if not tests:
        out = cands if p.on_malformed == "keep" or refused else []
        policy = None if refused and not malformed else p.on_malformed
        return state.with_candidates(out, node=ctx.node, op="unit_test_gen", tests=[], malformed=malformed,
                                     policy=policy, **extra)  # fmt: skip
    started = time.perf_counter()
    gate = asyncio.Semaphore(_SANDBOXES)

    async def run(text: str) -> AssertResults:
        async with gate:
            code = program(state.problem, text)
            return await asyncio.to_thread(run_asserts, code, tests, per_test=p.per_test, timeout=p.timeout)

    results = await asyncio.gather(*(run(c.text) for c in cands))
    passed = [sum(r.passed) for r in results]
    best = max(passed)
    kept = [
        replace(c.with_score(ctx.node, n / len(tests)), metadata={**c.metadata, "tests_passed": n})
        for c, n in zip(cands, passed, strict=True)
        if n == best
    ]
    return state.with_candidates(
        kept, node=ctx.node, op="unit_test_gen", tests=tests, passed=passed, kept=len(kept), malformed=malformed,
        reasons=[r.reason for r in results], sandbox_seconds=round(time.perf_counter() - started, 3), **extra,
    )  # fmt: skip
