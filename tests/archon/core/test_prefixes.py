"""Prefix-reuse credit within a problem only: a problem's charges do not depend on what ran beside it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from archon import data
from archon.core import ChargedEngine, Completion, EngineBase, GenRequest, GenResult, Usage
from archon.core.prefixes import ComputedPrefixes
from archon.runtime import Runner
from archon.spec import load_spec
from budgets import Ledger, ModelFacts, Scope
from tests.archon.test_runtime import EXAMPLES


def test_the_trie_finds_the_longest_computed_prefix() -> None:
    seen = ComputedPrefixes()
    assert seen.longest((1, 2)) == 0
    seen.add((1, 2, 3))
    seen.add((1, 2, 7, 8))
    assert [seen.longest(t) for t in [(1, 2, 3, 4), (1, 2, 7, 8, 9), (1, 5), (2,), ()]] == [3, 4, 1, 0, 0]
    assert seen.sequences == 2


class Reports(EngineBase):
    """An engine that reports every prompt token as cached (as a warm shared cache would)."""

    name = "warm"
    supports_n = True
    facts = ModelFacts.from_config(
        {
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "vocab_size": 128,
            "max_position_embeddings": 512,
        },
        name="warm",
    )

    def encode(self, prompt: object) -> Sequence[int] | None:
        return tuple(ord(ch) for ch in str(prompt))

    async def generate(self, request: GenRequest) -> GenResult:
        ids = self.encode(request.prompt) or ()
        comps = tuple(Completion("ab", token_ids=(97, 98), finish_reason="stop") for _ in range(request.n))
        return GenResult(request, comps, Usage(len(ids), len(ids), 2 * request.n), self.name, 0.0)


def test_reuse_of_another_problems_work_is_not_credited() -> None:
    ledger, engine = Ledger(), Reports()
    mine, other = ComputedPrefixes(), ComputedPrefixes()
    first = ChargedEngine(engine, ledger, Scope("n", "p"), prefixes=mine)
    asyncio.run(first.generate(GenRequest("shared prompt", max_tokens=2)))
    assert ledger.problem_total("p").cached_tokens == 0  # the engine said all cached: none was computed by p
    asyncio.run(first.for_scope(Scope("m", "p")).generate(GenRequest("shared promptab more", max_tokens=2)))
    assert ledger.problem_total("p").cached_tokens == len("shared promptab")  # p's prompt and its completion
    asyncio.run(ChargedEngine(engine, ledger, Scope("n", "q"), prefixes=other).generate(GenRequest("shared prompt")))
    assert ledger.problem_total("q").cached_tokens == 0
    loose = Ledger()
    asyncio.run(ChargedEngine(engine, loose, Scope("n", "r")).generate(GenRequest("shared prompt")))
    assert loose.total().cached_tokens == len("shared prompt")  # without a tracker: as the engine reports


def test_a_problems_record_is_the_same_in_any_order_and_batch() -> None:
    """With a real engine and prefix cache: forward and reversed, the problems share the prompt template."""
    problems = data.load("arith", "dev")[:12]

    def costs(order: list) -> dict[str, dict]:
        runner = Runner(load_spec(EXAMPLES / "greedy.yaml"), concurrency=3)
        try:
            asyncio.run(runner.run(order))
            stats = runner.pool.get("policy").prefix_cache.stats
            return {r["id"]: r["cost"] for r in runner.records} | {"_reused": stats.reused_tokens}
        finally:
            asyncio.run(runner.aclose())

    forward, backward = costs(problems), costs(problems[::-1])
    assert forward.pop("_reused") > 0 and backward.pop("_reused") > 0  # the engine did reuse across problems
    for k in ("seconds",):
        for c in (*forward.values(), *backward.values()):
            c.pop(k)
    assert forward == backward
